import Foundation
import GRDB
import UploaderCore

public struct StateTotals: Sendable, Codable, Equatable {
    public var count: Int
    public var bytes: Int64

    public static let zero = StateTotals(count: 0, bytes: 0)
}

extension [FileState: StateTotals] {
    /// The files in `state` (none is zero, not absent).
    public func of(_ state: FileState) -> StateTotals { self[state] ?? .zero }

    /// The files in `FileState.waiting`, together.
    public var waiting: StateTotals {
        FileState.waiting.reduce(StateTotals.zero) { StateTotals(count: $0.count + of($1).count, bytes: $0.bytes + of($1).bytes) }
    }
}

public struct DeviceSummary: Sendable, Codable {
    public var serial: String
    public var registered: Bool
    public var defaultUser: String?
    public var name: String?
    public var states: [FileState: StateTotals]
    public var lastDiscoveredAt: Date?
}

public struct LedgerSummary: Sendable, Codable {
    public var states: [FileState: StateTotals]
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
    /// Events of the files of this case (`uploader tag --case`).
    public var caseID: String?

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
    /// What `status` shows. Reads the counters and indexes only, so it costs
    /// the same on a million files as on ten.
    public func summary() throws -> LedgerSummary {
        try read { db in
            var states: [FileState: StateTotals] = [:]
            var perDevice: [String: [FileState: StateTotals]] = [:]
            var spoolFiles = 0
            var spoolBytes: Int64 = 0
            for row in try Row.fetchAll(db, sql: HotSQL.counters) {
                let serial: String = row["serial"], state: String = row["state"]
                let totals = StateTotals(count: row["files"], bytes: row["bytes"])
                if state == Ledger.spoolCounter {
                    spoolFiles += totals.count
                    spoolBytes += totals.bytes
                    continue
                }
                guard let state = FileState(rawValue: state) else { continue }
                states[state, default: .zero].count += totals.count
                states[state, default: .zero].bytes += totals.bytes
                perDevice[serial, default: [:]][state] = totals
            }
            let registered = Dictionary(uniqueKeysWithValues: try Device.fetchAll(db, sql: "SELECT * FROM device WHERE removed_at IS NULL").map { ($0.serial, $0) })
            let serials = Set(registered.keys).union(perDevice.keys).sorted()
            var devices: [DeviceSummary] = []
            for serial in serials {
                let device = registered[serial]
                devices.append(DeviceSummary(
                    serial: serial, registered: device != nil, defaultUser: device?.defaultUser, name: device?.name,
                    states: perDevice[serial] ?? [:],
                    lastDiscoveredAt: try Date.fetchOne(db, sql: HotSQL.lastDiscovery, arguments: [serial])))
            }
            let oldest = try MediaFile.fetchOne(db, sql: HotSQL.oldestUnverified)
            let uploading = try MediaFile.fetchAll(db, sql: HotSQL.uploading)
            let problems = try MediaFile.fetchAll(db, sql: HotSQL.problems)
            return LedgerSummary(states: states, devices: devices, oldestUnverified: oldest, uploading: uploading,
                                 problems: problems, spoolFiles: spoolFiles, spoolBytes: spoolBytes)
        }
    }

    /// The `file_count` row that counts spool copies instead of a state.
    static let spoolCounter = "~spool"

    public func files(serial: String? = nil, states: [FileState]? = nil) throws -> [MediaFile] {
        try read { db in
            var clauses: [String] = []
            var arguments: StatementArguments = []
            if let serial { clauses.append("serial = ?"); arguments += [serial] }
            if let states { clauses.append("state IN (\(HotSQL.list(states)))") }
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
            let (sql, arguments) = Ledger.eventQuery(filter)
            let cursor = try LedgerEvent.fetchCursor(db, sql: sql, arguments: arguments)
            while let event = try cursor.next() { try body(event) }
        }
    }

