import Foundation
import GRDB
import Testing
import TestSupport
import UploaderCore

/// Where custody objects go, and what is said when they do not get there.
@Suite(.tags(.subprocess)) struct StorePrefixAndCheckpointTests {
    /// An account file whose prefix climbs out of its bucket
    /// (path-style: `bucket/../evidence2/…` is the bucket evidence2).
    @Test func anAccountImportWithAPrefixLeavingItsBucketIsRefusedAndChangesNothing() throws {
        let site = try TestSite.make()
        let configBefore = try String(contentsOfFile: site.configPath, encoding: .utf8)
        let credentialsBefore = try String(contentsOfFile: site.root + "/credentials", encoding: .utf8)
        try #"{"format": "uploader-account-v1", "endpoint": "https://s3.example.gov", "bucket": "evidence", "prefix": "../evidence2", "access_key_id": "NEW", "secret_access_key": "NEWSECRET"}"#
            .write(toFile: site.folder.sub("a.json"), atomically: true, encoding: .utf8)
        let result = try UploaderProcess.run(["account", "import", site.folder.sub("a.json")], config: site.configPath)
        #expect(result.status == 2, "\(result.stdout)\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1 && result.stderr.contains("prefix") && result.stderr.contains("nothing was changed"), "\(result.stderr)")
        #expect(try String(contentsOfFile: site.configPath, encoding: .utf8) == configBefore)
        #expect(try String(contentsOfFile: site.root + "/credentials", encoding: .utf8) == credentialsBefore)

        // The same prefix written into the configuration by hand.
        try configBefore.replacingOccurrences(of: "prefix = \"test-pd\"", with: "prefix = \"../evidence2\"").write(toFile: site.configPath, atomically: true, encoding: .utf8)
        let check = try UploaderProcess.run(["config", "check"], config: site.configPath)
        #expect(check.status == 2 && check.stderr.contains("store.prefix"), "\(check.stdout)\(check.stderr)")
    }

    /// A store that stays unreachable: the signed checkpoint waits in the ledger.
    /// After an hour that is an alert, a line of `status`, and an error in the log.
    @Test func aCheckpointUnpublishedForOverAnHourIsAnAlertAndShowsInStatus() throws {
        // The default endpoint is a closed port on this machine.
        let site = try TestSite.make()
        func run(_ arguments: [String]) throws -> UploaderProcess.Result { try UploaderProcess.run(arguments, config: site.configPath) }
        for arguments in [["simulate-camera", site.folder.sub("cam"), "--files", "1", "--size", "1MiB"],
                          ["device", "add", "BWC-1", "--user", "officer-1"],
                          ["ingest", site.folder.sub("cam"), "--serial", "BWC-1"]] {
            let result = try run(arguments)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
        }
        // Two: the upgrade to framed hashes (signed by the first command) and the ingest's.
        let queue = try DatabaseQueue(path: site.ledgerPath)
        #expect(try queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM checkpoint WHERE stored_at IS NULL") } ?? 0 > 0)
        // Within the hour it is only waiting.
        #expect(!(try run(["status"]).stdout.contains("NOT IN THE STORE")))
        #expect(!(try run(["alerts", "--dry-run"]).stdout.contains("checkpoint-unpublished")))

        try queue.write { try $0.execute(sql: "UPDATE checkpoint SET created_at = ?", arguments: [Date().addingTimeInterval(-2 * 3600)]) }
        let status = try run(["status"]).stdout
        #expect(status.contains("Custody checkpoints: 2 waiting for the store, the oldest signed 2h ago: NOT IN THE STORE for over an hour"), "\(status)")
        #expect(try run(["status", "--json"]).stdout.contains("\"unpublishedCheckpoints\""))
        #expect(try run(["alerts", "--dry-run"]).stdout.contains("due: [checkpoint-unpublished] "))

        let upload = try run(["upload", "--now"])
        #expect(upload.stderr.contains("error") && upload.stderr.contains("custody checkpoints have not reached the store for 2 hours"), "\(upload.stderr)")
        let log = try run(["log", "--level", "warning"]).stdout
        #expect(log.contains("[checkpoint-unpublished]"), "\(log)")
    }
}
