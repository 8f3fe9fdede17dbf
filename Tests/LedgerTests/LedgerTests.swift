import Crypto
import Foundation
import GRDB
import LedgerSimulation
import Testing
import TestSupport
import Platform
import UploaderCore
@testable import Ledger

@Suite struct CustodyLogTests {
    @Test func theChainVerifiesWhenUntouched() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        _ = try ledger.discover(serial: "BWC-1", sourcePath: "DCIM/a.mp4", size: 10, modifiedNanoseconds: 1)
        let result = try ledger.verifyChain()
        #expect(result.intact)
        // The schema's own events (v7: from here on events cover rows; v12: framed hashes), then the two.
        #expect(result.events == 4)
    }

    @Test func theLogRefusesUpdatesAndDeletes() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.log(EventDraft(.info, .ingestStarted, "first"))
        #expect(throws: (any Error).self) {
            try ledger.pool.write { try $0.execute(sql: "UPDATE event SET message = 'rewritten'") }
        }
        #expect(throws: (any Error).self) {
            try ledger.pool.write { try $0.execute(sql: "DELETE FROM event") }
        }
    }

    @Test func anAlteredOrRemovedEventIsFound() throws {
        let folder = TemporaryDirectory()
        let path = folder.sub("ledger.sqlite")
        do {
            let ledger = try Ledger(path: path)
            for index in 1...5 { try ledger.log(EventDraft(.info, .ingestStarted, "event \(index)")) }
        }
        // Someone with raw database access drops the guard and edits history.
        let raw = try DatabaseQueue(path: path)
        try raw.write { db in
            try db.execute(sql: "DROP TRIGGER event_no_update; DROP TRIGGER event_no_delete")
            try db.execute(sql: "UPDATE event SET message = 'nothing happened' WHERE id = 3")
        }
        let altered = try Ledger(path: path).verifyChain()
        #expect(!altered.intact)
        #expect(altered.firstBrokenEventID == 3)
        #expect(altered.problem?.contains("altered") == true)

        try raw.write { db in
            try db.execute(sql: "UPDATE event SET message = 'event 3' WHERE id = 3")
            try db.execute(sql: "DELETE FROM event WHERE id = 2")
        }
        let removed = try Ledger(path: path).verifyChain()
        #expect(removed.firstBrokenEventID == 3)
        #expect(removed.problem?.contains("removed or inserted") == true)
    }
}

