import Foundation
import Testing
import TestSupport
import UploaderCore
@testable import Transport

/// A key is a name inside its bucket: a "." or ".." segment is resolved
/// away on the way to the store and would address another key or bucket.
@Suite(.tags(.store)) struct ObjectKeySafetyTests {
    @Test func aKeyWithADotDotSegmentIsNeverSent() throws {
        let store = try TestStore.fromEnvironment()
        let area = try store.makeArea("keysafety")
        let client = store.client(bucket: area.bucket)
        let escaped = area.prefix + "-escaped"
        for key in ["\(area.prefix)/../\(escaped)/x.json", "\(area.prefix)/./x.json"] {
            let failure = try #require(throws: UploaderError.self, "\(key)") {
                try client.putOnce(key: key, bytes: Array("{}".utf8), contentType: "application/json")
            }
            #expect(failure.code == .config && failure.message.contains("segment"), "\(key): \(failure)")
        }
        #expect(try client.listObjectKeys(prefix: escaped + "/").isEmpty)
        #expect(try client.listObjectKeys(prefix: area.prefix + "/").isEmpty)
    }
}
