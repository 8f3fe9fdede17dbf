import Foundation
import Testing
import TestSupport
@testable import Transport

/// What a HEAD gives back is what the upload meant: `metadataValue` undoes
/// `metadataHeaders` for every value, whatever its characters.
@Suite struct MetadataEncodingTests {
    @Test func everyValueComesBackAsItWasMeant() throws {
        let client = S3Client(target: .init(endpoint: "http://127.0.0.1:9", bucket: "evidence", addressing: .path), region: "us-east-1",
                              credentials: Credentials(accessKeyID: "AK", secretAccessKey: "SK"))
        let values = ["Jürgen Müller", "DCIM/100BWC/Übung café.MP4", "100%25 sure %41", " leading and trailing ", "tab\there", "plain", "", "日本語/ファイル.MP4"]
        let headers = client.metadataHeaders(Dictionary(uniqueKeysWithValues: values.enumerated().map { ("v\($0.offset)", $0.element) }))
        for (index, value) in values.enumerated() {
            let header = try #require(headers["x-amz-meta-v\(index)"])
            // Printable ASCII on the wire, nothing at either end HTTP would trim.
            #expect(header.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7f } && header.first != " " && header.last != " ", "\(header)")
            #expect(S3Client.metadataValue(header) == value, "\(header)")
        }
    }
}