@Suite struct FileRowTests {
    @Test func aCameraFileHasOneRowHoweverOftenItIsSeen() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        let first = try ledger.discover(serial: "BWC-1", sourcePath: "DCIM/a.mp4", size: 10, modifiedNanoseconds: 5)
        let second = try ledger.discover(serial: "BWC-1", sourcePath: "DCIM/a.mp4", size: 10, modifiedNanoseconds: 5)
        #expect(first.isNew && !second.isNew)
        #expect(first.file.id == second.file.id)
        // The same name with new content (a camera that reuses names after being cleared) is a new file.
        let reused = try ledger.discover(serial: "BWC-1", sourcePath: "DCIM/a.mp4", size: 11, modifiedNanoseconds: 9)
        #expect(reused.isNew && reused.file.id != first.file.id)
        #expect(try ledger.files().count == 2)
    }

    @Test func theSchemaRefusesASpooledFileWithoutAHash() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        let row = try ledger.discover(serial: "BWC-1", sourcePath: "a.mp4", size: 1, modifiedNanoseconds: 1).file
        _ = try ledger.markCopying(row.id)
        // copying → spooled is an allowed change: only the CHECK on the hash can refuse it.
        let error = #expect(throws: DatabaseError.self) {
            try ledger.pool.write { try $0.execute(sql: "UPDATE media_file SET state = 'spooled' WHERE id = ?", arguments: [row.id]) }
        }
        #expect(error?.resultCode == .SQLITE_CONSTRAINT)
    }

    @Test func registeringAnUnknownCameraReleasesItsHeldFiles() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        let row = try ledger.discover(serial: "BWC-9", sourcePath: "a.mp4", size: 1, modifiedNanoseconds: 1).file
        _ = try ledger.markCopying(row.id)
        let held = try ledger.markSpooled(row.id, copy: SpooledCopy(sha256: SHA256Digest(bytes: Array(repeating: 0xaa, count: 32)), spoolName: "1.mp4",
                                                                     partSize: 5 << 20, partHashes: [SHA256Digest(bytes: Array(repeating: 0xaa, count: 32))],
                                                                     recordedAt: Date(), recordedAtSource: .containerMetadata))
        #expect(held.state == .quarantined)
        #expect(held.holdReason == .unknownDevice)
        #expect(try ledger.uploadQueue().isEmpty)
        #expect(try ledger.addDevice(serial: "BWC-9", defaultUser: "officer-9", name: nil, model: nil) == 1)
        let released = try #require(try ledger.file(row.id))
        #expect(released.state == .spooled)
        #expect(released.user == "officer-9")
        #expect(try ledger.uploadQueue().map(\.id) == [row.id])
    }

    @Test func aLateAssignmentReattributesFilesNotYetUploading() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.addDevice(serial: "POOL-1", defaultUser: "pool", name: nil, model: nil)
        let recorded = Date(timeIntervalSince1970: 1_795_000_000)
        let row = try spooledFile(ledger, serial: "POOL-1", recordedAt: recorded)
        #expect(try ledger.file(row.id)?.user == "pool")
        #expect(try ledger.assign(serial: "POOL-1", user: "officer-3", from: recorded - 60, until: recorded + 60).reattributed == 1)
        #expect(try ledger.file(row.id)?.user == "officer-3")
        // Once its key is fixed the attribution does not move.
        let owner = ProcessIdentity.newOwner("test")
        _ = try #require(try ledger.claimForUpload(row.id, owner: owner))
        _ = try ledger.beginUpload(row.id, objectKey: "k", owner: owner)
        let period = try #require(try ledger.custody(serial: "POOL-1").first)
        #expect(try ledger.unassign(serial: "POOL-1", periodID: period.id).reattributed == 0)
        #expect(try ledger.assign(serial: "POOL-1", user: "officer-4", from: recorded - 30, until: recorded + 30).reattributed == 0)
        #expect(try ledger.file(row.id)?.user == "officer-3")
    }

    @Test func aViewerCannotOpenALedgerThatDoesNotExist() {
        let folder = TemporaryDirectory()
        let error = #expect(throws: UploaderError.self) { try Ledger(path: folder.sub("none.sqlite"), readOnly: true) }
        #expect(error?.message.contains("nothing has been ingested") == true)
    }
}

/// A file discovered, copied and spooled through the ledger's own transitions.
func spooledFile(_ ledger: Ledger, serial: String, path: String = "a.mp4", recordedAt: Date = Date()) throws -> MediaFile {
    let row = try ledger.discover(serial: serial, sourcePath: path, size: 1, modifiedNanoseconds: 1).file
    _ = try #require(try ledger.markCopying(row.id))
    let hash = SHA256Digest(bytes: Array(repeating: 0xbb, count: 32))
    return try ledger.markSpooled(row.id, copy: SpooledCopy(sha256: hash, spoolName: "\(row.id).mp4", partSize: 5 << 20, partHashes: [hash],
                                                           recordedAt: recordedAt, recordedAtSource: .containerMetadata))
}

@Suite struct StateMachineTests {
    @Test func theTransitionTableAllowsNoWayOutOfVerified() {
        for state in FileState.allCases {
            #expect(!FileState.verified.canChange(to: state))
        }
        #expect(FileState.uploaded.canChange(to: .verified))
        #expect(!FileState.spooled.canChange(to: .verified))
        #expect(!FileState.copying.canChange(to: .uploading))
    }

