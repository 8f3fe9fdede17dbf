import Foundation
import GRDB
import LedgerSimulation
import Testing
import TestSupport
import UploaderCore
@testable import Ledger

@Suite struct FleetStatusQueryTests {
    /// The dock status is written every minute: none of its queries may read
    /// the whole file table (on a million files that is seconds, every minute).
    /// The late-upload rate reads only the window's recordings (index on
    /// recorded_at), the waiting list only the unverified files (partial index).
    @Test func noDockStatusQueryScansTheFiles() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.simulateHistory(devices: 3, files: 300, eventsPerFile: 4, recentFiles: 20)
        try ledger.pool.write { try $0.execute(sql: "ANALYZE") }
        let plans = try ledger.fleetStatusQueryPlans()
        #expect(plans.count == 4)
        for (name, plan) in plans {
            let scans = plan.filter { $0.hasPrefix("SCAN media_file") && !$0.contains("USING INDEX media_file_unverified") && !$0.contains("COVERING INDEX media_file_verified_at") }
            #expect(scans.isEmpty, "\(name): \(plan)")
        }
        let late = try #require(plans.first { $0.name == "fleet status: late uploads" })
        #expect(late.plan.contains { $0.contains("media_file_recorded") }, "\(late.plan)")
    }

    /// The figures equal a count of the rows: late means verified more than
    /// 24 h after recording, overdue means not verified and older than 24 h,
    /// and only the last 30 days' recordings count.
    @Test func theLateUploadRateCountsTheWindowsRecordings() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.simulateHistory(devices: 3, files: 200, eventsPerFile: 3, recentFiles: 40)
        // Some uploads two days after recording (late), some waiting files recorded three days ago (overdue).
        try ledger.pool.write { db in
            try db.execute(sql: "UPDATE media_file SET recorded_at = datetime('now', '-10 days'), verified_at = datetime('now', '-8 days') WHERE state = 'verified' AND id % 10 = 0")
            try db.execute(sql: "UPDATE media_file SET recorded_at = datetime('now', '-10 days'), verified_at = datetime('now', '-10 days', '+1 hours') WHERE state = 'verified' AND id % 10 = 5")
            try db.execute(sql: "UPDATE media_file SET recorded_at = datetime(recorded_at, '-3 days') WHERE state = 'spooled' AND id % 2 = 0")
        }
        let now = Date()
        let figures = try ledger.dockFigures(now: now)
        let counted = try ledger.pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT COUNT(*) AS recordings,
                       COALESCE(SUM(state = 'verified' AND julianday(verified_at) - julianday(recorded_at) > 1.0), 0) AS late,
                       COALESCE(SUM(state != 'verified' AND julianday(?) - julianday(recorded_at) > 1.0), 0) AS overdue
                FROM media_file WHERE recorded_at >= ? AND state != 'cancelled'
                """, arguments: [now, now.addingTimeInterval(-30 * 86400)])!
        }
        #expect(figures.late.overall.late == 16 && figures.late.overall.overdue == 20 && figures.late.overall.recordings > 16 + 16 + 20, "\(figures.late.overall)")
        #expect(figures.late.overall == LateCount(recordings: counted["recordings"], late: counted["late"], overdue: counted["overdue"]))
        #expect(figures.late.officers.values.reduce(LateCount(), +) == figures.late.overall)
        var waiting = 0
        try ledger.forEachWaitingRecording(limit: 1_000_000) { _ in waiting += 1 }
        let unverified = try ledger.pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM media_file WHERE state NOT IN ('verified','cancelled')") }
        #expect(waiting == unverified)
    }
}
