import Foundation
import Platform
import Testing
@testable import UploaderCore

@Suite struct HostileConfigurationTests {
    static func parse(_ body: String, endpoint: String = "https://s3.example.gov") throws -> Configuration {
        try ConfigurationLoader.parse("""
            [store]
            endpoint = "\(endpoint)"
            bucket = "evidence"
            credentials = "env"
            \(body)
            """, path: "/etc/uploader/uploader.toml", hostName: "dock1")
    }

    @Test(arguments: [
        "[upload]\npart_size = \"99999999999999999999GiB\"",
        "[upload]\npart_size = \"infGiB\"",
        "[schedule]\nbandwidth = \"infM\"",
        "[schedule]\nbandwidth = \"nanM\"",
        "[schedule]\nbandwidth = \"07:00,1e30M\"",
        "[ingest]\nspool_reserve = 9223372036854775807",
        "[ingest]\nspool_reserve = \"-5MiB\"",
        "[ingest]\nspool_reserve = -1",
    ])
    func absurdNumbersAreProblemsNotCrashes(body: String) throws {
        let error = try #require(throws: UploaderError.self) { try Self.parse(body) }
        #expect(error.problems.count == 1)
    }

    @Test(arguments: ["http://127.evil.example:9000", "http://127.0.0.1.nip.io", "http://localhost.evil.example",
                      "http://10.0.0.5:9000", "http://127.0.0.256:9000", "http://0x7f.0.0.1"])
    func plainHTTPToAnotherMachineIsRefused(endpoint: String) throws {
        let error = try #require(throws: UploaderError.self) { try Self.parse("", endpoint: endpoint) }
        #expect(error.problems.map(\.key) == ["store.endpoint"])
    }

    @Test(arguments: ["http://127.0.0.1:9000", "http://127.1.2.3:9000", "http://localhost:9000", "http://[::1]:9000"])
    func plainHTTPOnThisMachineIsAllowed(endpoint: String) throws {
        #expect(try Self.parse("", endpoint: endpoint).store.endpoint == endpoint)
    }

    @Test func namesAreEscapedWhenShown() {
        #expect(DisplayText.escaped("VID\u{1b}[2J\n.MP4") == "VID\\u{1b}[2J\\u{a}.MP4")
        #expect(DisplayText.escaped("ok-Ümlaut.MP4") == "ok-Ümlaut.MP4")
        #expect(DisplayText.problemWithIdentifier("", what: "the user") != nil)
        #expect(DisplayText.problemWithIdentifier("officer\u{7}", what: "the user") != nil)
        #expect(DisplayText.problemWithIdentifier("officer-17", what: "the user") == nil)
    }

    @Test func disambiguatedKeysKeepTheExtension() {
        #expect(ObjectKeyTemplate.disambiguated("p/u/FILE0001.MP4", fileID: 7) == "p/u/FILE0001~7.MP4")
        #expect(ObjectKeyTemplate.disambiguated("p/u.d/FILE", fileID: 7, attempt: 2) == "p/u.d/FILE~7-2")
    }
}