    @Test func theSchemaEnforcesTheDomainsTransitionTable() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        let stored = try ledger.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT from_state, to_state FROM state_transition").map { "\($0["from_state"] as String)→\($0["to_state"] as String)" }
        }
        let domain = FileState.allCases.flatMap { target in
            target.allowedSources.filter { $0 != target }.map { "\($0.rawValue)→\(target.rawValue)" }
        }
        #expect(Set(stored) == Set(domain), "the transition table changed: add a migration that rewrites state_transition")
        try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let file = try spooledFile(ledger, serial: "BWC-1")
        // Raw SQL that skips the ledger's checks is refused by the schema itself.
        #expect(throws: (any Error).self) {
            try ledger.pool.write { try $0.execute(sql: "UPDATE media_file SET state = 'verified' WHERE id = ?", arguments: [file.id]) }
        }
        #expect(try ledger.file(file.id)?.state == .spooled)
    }

    @Test func aChangeFromAStateTheWriterDidNotExpectIsRefused() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let file = try spooledFile(ledger, serial: "BWC-1")
        // A late copy failure from a second process must not overwrite `spooled`.
        let error = #expect(throws: UploaderError.self) { try ledger.markCopyFailed(file.id, error: "late") }
        #expect(error?.code == .transitionRefused)
        #expect(error?.underlying == .transition(from: .spooled, to: .failed))
        #expect(try ledger.file(file.id)?.state == .spooled)
        // The state machine does not copy a secured file again.
        #expect(try ledger.markCopying(file.id) == nil)
    }

    @Test func oneUploaderHoldsAFileAndAVerifiedFileIsNeverClaimed() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let file = try spooledFile(ledger, serial: "BWC-1")
        let first = ProcessIdentity.newOwner("a"), second = ProcessIdentity.newOwner("b")
        #expect(try ledger.claimForUpload(file.id, owner: first) != nil)
        // The same (live) process's other run is refused: one holder at a time.
        #expect(try ledger.claimForUpload(file.id, owner: second) == nil)
        _ = try ledger.beginUpload(file.id, objectKey: "k", owner: first)
        let refused = #expect(throws: UploaderError.self) { try ledger.markUploaded(file.id, owner: second) }
        #expect(refused?.code == .transitionRefused)
        try ledger.markUploaded(file.id, owner: first)
        try ledger.markVerified(file.id, storeChecksum: "x", owner: first)
        #expect(try ledger.claimForUpload(file.id, owner: second) == nil)
        #expect(try ledger.claimForUpload(file.id, owner: second, force: true) == nil)
    }

    @Test func aDeadHoldersClaimIsTakenOverAtOnce() throws {
        let folder = TemporaryDirectory()
        let dead = ClaimOwner(host: "h", boot: "b", pid: 1, startTime: 1, nonce: "gone")
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"), isAlive: { $0 != dead })
        try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let file = try spooledFile(ledger, serial: "BWC-1")
        #expect(try ledger.claimForUpload(file.id, owner: dead) != nil)
        let heir = ProcessIdentity.newOwner("heir")
        #expect(try ledger.claimForUpload(file.id, owner: heir)?.claimOwner == heir.token)
        #expect(try ledger.events(EventFilter(minimumLevel: .warning)).contains { $0.kind == .uploadTakenOver })
    }

    @Test func cancellingTakesTheFileFromItsUploader() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let file = try spooledFile(ledger, serial: "BWC-1")
        let owner = ProcessIdentity.newOwner("upload")
        _ = try ledger.claimForUpload(file.id, owner: owner)
        _ = try ledger.beginUpload(file.id, objectKey: "k", owner: owner)
        try ledger.recordUploadID(file.id, uploadID: "u-1", owner: owner)
        let before = try ledger.markCancelled(file.id, reason: "admin")
        #expect(before.uploadID == "u-1")
        let late = #expect(throws: UploaderError.self) { try ledger.recordPart(file.id, number: 1, etag: "e", owner: owner) }
        #expect(late?.code == .transitionRefused)
        #expect(try ledger.file(file.id)?.state == .cancelled)
        #expect(try ledger.retryNow([file.id]) == [file.id])
        #expect(try ledger.file(file.id)?.state == .spooled)
    }

    @Test func twoFilesWhoseTemplateValuesAreEqualGetDistinctKeys() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let a = try spooledFile(ledger, serial: "BWC-1", path: "DCIM/100BWC/FILE0001.MP4")
        let b = try spooledFile(ledger, serial: "BWC-1", path: "DCIM/101BWC/FILE0001.MP4")
        let owner = ProcessIdentity.newOwner("upload")
        _ = try ledger.claimForUpload(a.id, owner: owner)
        _ = try ledger.claimForUpload(b.id, owner: owner)
        let first = try ledger.beginUpload(a.id, objectKey: "p/officer-1/FILE0001.MP4", owner: owner)
        let second = try ledger.beginUpload(b.id, objectKey: "p/officer-1/FILE0001.MP4", owner: owner)
        #expect(first.objectKey == "p/officer-1/FILE0001.MP4")
        #expect(second.objectKey == "p/officer-1/FILE0001~\(b.id).MP4")
    }
}

