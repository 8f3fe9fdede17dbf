import Foundation
import GRDB
import UploaderCore

public struct StateTotals: Sendable, Codable, Equatable {
    public var count: Int
    public var bytes: Int64
}

public struct DeviceSummary: Sendable, Codable {
    public var serial: String
    public var registered: Bool
    public var defaultUser: String?
    public var name: String?
    public var states: [String: StateTotals]
    public var lastDiscoveredAt: Date?
}

public struct LedgerSummary: Sendable, Codable {
    public var states: [String: StateTotals]
    public var devices: [DeviceSummary]
    public var oldestUnverified: MediaFile?
    public var uploading: [MediaFile]
    public var problems: [MediaFile]
    public var spoolFiles: Int
    public var spoolBytes: Int64
}

public struct EventFilter: Sendable {
    public var since: Date?
    public var serial: String?
    public var user: String?
    public var fileID: Int64?
    public var pathContains: String?
    public var minimumLevel: LedgerEvent.Level
    public var afterID: Int64?
    public var limit: Int?

    public init(since: Date? = nil, serial: String? = nil, user: String? = nil, fileID: Int64? = nil,
                pathContains: String? = nil, minimumLevel: LedgerEvent.Level = .info, afterID: Int64? = nil, limit: Int? = nil) {
        self.since = since
        self.serial = serial
        self.user = user
        self.fileID = fileID
        self.pathContains = pathContains
        self.minimumLevel = minimumLevel
        self.afterID = afterID
        self.limit = limit
    }
}

/// The result of re-computing the custody log's hash chain.
public struct ChainVerification: Sendable, Codable {
    public var events: Int
    public var intact: Bool
    public var firstBrokenEventID: Int64?
    public var problem: String?
}

extension Ledger {
    public func summary() throws -> LedgerSummary {
        try read { db in
            func totals(_ sql: String, _ arguments: StatementArguments = []) throws -> [String: StateTotals] {
                var result: [String: StateTotals] = [:]
                for row in try Row.fetchAll(db, sql: sql, arguments: arguments) {
                    result[row["state"]] = StateTotals(count: row["n"], bytes: row["bytes"])
                }
                return result
            }
            let states = try totals("SELECT state, COUNT(*) AS n, COALESCE(SUM(source_size), 0) AS bytes FROM media_file GROUP BY state")
            var devices: [DeviceSummary] = []
            let serials = try String.fetchAll(db, sql: "SELECT serial FROM device WHERE removed_at IS NULL UNION SELECT DISTINCT serial FROM media_file ORDER BY 1")
            for serial in serials {
                let device = try Ledger.activeDevice(serial: serial, in: db)
                devices.append(DeviceSummary(
                    serial: serial, registered: device != nil, defaultUser: device?.defaultUser, name: device?.name,
                    states: try totals("SELECT state, COUNT(*) AS n, COALESCE(SUM(source_size), 0) AS bytes FROM media_file WHERE serial = ? GROUP BY state", [serial]),
                    lastDiscoveredAt: try Date.fetchOne(db, sql: "SELECT MAX(discovered_at) FROM media_file WHERE serial = ?", arguments: [serial])))
            }
            let oldest = try MediaFile.fetchOne(db, sql: "SELECT * FROM media_file WHERE state NOT IN ('verified','cancelled') ORDER BY discovered_at, id LIMIT 1")
            let uploading = try MediaFile.fetchAll(db, sql: "SELECT * FROM media_file WHERE state = 'uploading' ORDER BY updated_at DESC")
            let problems = try MediaFile.fetchAll(db, sql: "SELECT * FROM media_file WHERE state IN ('failed','quarantined') ORDER BY updated_at DESC LIMIT 10")
            let spool = try Row.fetchOne(db, sql: "SELECT COUNT(*) AS n, COALESCE(SUM(source_size), 0) AS bytes FROM media_file WHERE spool_name IS NOT NULL AND spool_purged_at IS NULL")!
            return LedgerSummary(states: states, devices: devices, oldestUnverified: oldest, uploading: uploading,
                                 problems: problems, spoolFiles: spool["n"], spoolBytes: spool["bytes"])
        }
    }

