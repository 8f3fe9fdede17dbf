import Foundation
import Testing
import UploaderCore

/// One key table (`ConfigKeys`) drives the parser, the renderer and the
/// generated files: each generated file is checked to be current, and the
/// parser to read exactly the table's keys with the table's defaults.
@Suite struct ConfigKeyTableTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func committed(_ path: String) throws -> String {
        try String(contentsOf: packageRoot.appendingPathComponent(path), encoding: .utf8)
    }

    @Test func theExampleConfigurationIsGeneratedFromTheTable() throws {
        #expect(try Self.committed("Config/uploader.toml") == ConfigKeys.exampleFile(),
                "Config/uploader.toml is not current: run scripts/lib/config-generate")
    }

    @Test func theKeyReferenceIsGeneratedFromTheTable() throws {
        #expect(try Self.committed("docs/configuration-keys.md") == ConfigKeys.markdown(),
                "docs/configuration-keys.md is not current: run scripts/lib/config-generate")
    }

    @Test func theExampleConfigurationIsValid() throws {
        _ = try ConfigurationLoader.parse(ConfigKeys.exampleFile(), path: "/etc/uploader/uploader.toml", hostName: "dock1")
    }

    /// A wrong type for any key in the table is reported with that key: the
    /// parser reads every key the table (and so the example and the manual) names.
    @Test(arguments: ConfigKeys.fixed.values.flatMap(\.values).map { "\($0.section).\($0.name)" }.sorted())
    func theParserReadsEveryKeyOfTheTable(_ qualified: String) throws {
        let parts = qualified.split(separator: ".").map(String.init)
        let key = try #require(ConfigKeys.key(parts[0], parts[1]))
        let wrong: String = switch key.kind {
        case .string: "123"
        case .boolean: "\"yes\""
        case .integer, .number: "\"many\""
        case .size: "true"
        case .strings, .table: "5"
        }
        var sections: [String: [String: String]] = [
            "store": ["endpoint": "\"https://s3.example.gov\"", "bucket": "\"evidence\"", "credentials": "\"env\""],
        ]
        sections[key.section, default: [:]][key.name] = wrong
        let text = sections.sorted { $0.key < $1.key }.map { section in
            "[\(section.key)]\n" + section.value.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)\n" }.joined()
        }.joined()
        let error = try #require(throws: UploaderError.self) { try ConfigurationLoader.parse(text, path: "c.toml", hostName: "dock1") }
        #expect(error.problems.map(\.key) == [qualified], "\(error.problems)")
    }

    /// With no key set, the configuration renders every key at the table's default.
    @Test func theDefaultsAreTheTables() throws {
        let configuration = try HostileConfigurationTests.parse("")
        let rendered = Set(ConfigRenderer.render(configuration).split(separator: "\n").map(String.init))
        for section in ConfigKeys.sections {
            for key in section.keys where ConfigKeys.key(key.section, key.name) != nil && !key.commentedOut && key.kind != .table {
                guard let value = key.defaultValue, key.section != "tagging" else { continue }
                #expect(rendered.contains("\(key.name) = \(value)"), "[\(key.section)] \(key.name)")
            }
        }
    }

    @Test func anUnknownKeyIsStillRefusedWithTheKnownOnes() throws {
        let error = try #require(throws: UploaderError.self) { try HostileConfigurationTests.parse("[upload]\npart_sise = \"64MiB\"") }
        #expect(error.problems.map(\.key) == ["upload.part_sise"])
        #expect(error.message.contains("known keys in [upload] are abort_stale_multipart_hours, concurrency, connect_timeout"))
        #expect(error.code == .config)
    }
}