@Suite struct CustodyPeriodTests {
    @Test func overlappingPeriodsAreRefusedAndAnOpenOneIsHandedOver() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.addDevice(serial: "POOL-1", defaultUser: "pool", name: nil, model: nil)
        let t = Date(timeIntervalSince1970: 1_795_000_000)
        _ = try ledger.assign(serial: "POOL-1", user: "officer-1", from: t, until: t + 3600)
        let same = #expect(throws: UploaderError.self) {
            try ledger.assign(serial: "POOL-1", user: "officer-2", from: t, until: t + 3600)
        }
        #expect(same?.message.contains("overlaps custody period") == true)
        #expect(throws: UploaderError.self) { try ledger.assign(serial: "POOL-1", user: "officer-2", from: t + 1800, until: t + 7200) }
        // An open period is a hand-over: the earlier holder's period ends, and the log says so.
        _ = try ledger.assign(serial: "POOL-1", user: "officer-2", from: t + 3600, until: nil)
        let handover = try ledger.assign(serial: "POOL-1", user: "officer-3", from: t + 7200, until: nil)
        #expect(handover.endedPeriod?.user == "officer-2")
        #expect(try ledger.custody(serial: "POOL-1").map(\.user) == ["officer-1", "officer-2", "officer-3"])
        #expect(try ledger.events(EventFilter()).contains { $0.kind == .deviceUnassigned })
    }

    @Test func emptyOrControlCharacterNamesAreRefused() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        #expect(throws: UploaderError.self) { try ledger.addDevice(serial: "", defaultUser: "u", name: nil, model: nil) }
        #expect(throws: UploaderError.self) { try ledger.addDevice(serial: "S1", defaultUser: "bad\u{1b}[2J", name: nil, model: nil) }
        try ledger.addDevice(serial: "S1", defaultUser: "u", name: nil, model: nil)
        #expect(throws: UploaderError.self) { try ledger.assign(serial: "S1", user: "", from: Date(), until: nil) }
        #expect(throws: UploaderError.self) { try ledger.assign(serial: "S1", user: " x", from: Date(), until: nil) }
    }
}

