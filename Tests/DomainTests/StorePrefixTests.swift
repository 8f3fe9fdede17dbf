import Foundation
import Platform
import Testing
@testable import UploaderCore

/// The store prefix is part of every object key (and of the checkpoints'):
/// a segment like ".." would address another bucket.
@Suite struct StorePrefixTests {
    static func parse(prefix: String) throws -> Configuration {
        try ConfigurationLoader.parse("[store]\nendpoint = \"https://s3.example.gov\"\nbucket = \"evidence\"\ncredentials = \"env\"\nprefix = \"\(prefix)\"\n",
                                      path: "c.toml", hostName: "dock1")
    }

    @Test func aPrefixThatLeavesItsBucketOrIsNotAKeyIsRefused() throws {
        for prefix in ["../evidence2", "pd/../../evidence2", "..", "pd/.", "/pd", "pd//east", "pd\\tab", "pd\\u007F"] {
            let error = try #require(throws: UploaderError.self, "\(prefix)") { try Self.parse(prefix: prefix) }
            #expect(error.problems.map(\.key) == ["store.prefix"], "\(prefix)")
            #expect(error.problems.first?.line == 5)
        }
    }

    @Test func aKeyTemplateThatLeavesTheBucketIsRefused() throws {
        for template in ["{prefix}/../evidence2/{name}", "../{name}", "{prefix}/./{name}"] {
            let error = try #require(throws: UploaderError.self, "\(template)") {
                try ConfigurationLoader.parse("[store]\nendpoint = \"https://s3.example.gov\"\nbucket = \"evidence\"\ncredentials = \"env\"\nkey_template = \"\(template)\"\n",
                                              path: "c.toml", hostName: "dock1")
            }
            #expect(error.problems.map(\.key) == ["store.key_template"], "\(template)")
        }
    }

    @Test func anOrdinaryPrefixIsKept() throws {
        #expect(try Self.parse(prefix: "springfield-pd").store.prefix == "springfield-pd")
        #expect(try Self.parse(prefix: "pd/east.2026").store.prefix == "pd/east.2026")
        #expect(try Self.parse(prefix: "pd/").store.prefix == "pd")
        #expect(try Self.parse(prefix: "").store.prefix == "")
    }
}
