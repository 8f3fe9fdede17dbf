import Foundation
import GRDB
import UploaderCore

extension Ledger {
    /// The queries that run on hot paths (status, log --since, metrics, alerts,
    /// purge, the upload queue, ingest's lookups), with sample arguments. A
    /// test asks SQLite for each one's plan and fails on a full scan of
    /// `media_file` or `event`: on a million files that is seconds, not milliseconds.
    static func hotQueries(now: Date = Date()) -> [(name: String, sql: String, arguments: StatementArguments)] {
        let (logSince, logSinceArguments) = eventQuery(EventFilter(since: now.addingTimeInterval(-3600)))
        let (logDevice, logDeviceArguments) = eventQuery(EventFilter(serial: "S", limit: 50))
        let (logUser, logUserArguments) = eventQuery(EventFilter(since: now.addingTimeInterval(-86400), user: "U"))
        let (logFile, logFileArguments) = eventQuery(EventFilter(fileID: 1))
        return [
            ("status: counters", "SELECT serial, state, files, bytes FROM file_count WHERE files != 0", []),
            ("status: last discovery", "SELECT MAX(discovered_at) FROM media_file WHERE serial = ?", ["S"]),
            ("status: oldest unverified", oldestUnverifiedSQL, []),
            ("status: uploading", "SELECT * FROM media_file WHERE state = 'uploading' ORDER BY updated_at DESC LIMIT 100", []),
            ("status: problems", "SELECT * FROM media_file WHERE state IN ('failed','quarantined') ORDER BY updated_at DESC LIMIT 10", []),
            ("log --since", logSince, logSinceArguments),
            ("log --device --limit", logDevice, logDeviceArguments),
            ("log --user --since", logUser, logUserArguments),
            ("log --file #id", logFile, logFileArguments),
            ("metrics: counters", "SELECT state, SUM(files) AS n, SUM(bytes) AS bytes FROM file_count GROUP BY state", []),
            ("metrics: events", "SELECT COALESCE(SUM(events), 0) FROM event_count WHERE kind IN ('upload.retry')", []),
            ("alerts: stuck files", stuckFilesSQL, [HoldReason.spoolCorrupted, HoldReason.cameraFileChanged, HoldReason.unreadable, HoldReason.hostileEntry]),
            ("alerts: idle docks", "SELECT serial, event_id, at FROM dock_open WHERE at <= ?", [now]),
            ("alerts: last sent", "SELECT last_sent_at FROM alert WHERE key = ?", ["k"]),
            ("purge: a page", purgePageSQL, [now, 0]),
            ("upload: queue", uploadQueueSQL + " ORDER BY priority DESC, recorded_at, id", [now]),
            ("upload: active multipart ids", "SELECT upload_id FROM media_file WHERE upload_id IS NOT NULL AND state != 'cancelled'", []),
            ("ingest: identity", "SELECT * FROM media_file WHERE serial = ? AND source_path = ? AND source_size = ? AND source_mtime_ns = ?", ["S", "p", 1, 1]),
            // Walks the newest end of the log and stops at once.
            ("chain: last event", "SELECT hash FROM event ORDER BY id DESC LIMIT 1", []),
            ("attribution: periods", "SELECT * FROM custody_period WHERE serial = ? AND removed_at IS NULL ORDER BY valid_from", ["S"]),
        ]
    }

    /// Queries that walk an index (or the log's id order) from one end and stop after LIMIT rows.
    static let stopsAfterLimit: Set<String> = ["status: oldest unverified", "chain: last event"]

    /// Each hot query's plan, as SQLite's EXPLAIN QUERY PLAN prints it.
    func hotQueryPlans() throws -> [(name: String, plan: [String])] {
        try read { db in
            try Ledger.hotQueries().map { query in
                let rows = try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + query.sql, arguments: query.arguments)
                return (query.name, rows.map { $0["detail"] as String })
            }
        }
    }
}