@Suite struct ScaleTests {
    @Test func noHotQueryScansTheFilesOrTheLog() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.simulateHistory(devices: 3, files: 300, eventsPerFile: 10, recentFiles: 20)
        // The planner's statistics, as a long-serving ledger would have them.
        try ledger.pool.write { try $0.execute(sql: "ANALYZE") }
        for (name, plan) in try ledger.hotQueryPlans() where !Ledger.stopsAfterLimit.contains(name) {
            let scans = plan.filter { $0.hasPrefix("SCAN media_file") || $0.hasPrefix("SCAN event") || $0.contains("SCAN started") }
            #expect(scans.isEmpty, "\(name): \(plan)")
        }
        for query in Ledger.hotQueries() where Ledger.stopsAfterLimit.contains(query.name) {
            #expect(query.sql.contains(" LIMIT 1"), "\(query.name) may scan only because it stops after one row")
        }
    }

    @Test func theCountersEqualACountOfTheRows() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.simulateHistory(devices: 4, files: 120, eventsPerFile: 9, recentFiles: 30)
        try ledger.addDevice(serial: "BWC-X", defaultUser: "officer-x", name: nil, model: nil)
        let file = try spooledFile(ledger, serial: "BWC-X")
        _ = try ledger.markCancelled(file.id, reason: "test")
        _ = try ledger.retryNow([file.id])
        try ledger.pool.read { db in
            let counted = try Row.fetchAll(db, sql: """
                SELECT serial, state, COUNT(*) AS files, SUM(source_size) AS bytes FROM media_file GROUP BY serial, state
                UNION ALL
                SELECT serial, '~spool', COUNT(*), SUM(source_size) FROM media_file WHERE spool_name IS NOT NULL AND spool_purged_at IS NULL GROUP BY serial
                ORDER BY 1, 2
                """).map { "\($0["serial"] as String) \($0["state"] as String) \($0["files"] as Int) \($0["bytes"] as Int64)" }
            let kept = try Row.fetchAll(db, sql: "SELECT serial, state, files, bytes FROM file_count WHERE files != 0 ORDER BY 1, 2")
                .map { "\($0["serial"] as String) \($0["state"] as String) \($0["files"] as Int) \($0["bytes"] as Int64)" }
            #expect(kept == counted)
            let events = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM event")
            #expect(try Int.fetchOne(db, sql: "SELECT SUM(events) FROM event_count") == events)
        }
        let summary = try ledger.summary()
        #expect(summary.states[.verified]?.count == 90)
        #expect(summary.states[.spooled]?.count == 31)
        #expect(summary.spoolFiles == 31)
        #expect(try ledger.verifyChain().intact)
    }

    @Test func aLedgerFromThePreviousReleaseMigratesWithItsCountsAndAlerts() throws {
        let folder = TemporaryDirectory()
        let path = folder.sub("ledger.sqlite")
        do {
            // The schema as the previous release left it, with history written by hand.
            let old = try DatabaseQueue(path: path)
            try Schema.migrator.migrate(old, upTo: "v3: spool purges")
            try old.write { db in
                for (index, state) in ["verified", "verified", "spooled", "failed"].enumerated() {
                    try db.execute(sql: """
                        INSERT INTO media_file (serial, source_path, source_size, source_mtime_ns, state, sha256, spool_name, discovered_at, updated_at)
                        VALUES ('OLD-1', ?, 100, 1, ?, ?, ?, '2025-01-01 00:00:00.000', '2025-01-01 00:00:00.000')
                        """, arguments: ["v\(index).mp4", state, String(repeating: "a", count: 64), "\(index + 1).mp4"])
                }
                try db.execute(sql: """
                    INSERT INTO event (at, level, kind, message, prev_hash, hash)
                    VALUES ('2025-01-01 00:00:00.000', 'warning', 'alert.sent', '[file-4-failed] stuck (sent to log)', ?, ?)
                    """, arguments: [Ledger.genesisHash, String(repeating: "b", count: 64)])
            }
        }
        let ledger = try Ledger(path: path)
        let summary = try ledger.summary()
        #expect(summary.states[.verified]?.count == 2)
        #expect(summary.states[.failed]?.bytes == 100)
        #expect(summary.spoolFiles == 4)
        #expect(try ledger.lastAlert(key: "file-4-failed") != nil)
    }

    @Test func anAlertIsDeduplicatedByItsKey() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        let alert = Alert(key: "file-1-failed", message: "m", fileID: nil, serial: nil)
        #expect(try ledger.lastAlert(key: alert.key) == nil)
        try ledger.recordAlertSent(alert, via: ["log"])
        #expect(try ledger.lastAlert(key: alert.key) != nil)
        #expect(try ledger.lastAlert(key: "file-1") == nil)
    }
}

@Suite struct LedgerUpgradeTests {
    @Test func aDamagedLedgerSaysSoWithSQLitesCode() throws {
        let folder = TemporaryDirectory()
        let path = folder.sub("ledger.sqlite")
        try String(repeating: "not a database ", count: 400).write(toFile: path, atomically: true, encoding: .utf8)
        let error = #expect(throws: UploaderError.self) { try Ledger(path: path) }
        #expect(error?.message.contains("damaged") == true)
        #expect(error?.underlying == .sqlite(ResultCode.SQLITE_NOTADB.rawValue))
    }