    /// The SQL of `log` for a filter (one builder, also used by the query-plan test).
    static func eventQuery(_ filter: EventFilter) -> (String, StatementArguments) {
        var clauses: [String] = []
        if filter.minimumLevel > .debug {
            clauses.append("level IN (\(LedgerEvent.Level.allCases.filter { $0 >= filter.minimumLevel }.map { "'\($0.rawValue)'" }.joined(separator: ",")))")
        }
        var arguments: StatementArguments = []
        if let since = filter.since { clauses.append("at >= ?"); arguments += [since] }
        if let serial = filter.serial { clauses.append("serial = ?"); arguments += [serial] }
        if let user = filter.user { clauses.append("(user_id = ? OR file_id IN (SELECT id FROM media_file WHERE user_id = ?))"); arguments += [user, user] }
        if let fileID = filter.fileID { clauses.append("file_id = ?"); arguments += [fileID] }
        if let caseID = filter.caseID { clauses.append("file_id IN (SELECT id FROM media_file INDEXED BY media_file_case WHERE case_id = ?)"); arguments += [caseID] }
        if let path = filter.pathContains {
            clauses.append("file_id IN (SELECT id FROM media_file WHERE source_path LIKE ? ESCAPE '\\' OR object_key LIKE ? ESCAPE '\\')")
            let pattern = "%" + path.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_") + "%"
            arguments += [pattern, pattern]
        }
        if let afterID = filter.afterID { clauses.append("id > ?"); arguments += [afterID] }
        let whereClause = clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND ")
        // A time bound goes through the time index: the last hour of ten million
        // events is a range, not a walk of the whole log in id order.
        let table = filter.since != nil && filter.fileID == nil ? "event INDEXED BY event_at" : "event"
        var sql = "SELECT * FROM \(table)" + whereClause + " ORDER BY id"
        if let limit = filter.limit {
            sql = "SELECT * FROM (SELECT * FROM \(table)" + whereClause + " ORDER BY id DESC LIMIT \(limit)) ORDER BY id"
        }
        return (sql, arguments)
    }

    /// Recomputes every event's hash from its stored fields and the hash
    /// before it, under the format its place in the log gives it, and checks
    /// what each format promises: a legacy event holds no field separator
    /// inside a field, an event about a file from v7 on carries its row
    /// digest, and the custody baseline is what the `custody.format` event fixed.
    public func verifyChain() throws -> ChainVerification {
        try read { db in
            var previous = Ledger.genesisHash
            var count = 0
            var rowDigestsSince: Int64?
            func broken(_ id: Int64, _ problem: String) -> ChainVerification {
                ChainVerification(events: count, intact: false, firstBrokenEventID: id, problem: problem)
            }
            let cursor = try Row.fetchCursor(db, sql: "SELECT * FROM event ORDER BY id")
            while let row = try cursor.next() {
                count += 1
                let event = ChainEvent(row, formatFrom: formatStart)
                if event.previousHash != previous {
                    return broken(event.id, "event \(event.id) does not follow the event before it (an event was removed or inserted)")
                }
                if event.recomputedHash != event.hash {
                    return broken(event.id, "event \(event.id) was altered after it was written")
                }
                if let problem = event.formatProblem(rowDigestsSince: rowDigestsSince) {
                    return broken(event.id, problem)
                }
                if event.kind == EventKind.ledgerMigrated.rawValue, rowDigestsSince == nil, event.hashFormat == .legacy { rowDigestsSince = event.id }
                if event.kind == EventKind.custodyFormat.rawValue, event.id == formatStart {
                    guard let fixed = CustodyBaseline.parse(event.message) else {
                        return broken(event.id, "event \(event.id), the upgrade to framed hashes, does not say what it fixed")
                    }
                    if fixed.rowDigestsSince != (rowDigestsSince ?? 0) {
                        return broken(event.id, "events about files carry row digests from event \(rowDigestsSince ?? 0), but the upgrade fixed \(fixed.rowDigestsSince)")
                    }
                    let baseline = CustodyBaseline()
                    let rows = try Row.fetchCursor(db, sql: "SELECT file_id, row_digest FROM custody_baseline ORDER BY file_id")
                    while let row = try rows.next() { baseline.add(fileID: row[0], digest: row[1]) }
                    if baseline.count != fixed.rows || baseline.finalize() != fixed.digest {
                        return broken(event.id, "the custody baseline (\(baseline.count) file rows) is not the one event \(event.id) fixed (\(fixed.rows) rows): rows as they stood at the upgrade were edited")
                    }
                }
                previous = event.hash
            }
            return ChainVerification(events: count, intact: true, firstBrokenEventID: nil, problem: nil)
        }
    }
}
