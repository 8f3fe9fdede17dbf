import Foundation
import Platform
import Testing
@testable import UploaderCore

@Suite struct ConfigurationTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func theShippedExampleIsValidAndUsesEveryKnownSection() throws {
        let path = Self.packageRoot.appendingPathComponent("Config/uploader.toml").path
        let configuration = try ConfigurationLoader.load(path: path)
        #expect(configuration.store.bucket == "springfield-pd-evidence")
        #expect(configuration.store.addressing == .virtualHosted)
        #expect(configuration.upload.partSize == 64 * 1024 * 1024)
        #expect(configuration.store.credentials == .file("/etc/uploader/credentials"))
    }

    @Test func renderedConfigurationReadsBackTheSame() throws {
        let original = try ConfigurationLoader.parse("""
            [paths]
            spool = "/srv/spool"
            state = "/srv/state"
            [store]
            endpoint = "https://s3.example.gov"
            bucket = "evidence"
            prefix = "pd"
            credentials = "/etc/uploader/credentials"
            [upload]
            part_size = "16MiB"
            concurrency = 3
            [categories.evidence]
            retention = "2y"
            lock = "compliance"
            [categories.routine]
            retention = "90d"
            legal_hold = true
            [categories.homicide]
            retention = "indefinite"
            lock = "governance"
            [tagging]
            default_category = "routine"
            [tagging.users]
            officer-7 = "evidence"
            """, path: "/etc/uploader/uploader.toml", hostName: "dock1")
        #expect(original.categories.categories["evidence"] == RetentionCategory(name: "evidence", retentionDays: 730, lockMode: .compliance, legalHold: false))
        #expect(original.categories.categories["homicide"]?.holdsLegally == true)
        #expect(original.categories.userDefaults == ["officer-7": "evidence"])
        let again = try ConfigurationLoader.parse(ConfigRenderer.render(original), path: "/etc/uploader/uploader.toml", hostName: "dock1")
        #expect(again == original)
    }

    @Test func everyProblemIsReportedWithItsLineAndKey() throws {
        let text = """
            [paths]
            spool = "spool"

            [store]
            endpoint = "ftp://store"
            bucket = "Bad_Bucket"
            credentials = "env"
            addressing = "sideways"

            [upload]
            part_size = "1MiB"
            concurrency = 0
            colour = "blue"
            """
        let error = try #require(throws: UploaderError.self) {
            try ConfigurationLoader.parse(text, path: "/etc/uploader/uploader.toml")
        }
        let located = error.problems.map { "\($0.line ?? -1) \($0.key)" }
        #expect(located == ["5 store.endpoint", "6 store.bucket", "8 store.addressing", "11 upload.part_size",
                            "12 upload.concurrency", "13 upload.colour"])
        #expect(error.description.contains("then run `uploader config check`"))
    }

    @Test func badCategoriesAreProblemsWithTheirKeys() throws {
        let error = try #require(throws: UploaderError.self) {
            try ConfigurationLoader.parse("""
                [store]
                endpoint = "https://s3.example.gov"
                bucket = "evidence"
                credentials = "env"
                [categories.evidence]
                retention = "forever"
                lock = "strict"
                legal_hold = "yes"
                colour = "red"
                [tagging]
                default_category = "missing"
                [tagging.users]
                officer-1 = "nope"
                """, path: "c.toml")
        }
        #expect(Set(error.problems.map(\.key)) == ["categories.evidence.retention", "categories.evidence.lock", "categories.evidence.legal_hold",
                                                   "categories.evidence.colour", "tagging.default_category", "tagging.users"])
    }

    @Test func aMissingRequiredKeyNamesItsSection() throws {
        let error = try #require(throws: UploaderError.self) {
            try ConfigurationLoader.parse("[store]\nbucket = \"evidence\"\n", path: "c.toml")
        }
        #expect(error.problems.map(\.key) == ["store.endpoint", "store.credentials"])
        #expect(error.problems[0].message.contains("add `endpoint = "))
    }

    @Test func syntaxErrorsCarryTheirLine() throws {
        let error = try #require(throws: UploaderError.self) {
            try ConfigurationLoader.parse("[store]\nendpoint = \"https://x\"\nbucket = evidence\n", path: "c.toml")
        }
        #expect(error.problems.first?.line == 3)
        #expect(error.problems.first?.key == "syntax")
    }

    @Test func plainHTTPIsOnlyForThisMachine() throws {
        let base = "[store]\nbucket = \"evidence\"\ncredentials = \"env\"\n"
        #expect(throws: UploaderError.self) {
            try ConfigurationLoader.parse(base + "endpoint = \"http://10.0.0.5:9000\"\n", path: "c.toml")
        }
        let local = try ConfigurationLoader.parse(base + "endpoint = \"http://127.0.0.1:9000\"\n", path: "c.toml")
        #expect(local.store.endpoint == "http://127.0.0.1:9000")
    }

    @Test func relativePathsFollowTheConfigurationFile() throws {
        let configuration = try ConfigurationLoader.parse(
            "[paths]\nspool = \"s\"\n[store]\nendpoint = \"https://x.example\"\nbucket = \"evidence\"\ncredentials = \"creds\"\n",
            path: "/opt/site/uploader.toml")
        #expect(configuration.spoolDirectory == "/opt/site/s")
        #expect(configuration.store.credentials == .file("/opt/site/creds"))
        #expect(configuration.ledgerPath == "/var/lib/uploader/ledger.sqlite")
    }

    @Test func configPathPrecedence() {
        #expect(Configuration.resolvePath(explicit: "/a.toml", environment: ["UPLOADER_CONFIG": "/b.toml"]) == "/a.toml")
        #expect(Configuration.resolvePath(explicit: nil, environment: ["UPLOADER_CONFIG": "/b.toml"]) == "/b.toml")
        #expect(Configuration.resolvePath(explicit: nil, environment: [:]) == "/etc/uploader/uploader.toml")
    }

    @Test(arguments: [("64MiB", Int64(64 << 20)), ("5 MB", 5_000_000), ("1048576", 1_048_576), ("1.5GiB", Int64(1.5 * 1024 * 1024 * 1024))])
    func byteSizes(text: String, bytes: Int64) {
        #expect(ConfigurationLoader.parseByteSize(text) == bytes)
    }

    @Test func nonsenseSizesAreRefused() {
        #expect(ConfigurationLoader.parseByteSize("lots") == nil)
        #expect(ConfigurationLoader.parseByteSize("5 parsecs") == nil)
    }
}
