import Crypto
import Foundation
import GRDB
import LedgerSimulation
import Testing
import TestSupport
import Platform
import UploaderCore
@testable import Ledger

/// Legacy hashes joined fields with U+001F, so text could move between
/// fields (a row digest and actor into the message) without changing a hash.
/// From v12 hashes are framed; what came before is fixed by the upgrade.
@Suite struct FramedCustodyTests {
    /// A ledger as v11 left it: a file, and an event about it hashed the
    /// legacy way with the file's row digest and an actor.
    func legacyLedger() throws -> (folder: TemporaryDirectory, path: String) {
        let folder = TemporaryDirectory()
        let path = folder.sub("ledger.sqlite")
        let old = try DatabaseQueue(path: path)
        try Schema.migrator.migrate(old, upTo: "v11: cases, incidents, retention categories, cleared cameras, sidecars and camera clocks")
        try old.write { db in
            try db.execute(sql: """
                INSERT INTO device (serial, default_user, registered_at) VALUES ('BWC-1', 'officer-1', '2026-11-01 08:00:00.000');
                INSERT INTO media_file (id, serial, source_path, source_size, source_mtime_ns, state, user_id, recorded_at, discovered_at, updated_at)
                VALUES (1, 'BWC-1', 'DCIM/VID0001.MP4', 10, 1, 'discovered', 'officer-1', '2026-11-01 07:00:00.000', '2026-11-01 08:00:00.000', '2026-11-01 08:00:00.000');
                """)
            let row = try #require(try Row.fetchOne(db, sql: """
                SELECT id, serial, source_path, source_size, state, hold_reason, sha256, user_id, object_key, recorded_at, store_checksum FROM media_file WHERE id = 1
                """))
            let digest = Ledger.rowDigest(format: .legacy, fields: Ledger.rowDigestFields(row))
            let previous = try #require(try String.fetchOne(db, sql: "SELECT hash FROM event ORDER BY id DESC LIMIT 1"))
            let at = "2026-11-01 08:00:01.000", message = "discovered DCIM/VID0001.MP4 (10 bytes)"
            let hash = Ledger.eventHash(format: .legacy, previous: previous, at: at, level: "info", kind: "file.discovered", fileID: 1,
                                        serial: "BWC-1", user: "officer-1", message: message, rowDigest: digest, actor: "alice")
            try db.execute(sql: """
                INSERT INTO event (at, level, kind, file_id, serial, user_id, message, prev_hash, hash, row_digest, actor)
                VALUES (?, 'info', 'file.discovered', 1, 'BWC-1', 'officer-1', ?, ?, ?, ?, 'alice')
                """, arguments: [at, message, previous, hash, digest])
        }
        try old.close()
        return (folder, path)
    }

    func tamper(_ path: String, _ sql: String) throws {
        try DatabaseQueue(path: path).write { try $0.execute(sql: sql) }
    }

    func record(_ ledger: Ledger, file id: Int64) throws -> FileCustodyRecord {
        var selection = VerifySelection()
        selection.ids = [id]
        var found: FileCustodyRecord?
        try ledger.forEachFileRecord(selection) { found = $0 }
        return try #require(found)
    }

    @Test func theUpgradeKeepsLegacyHashesAndVouchesForEveryRowThroughItsBaseline() throws {
        let legacy = try legacyLedger()
        let path = legacy.path
        let ledger = try Ledger(path: path)
        let chain = try ledger.verifyChain()
        #expect(chain.intact && chain.events == 3, "\(chain)")
        let file = try record(ledger, file: 1)
        #expect(file.lastEventID == ledger.formatStart && file.lastEventDigest == file.currentDigest)
        // New events are framed, and still chain on.
        _ = try ledger.discover(serial: "BWC-1", sourcePath: "DCIM/VID0002.MP4", size: 5, modifiedNanoseconds: 2)
        #expect(try ledger.verifyChain().intact)
    }

    /// The attack: the digest and actor moved to the end of the
    /// message keep the legacy hash, and the row is then free to edit.
    @Test(arguments: [false, true]) func aRowDigestMovedIntoALegacyMessageIsCaught(beforeTheUpgrade: Bool) throws {
        let legacy = try legacyLedger()
        let path = legacy.path
        let attack = """
            DROP TRIGGER event_no_update;
            UPDATE event SET message = message || char(31) || row_digest || char(31) || actor, row_digest = NULL, actor = NULL WHERE file_id = 1;
            CREATE TRIGGER event_no_update BEFORE UPDATE ON event BEGIN SELECT RAISE(ABORT, 'the custody log is append-only'); END;
            """
        if beforeTheUpgrade { try tamper(path, attack) }
        let ledger = try Ledger(path: path)
        if !beforeTheUpgrade { try tamper(path, attack + "UPDATE media_file SET user_id = 'officer-99', recorded_at = '2026-11-02 07:00:00.000' WHERE id = 1;") }
        let chain = try ledger.verifyChain()
        #expect(!chain.intact, "\(chain)")
        #expect(chain.problem?.contains("holds a field separator (U+001F) inside a field") == true, "\(chain)")
    }

    /// From v7 every event about a file carries its row digest: one of that
    /// era without it (its hash consistent, as a rewriter would leave it) is a
    /// problem, never a quiet "row not covered".
    @Test func aLegacyEventAboutAFileWithoutARowDigestIsAProblem() throws {
        let legacy = try legacyLedger()
        try DatabaseQueue(path: legacy.path).write { db in
            let previous = try #require(try String.fetchOne(db, sql: "SELECT hash FROM event ORDER BY id DESC LIMIT 1"))
            let at = "2026-11-01 08:00:02.000", message = "assigned to officer-99"
            let hash = Ledger.eventHash(format: .legacy, previous: previous, at: at, level: "notice", kind: "file.discovered", fileID: 1,
                                        serial: "BWC-1", user: "officer-99", message: message, rowDigest: nil, actor: nil)
            try db.execute(sql: "INSERT INTO event (at, level, kind, file_id, serial, user_id, message, prev_hash, hash) VALUES (?, 'notice', 'file.discovered', 1, 'BWC-1', 'officer-99', ?, ?, ?)",
                           arguments: [at, message, previous, hash])
        }
        let chain = try Ledger(path: legacy.path).verifyChain()
        #expect(chain.problem?.contains("names file 1 but carries no row digest, which every such event has since event 1") == true, "\(chain)")
    }

    @Test func aRowEditedAfterTheUpgradeNoLongerMatchesItsBaseline() throws {
        let legacy = try legacyLedger()
        let path = legacy.path
        let ledger = try Ledger(path: path)
        try tamper(path, "UPDATE media_file SET user_id = 'officer-99' WHERE id = 1")
        let file = try record(ledger, file: 1)
        #expect(file.lastEventDigest != file.currentDigest)
        // Editing the baseline to match is caught by the digest the upgrade's event fixed.
        try tamper(path, "DROP TRIGGER custody_baseline_no_update; UPDATE custody_baseline SET row_digest = '\(file.currentDigest)' WHERE file_id = 1")
        #expect(try record(ledger, file: 1).lastEventDigest == file.currentDigest)
        let chain = try ledger.verifyChain()
        #expect(chain.problem?.contains("the custody baseline (1 file rows) is not the one event") == true, "\(chain)")
    }

    /// Framed events: no field can take another's bytes, and every event about a file carries its digest.
    @Test func aFramedEventCannotLoseItsRowDigest() throws {
        let folder = TemporaryDirectory()
        let path = folder.sub("ledger.sqlite")
        let ledger = try Ledger(path: path)
        try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        _ = try ledger.discover(serial: "BWC-1", sourcePath: "DCIM/a.mp4", size: 10, modifiedNanoseconds: 1)
        #expect(try ledger.verifyChain().intact)
        try tamper(path, """
            DROP TRIGGER event_no_update;
            UPDATE event SET message = message || char(31) || row_digest || char(31) || coalesce(actor, ''), row_digest = NULL, actor = NULL WHERE file_id = 1;
            """)
        let chain = try ledger.verifyChain()
        #expect(chain.problem?.contains("was altered after it was written") == true, "\(chain)")
    }
}