    @Test func aViewerOnALedgerThatNeedsAnUpgradeSaysWhatToRun() throws {
        let folder = TemporaryDirectory()
        let path = folder.sub("ledger.sqlite")
        do {
            let old = try DatabaseQueue(path: path)
            try Schema.migrator.migrate(old, upTo: "v3: spool purges")
        }
        let error = #expect(throws: UploaderError.self) { try Ledger(path: path, readOnly: true) }
        #expect(error?.message.contains("uploader housekeeping") == true)
        _ = try Ledger(path: path)
        _ = try Ledger(path: path, readOnly: true)
    }

    /// Events written before v7 keep their hashes; the upgrade adds its own
    /// event and the chain stays whole across it.
    @Test func theRowDigestUpgradeKeepsAnOldChainWhole() throws {
        let folder = TemporaryDirectory()
        let path = folder.sub("ledger.sqlite")
        do {
            let old = try DatabaseQueue(path: path)
            try Schema.migrator.migrate(old, upTo: "v6: the transition table in the schema")
            try old.write { db in
                var previous = Ledger.genesisHash
                for (index, message) in ["device BWC-1 registered to officer-1", "discovered DCIM/a.mp4"].enumerated() {
                    let at = "2026-11-0\(index + 1) 08:00:00.000"
                    let hash = Ledger.eventHash(format: .legacy, previous: previous, at: at, level: "notice", kind: "device.registered",
                                                fileID: nil, serial: "BWC-1", user: nil, message: message, rowDigest: nil, actor: nil)
                    try db.execute(sql: "INSERT INTO event (at, level, kind, serial, message, prev_hash, hash) VALUES (?, 'notice', 'device.registered', 'BWC-1', ?, ?, ?)",
                                   arguments: [at, message, previous, hash])
                    previous = hash
                }
            }
        }
        let ledger = try Ledger(path: path)
        let result = try ledger.verifyChain()
        // The two, the v7 upgrade's event, and v12's (framed hashes from there on).
        #expect(result.intact && result.events == 4, "\(result)")
        #expect(try ledger.events(EventFilter(minimumLevel: .debug)).map(\.kind).suffix(2) == [.ledgerMigrated, .custodyFormat])
    }
}

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

    /// The issue's attack: the digest and actor moved to the end of the
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

/// Tags and the store: a tag given while an upload is under way stays
/// pending until the tags the store holds are the ones given.
@Suite struct TagRowTests {
    @Test func aTagGivenDuringAnUploadIsNotLostWhenTheUploadRecordsWhatItSent() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        _ = try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let file = try spooledFile(ledger, serial: "BWC-1")
        let owner = ProcessIdentity.newOwner("upload")
        let claimed = try #require(try ledger.claimForUpload(file.id, owner: owner))
        let uploading = try ledger.beginUpload(claimed.id, objectKey: "pd/a.mp4", owner: owner)
        // The upload read its tags (none); an officer tags the file meanwhile.
        let sent = FileTags(of: uploading)
        let tagged = try #require(try ledger.tag([file.id], with: FileTags(caseID: "C-1")).first)
        #expect(tagged.storeTagsPending && tagged.caseID == "C-1")
        // The upload records what it sent: the later tag stays pending for the store.
        try ledger.recordStoreTags(file.id, applied: sent, lock: StoreLock(retainUntil: nil, mode: nil, legalHold: false), message: "stored")
        #expect(try ledger.file(file.id)?.storeTagsPending == true)
        // Applied with the case: nothing pending any more.
        try ledger.recordStoreTags(file.id, applied: FileTags(caseID: "C-1"), lock: StoreLock(retainUntil: nil, mode: nil, legalHold: false), message: "tagged")
        #expect(try ledger.file(file.id)?.storeTagsPending == false)
        // Tagging a file not yet uploaded marks nothing for the store: the tags go with the upload.
        let other = try spooledFile(ledger, serial: "BWC-1", path: "b.mp4")
        #expect(try ledger.tag([other.id], with: FileTags(category: "evidence")).first?.storeTagsPending == false)
    }
}