    public func files(serial: String? = nil, states: [FileState]? = nil) throws -> [MediaFile] {
        try read { db in
            var clauses: [String] = []
            var arguments: StatementArguments = []
            if let serial { clauses.append("serial = ?"); arguments += [serial] }
            if let states { clauses.append("state IN (\(states.map { "'\($0.rawValue)'" }.joined(separator: ",")))") }
            let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            return try MediaFile.fetchAll(db, sql: "SELECT * FROM media_file \(whereClause) ORDER BY id", arguments: arguments)
        }
    }

    public func events(_ filter: EventFilter) throws -> [LedgerEvent] {
        var events: [LedgerEvent] = []
        try forEachEvent(filter) { events.append($0) }
        return events
    }

    /// Streams the matching events in order: memory stays flat however long the log.
    public func forEachEvent(_ filter: EventFilter, _ body: (LedgerEvent) throws -> Void) throws {
        try read { db in
            var clauses = ["level IN (\(LedgerEvent.Level.allCases.filter { $0 >= filter.minimumLevel }.map { "'\($0.rawValue)'" }.joined(separator: ",")))"]
            var arguments: StatementArguments = []
            if let since = filter.since { clauses.append("at >= ?"); arguments += [since] }
            if let serial = filter.serial { clauses.append("serial = ?"); arguments += [serial] }
            if let user = filter.user { clauses.append("(user_id = ? OR file_id IN (SELECT id FROM media_file WHERE user_id = ?))"); arguments += [user, user] }
            if let fileID = filter.fileID { clauses.append("file_id = ?"); arguments += [fileID] }
            if let path = filter.pathContains {
                clauses.append("file_id IN (SELECT id FROM media_file WHERE source_path LIKE ? ESCAPE '\\' OR object_key LIKE ? ESCAPE '\\')")
                let pattern = "%" + path.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_") + "%"
                arguments += [pattern, pattern]
            }
            if let afterID = filter.afterID { clauses.append("id > ?"); arguments += [afterID] }
            var sql = "SELECT * FROM event WHERE " + clauses.joined(separator: " AND ") + " ORDER BY id"
            if let limit = filter.limit {
                sql = "SELECT * FROM (SELECT * FROM event WHERE " + clauses.joined(separator: " AND ") + " ORDER BY id DESC LIMIT \(limit)) ORDER BY id"
            }
            let cursor = try LedgerEvent.fetchCursor(db, sql: sql, arguments: arguments)
            while let event = try cursor.next() { try body(event) }
        }
    }

    /// Recomputes every event's hash from its stored fields and the hash before it.
    public func verifyChain() throws -> ChainVerification {
        try read { db in
            var previous = Ledger.genesisHash
            var count = 0
            let cursor = try Row.fetchCursor(db, sql: "SELECT * FROM event ORDER BY id")
            while let row = try cursor.next() {
                count += 1
                let id: Int64 = row["id"]
                let storedPrevious: String = row["prev_hash"]
                let expected = Ledger.eventHash(previous: previous, at: row["at"], level: row["level"], kind: row["kind"],
                                                fileID: row["file_id"], serial: row["serial"], user: row["user_id"], message: row["message"])
                if storedPrevious != previous {
                    return ChainVerification(events: count, intact: false, firstBrokenEventID: id,
                                             problem: "event \(id) does not follow the event before it (an event was removed or inserted)")
                }
                if expected != (row["hash"] as String) {
                    return ChainVerification(events: count, intact: false, firstBrokenEventID: id,
                                             problem: "event \(id) was altered after it was written")
                }
                previous = expected
            }
            return ChainVerification(events: count, intact: true, firstBrokenEventID: nil, problem: nil)
        }
    }
}
