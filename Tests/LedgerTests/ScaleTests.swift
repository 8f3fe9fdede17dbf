import Crypto
import Foundation
import GRDB
import LedgerSimulation
import Testing
import TestSupport
import Platform
import UploaderCore
@testable import Ledger

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
