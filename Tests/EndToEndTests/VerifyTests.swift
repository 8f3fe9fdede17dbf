import Foundation
import GRDB
import Testing
import TestSupport
@testable import Ledger
@testable import Transport
import UploaderCore

/// `uploader verify` against a real SeaweedFS: every kind of tampering named
/// by the file it touches, with a non-zero exit.
@Suite(.tags(.store, .subprocess)) struct VerifyTests {
    /// A camera of three 1 MiB recordings, registered, ingested and uploaded.
    static func uploadedSite(lockedBucket: Bool = false) throws -> TestSite {
        let site = try TestSite.make("verify") { $0.store(lockedBucket: lockedBucket) }
        try site.dockSimulatedCamera(serial: "BWC-3001", user: "officer-31", files: 3)
        try site.run(["upload"])
        return site
    }

    @Test func anUntouchedDockVerifiesClean() throws {
        let flow = try Self.uploadedSite()
        let check = try UploaderProcess.run(["store", "check"], config: flow.configPath)
        #expect(check.stdout.contains("Object Lock: off (custody checkpoints are write-once for this agent only"), "\(check.stdout)")
        let result = try flow.verify()
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.split(separator: "\n").filter { $0.hasSuffix(": ok") }.count == 3, "\(result.stdout)")
        #expect(result.stdout.contains("3 files: 3 ok, 0 with problems; custody log intact"))
        #expect(result.stdout.contains("checkpoints signed; the store's newest signed checkpoint (event"), "\(result.stdout)")
    }

    /// The newest checkpoint object in the store, and its event id.
    func newestCheckpoint(_ flow: TestSite) throws -> (key: String, eventID: Int64) {
        let client = flow.store.client(bucket: flow.area.bucket)
        let key = try #require(try client.listObjectKeys(prefix: flow.area.prefix + "/_custody/").filter { $0.hasSuffix(".json") }.max())
        let body = try #require(try client.getSmall(key: key))
        let signed = try JSONDecoder().decode(SignedCheckpoint.self, from: Data(body))
        return (key, try #require(signed.decodedPayload).lastEventID)
    }

    @Test func deletingTheNewestEventsIsCaughtByTheStoresCheckpoint() throws {
        let flow = try Self.uploadedSite()
        let (_, eventID) = try newestCheckpoint(flow)
        try flow.tamper("DROP TRIGGER event_no_delete; DELETE FROM event WHERE id >= \(eventID)")
        // The chain that is left is whole: only the anchor tells.
        #expect(try UploaderProcess.run(["log", "--verify"], config: flow.configPath).status == 0)
        let result = try flow.verify()
        #expect(result.status == 4)
        #expect(result.stdout.contains("custody: the store's newest checkpoint") && result.stdout.contains("event \(eventID), which it signed, is missing from the custody log: the log was cut short"), "\(result.stdout)")
    }

    @Test func aChainRecomputedAfterAnEditIsCaughtByTheStoresCheckpoint() throws {
        let flow = try Self.uploadedSite()
        try flow.tamper("DROP TRIGGER event_no_update; UPDATE event SET message = 'officer-99 held the camera' WHERE id = 3")
        // Re-chain every event after the edit, as a careful tamperer would.
        let queue = try DatabaseQueue(path: flow.ledgerPath)
        try queue.write { db in
            var previous = Ledger.genesisHash
            let framedFrom = try Int64.fetchOne(db, sql: "SELECT min(id) FROM event WHERE kind = 'custody.format'") ?? 0
            for row in try Row.fetchAll(db, sql: "SELECT * FROM event ORDER BY id") {
                let hash = Ledger.eventHash(format: row["id"] >= framedFrom ? .framed : .legacy, previous: previous, at: row["at"], level: row["level"], kind: row["kind"], fileID: row["file_id"],
                                            serial: row["serial"], user: row["user_id"], message: row["message"],
                                            rowDigest: row["row_digest"], actor: row["actor"])
                try db.execute(sql: "UPDATE event SET prev_hash = ?, hash = ? WHERE id = ?", arguments: [previous, hash, row["id"] as Int64])
                previous = hash
            }
        }
        #expect(try UploaderProcess.run(["log", "--verify"], config: flow.configPath).stdout.contains("custody log intact"))
        let result = try flow.verify(["--all"])
        #expect(result.status == 4)
        #expect(result.stdout.contains("the custody log was rewritten: event"), "\(result.stdout)")
    }

    @Test func aTamperedCheckpointObjectIsCaught() throws {
        let flow = try Self.uploadedSite()
        let (key, _) = try newestCheckpoint(flow)
        let client = flow.store.client(bucket: flow.area.bucket)
        var signed = try JSONDecoder().decode(SignedCheckpoint.self, from: Data(try #require(try client.getSmall(key: key))))
        var payload = try #require(signed.decodedPayload)
        payload.files += 1
        signed.payload = String(decoding: payload.canonicalBytes(), as: UTF8.self)
        let replaced = try client.send("PUT", key: key, query: [], headers: [:], body: .bytes(signed.encoded()))
        #expect(replaced.status == 200)
        let result = try flow.verify()
        #expect(result.status == 4)
        #expect(result.stdout.contains("its signature does not match its content: it was altered"), "\(result.stdout)")
    }

    @Test func checkpointsInALockedBucketAreWrittenOnceAndLocked() throws {
        let flow = try Self.uploadedSite(lockedBucket: true)
        let (key, _) = try newestCheckpoint(flow)
        let client = flow.store.client(bucket: flow.area.bucket)
        let head = try client.send("HEAD", key: key, query: [], headers: [:], body: .none)
        #expect(head.headers["x-amz-object-lock-mode"] == "GOVERNANCE", "\(head.headers)")
        let until = try #require(head.headers["x-amz-object-lock-retain-until-date"].flatMap(Timestamps.parse))
        #expect(until > Date().addingTimeInterval(3600 * 24 * 3000))
        let check = try UploaderProcess.run(["store", "check"], config: flow.configPath)
        #expect(check.status == 0 && check.stdout.contains("Object Lock: enabled (custody checkpoints are locked in governance mode for 3650 days)"), "\(check.stdout)")
        #expect(check.stdout.contains("versioning: enabled"), "\(check.stdout)")
        // A second write of the same checkpoint is refused by the store itself.
        #expect(try client.putOnce(key: key, bytes: Array("forged".utf8), contentType: "application/json") == .exists)
        #expect(try flow.verify().status == 0)
    }

    @Test func aFileRowEditedBehindTheLedgersBackIsNamed() throws {
        let flow = try Self.uploadedSite()
        try flow.tamper("UPDATE media_file SET user_id = 'officer-99' WHERE id = 2")
        let result = try flow.verify()
        #expect(result.status == 4)
        #expect(flow.line(result, file: 2).contains("the ledger row (state, hash, size, user, key or recording time) was changed after event"))
        #expect(flow.line(result, file: 1).hasSuffix(": ok") && flow.line(result, file: 3).hasSuffix(": ok"))
        try flow.tamper("UPDATE media_file SET user_id = 'officer-31', sha256 = '\(String(repeating: "a", count: 64))' WHERE id = 2")
        #expect(flow.line(try flow.verify(), file: 2).contains("the ledger row"))
    }

    /// Issue 14.1 on a live dock: the file's events lose their row digest and
    /// actor into the message, then the officer and recording time are changed,
    /// with a custody period to match (before v12: every line "ok", exit 0).
    @Test func aRowDigestMovedIntoTheMessageBeforeARowEditIsCaught() throws {
        let flow = try Self.uploadedSite()
        try flow.tamper("""
            DROP TRIGGER event_no_update;
            UPDATE event SET message = message || char(31) || row_digest || char(31) || coalesce(actor, ''), row_digest = NULL, actor = NULL WHERE file_id = 2;
            UPDATE media_file SET user_id = 'officer-99', recorded_at = '2026-01-01 00:00:00.000' WHERE id = 2;
            INSERT INTO custody_period (serial, user_id, valid_from, valid_until, created_at)
            VALUES ('BWC-3001', 'officer-99', '2025-12-31 00:00:00.000', '2026-01-02 00:00:00.000', '2026-01-01 00:00:00.000');
            """)
        let result = try flow.verify()
        #expect(result.status == 4)
        #expect(result.stdout.contains("custody log BROKEN: event") && result.stdout.contains("was altered after it was written"), "\(result.stdout)")
        #expect(!flow.line(result, file: 2).hasSuffix(": ok"), "\(result.stdout)")
    }

    /// The upgrade's event fixes every row's baseline: the first command that
    /// writes the ledger signs it, so it is anchored before anything else changes.
    @Test func theUpgradeToFramedHashesIsSignedByTheFirstCommand() throws {
        let site = try TestSite.make("upgrade")
        #expect(try UploaderProcess.run(["device", "add", "BWC-1", "--user", "officer-1"], config: site.configPath).status == 0)
        let covered = try DatabaseQueue(path: site.ledgerPath).read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM checkpoint WHERE event_id >= (SELECT min(id) FROM event WHERE kind = 'custody.format'))")
        }
        #expect(covered == true)
    }

    /// Issue 14.7: without the key, "N checkpoints signed" proved nothing.
    @Test func aRemovedDockKeyIsAProblemAndTheStoresKeyStillChecksTheCheckpoints() throws {
        let flow = try Self.uploadedSite()
        try FileManager.default.removeItem(atPath: flow.root + "/state/dock-key")
        var result = try flow.verify(["--all", "--offline"])
        #expect(result.status == 4, "\(result.stdout)")
        #expect(result.stdout.contains("custody: the dock key \(flow.root)/state/dock-key is missing: the"), "\(result.stdout)")
        // With the store, the published key still checks every local checkpoint: a forged one is named.
        try flow.tamper("UPDATE checkpoint SET body = replace(body, '\"signature\" : \"', '\"signature\" : \"AAAA') WHERE event_id = (SELECT min(event_id) FROM checkpoint)")
        result = try flow.verify()
        #expect(result.status == 4)
        #expect(result.stdout.contains("(checked with the store's published key)"), "\(result.stdout)")
    }

    @Test func anEditedEventBreaksTheChain() throws {
        let flow = try Self.uploadedSite()
        try flow.tamper("DROP TRIGGER event_no_update; UPDATE event SET message = 'nothing happened' WHERE id = 3")
        let result = try flow.verify()
        #expect(result.status == 4)
        #expect(result.stdout.contains("custody log BROKEN: event 3 was altered after it was written"))
    }

    @Test func aReplacedSpoolCopyIsNamed() throws {
        let flow = try Self.uploadedSite()
        let names = try DatabaseQueue(path: flow.ledgerPath).read { try String.fetchAll($0, sql: "SELECT spool_name FROM media_file WHERE id IN (1, 2) ORDER BY id") }
        let objects = flow.spool + "/objects/"
        // Another file's copy, sealed with the same key (someone holding the keyring): it opens, and its hash gives it away.
        try FileManager.default.removeItem(atPath: objects + names[0])
        try FileManager.default.copyItem(atPath: objects + names[1], toPath: objects + names[0])
        var result = try flow.verify(["#1", "--offline"])
        #expect(result.status == 4)
        #expect(flow.line(result, file: 1).contains("the spool copy \(names[0]) has SHA-256"), "\(result.stdout)")
        // Bytes that were never sealed: the copy does not open.
        try Data(repeating: 7, count: 1 << 20).write(to: URL(fileURLWithPath: objects + names[0]))
        result = try flow.verify(["#1", "--offline"])
        #expect(result.status == 4)
        #expect(flow.line(result, file: 1).contains("the spool copy \(names[0]) cannot be read: the spool copy \(names[0]) has no valid encryption header"), "\(result.stdout)")
    }

    @Test func anObjectDeletedOrOverwrittenInTheStoreIsNamed() throws {
        let flow = try Self.uploadedSite()
        let client = flow.store.client(bucket: flow.area.bucket)
        // The store admin's own credentials: delete one object, overwrite another.
        let deleted = try client.send("DELETE", key: try flow.objectKey(1), query: [], headers: [:], body: .none)
        #expect(deleted.status == 204 || deleted.status == 200)
        let replaced = try client.send("PUT", key: try flow.objectKey(2), query: [], headers: ["x-amz-meta-sha256": "forged"],
                                       body: .bytes(Array("not the video".utf8)))
        #expect(replaced.status == 200)
        let result = try flow.verify()
        #expect(result.status == 4)
        #expect(flow.line(result, file: 1).contains("is gone from the store"))
        let line = flow.line(result, file: 2)
        #expect(line.contains("the store holds \(try flow.objectKey(2)) with 13 bytes") && line.contains("the object was replaced"), "\(line)")
        #expect(flow.line(result, file: 3).hasSuffix(": ok"))
    }
}

