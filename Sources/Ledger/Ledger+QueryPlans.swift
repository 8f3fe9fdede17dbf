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
        var caseFilter = EventFilter(limit: 50)
        caseFilter.caseID = "C-1"
        let (logCase, logCaseArguments) = eventQuery(caseFilter)
        return [
            ("status: counters", HotSQL.counters, []),
            ("status: last discovery", HotSQL.lastDiscovery, ["S"]),
            ("status: oldest unverified", HotSQL.oldestUnverified, []),
            ("status: uploading", HotSQL.uploading, []),
            ("status: problems", HotSQL.problems, []),
            ("log --since", logSince, logSinceArguments),
            ("log --device --limit", logDevice, logDeviceArguments),
            ("log --user --since", logUser, logUserArguments),
            ("log --file #id", logFile, logFileArguments),
            ("log --case", logCase, logCaseArguments),
            ("metrics: counters", HotSQL.stateTotals, []),
            ("metrics: events", HotSQL.eventCount([.uploadRetry]), []),
            ("alerts: stuck files", HotSQL.stuckFiles, [HoldReason.spoolCorrupted, HoldReason.cameraFileChanged, HoldReason.unreadable, HoldReason.hostileEntry]),
            ("alerts: idle docks", HotSQL.idleDocks, [now]),
            ("alerts: last sent", HotSQL.lastAlert, ["k"]),
            ("purge: a page", HotSQL.purgePage, [now, 0]),
            ("purge: is a spool key still needed", HotSQL.spoolKeyInUse, ["0123456789abcdef"]),
            ("upload: tags given after upload", "SELECT * FROM media_file INDEXED BY media_file_tags_pending WHERE store_tags_pending = 1 AND state = 'verified' ORDER BY id LIMIT 500", []),
            ("dock: files to clear from a camera", "SELECT * FROM media_file INDEXED BY media_file_clearable WHERE serial = ? AND state = 'verified' AND camera_cleared_at IS NULL ORDER BY id", ["S"]),
            ("upload: queue", HotSQL.uploadQueue(ids: nil), [now]),
            ("upload: due", HotSQL.uploadDue, [now]),
            ("upload: active multipart ids", HotSQL.activeUploadIDs, []),
            ("ingest: identity", HotSQL.identity, ["S", "p", 1, 1]),
            // Walks the newest end of the log and stops at once.
            ("chain: last event", HotSQL.lastEvent, []),
            ("chain: a file's row digest", HotSQL.fileRowDigestFields, [1]),
            ("chain: framed hashes?", HotSQL.framed, []),
            ("verify: a file's baseline digest", HotSQL.baselineDigest, [1]),
            ("verify: the event that last vouched for a row", HotSQL.lastRowDigest, [1]),
            ("attribution: periods", HotSQL.periods, ["S"]),
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

/// The SQL of every query on a hot path, in one place: the code runs these
/// strings, and the query-plan test checks these same strings.
enum HotSQL {
    static let counters = "SELECT serial, state, files, bytes FROM file_count WHERE files != 0"
    static let lastDiscovery = "SELECT MAX(discovered_at) FROM media_file WHERE serial = ?"
    /// The oldest file not yet verified (through the partial index of unverified files).
    static let oldestUnverified = """
        SELECT * FROM media_file INDEXED BY media_file_unverified
        WHERE state NOT IN ('verified','cancelled') ORDER BY discovered_at LIMIT 1
        """
    static let uploading = "SELECT * FROM media_file WHERE state = 'uploading' ORDER BY updated_at DESC LIMIT 100"
    static let problems = "SELECT * FROM media_file WHERE state IN ('failed','quarantined') ORDER BY updated_at DESC LIMIT 10"
    static let stateTotals = "SELECT state, SUM(files) AS n, SUM(bytes) AS bytes FROM file_count GROUP BY state"
    static func eventCount(_ kinds: [EventKind]) -> String {
        "SELECT COALESCE(SUM(events), 0) FROM event_count WHERE kind IN (\(kinds.map { "'\($0.rawValue)'" }.joined(separator: ",")))"
    }
    /// Files no run will move on its own: failed for good, or held for a reason a person must look at.
    static let stuckFiles = """
        SELECT * FROM media_file WHERE state = 'failed' AND next_attempt_at IS NULL
        UNION ALL
        SELECT * FROM media_file WHERE state = 'quarantined' AND hold_reason IN (?, ?, ?, ?)
        ORDER BY id LIMIT 1000
        """
    static let idleDocks = "SELECT serial, event_id, at FROM dock_open WHERE at <= ?"
    static let lastAlert = "SELECT last_sent_at FROM alert WHERE key = ?"
    /// Through the partial index on sealed copies still on disk.
    static let spoolKeyInUse = "SELECT EXISTS (SELECT 1 FROM media_file WHERE spool_key_id = ? AND spool_purged_at IS NULL)"
    static let purgePage = """
        SELECT * FROM media_file INDEXED BY media_file_purge
        WHERE state = 'verified' AND spool_name IS NOT NULL AND spool_purged_at IS NULL AND verified_at <= ? AND id > ?
        ORDER BY id LIMIT 500
        """
    /// Through the state index: the queue is the unfinished files, never the million verified ones.
    private static let waiting = """
        FROM media_file INDEXED BY media_file_state
        WHERE state IN (\(list(FileState.waiting)))
          AND (state != 'failed' OR next_attempt_at <= ?)
          AND spool_name IS NOT NULL AND user_id IS NOT NULL
        """
    /// States as an SQL list: `'spooled','uploading'`.
    static func list(_ states: [FileState]) -> String {
        states.map { "'\($0.rawValue)'" }.joined(separator: ",")
    }
    /// Ids and sizes only: a backlog of a million files is 16 MB, not a million rows.
    static func uploadQueue(ids: [Int64]?) -> String {
        "SELECT id, source_size " + waiting
            + (ids.map { " AND id IN (\($0.map { _ in "?" }.joined(separator: ",")))" } ?? "")
            + " ORDER BY priority DESC, recorded_at, id"
    }
    static let uploadDue = "SELECT 1 " + waiting + " LIMIT 1"
    static let activeUploadIDs = "SELECT upload_id FROM media_file WHERE upload_id IS NOT NULL AND state != 'cancelled'"
    static let identity = "SELECT * FROM media_file WHERE serial = ? AND source_path = ? AND source_size = ? AND source_mtime_ns = ?"
    static let lastEvent = "SELECT hash FROM event ORDER BY id DESC LIMIT 1"
    /// Whether the log has moved to framed hashes (schema v12).
    static let framed = "SELECT EXISTS (SELECT 1 FROM event WHERE kind = 'custody.format')"
    static let baselineDigest = "SELECT row_digest FROM custody_baseline WHERE file_id = ?"
    static let formatStart = "SELECT min(id) FROM event WHERE kind = 'custody.format'"
    /// The newest event that vouched for a file's row.
    static let lastRowDigest = "SELECT id, row_digest FROM event WHERE file_id = ? AND row_digest IS NOT NULL ORDER BY id DESC LIMIT 1"
    /// The row fields an event's digest covers, in a fixed order.
    static let fileRowDigestFields = """
        SELECT id, serial, source_path, source_size, state, hold_reason, sha256, user_id, object_key, recorded_at, store_checksum, store_version_id
        FROM media_file WHERE id = ?
        """
    /// Every row's digest fields, in id order (the v12 baseline).
    static let allRowDigestFields = """
        SELECT id, serial, source_path, source_size, state, hold_reason, sha256, user_id, object_key, recorded_at, store_checksum, store_version_id
        FROM media_file ORDER BY id
        """
    static let periods = "SELECT * FROM custody_period WHERE serial = ? AND removed_at IS NULL ORDER BY valid_from"
}