extension VerifyTests {
    /// A checkpoint's counts are the log's: 3 files, and every event up to it.
    @Test func aCheckpointCountsTheFilesAndEventsItCovers() throws {
        let flow = try Self.uploadedSite()
        let (key, eventID) = try newestCheckpoint(flow)
        let body = try #require(try flow.store.client(bucket: flow.area.bucket).getSmall(key: key))
        let payload = try #require(try JSONDecoder().decode(SignedCheckpoint.self, from: Data(body)).decodedPayload)
        #expect(payload.files == 3)
        #expect(payload.events == eventID)
        #expect(payload.dock == (try flow.configuration()).hostName)
    }
}

/// `uploader verify`, and a tamperer's hand on the ledger, for the suites that check what verify finds.
extension TestSite {
    func verify(_ arguments: [String] = ["--all"]) throws -> UploaderProcess.Result {
        try cli(["verify"] + arguments)
    }

    /// The ledger opened behind the agent's back, as a tamperer would.
    func tamper(_ sql: String) throws {
        let queue = try DatabaseQueue(path: ledgerPath)
        try queue.write { try $0.execute(sql: sql) }
    }

    func line(_ result: UploaderProcess.Result, file id: Int) -> String {
        result.stdout.split(separator: "\n").first { $0.hasPrefix("#\(id) ") }.map(String.init) ?? ""
    }

    func objectKey(_ id: Int) throws -> String {
        try DatabaseQueue(path: ledgerPath).read { try String.fetchOne($0, sql: "SELECT object_key FROM media_file WHERE id = ?", arguments: [id])! }
    }
}
