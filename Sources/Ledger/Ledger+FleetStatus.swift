import Foundation
import GRDB
import UploaderCore

/// The late-upload figures of one officer (or of a whole dock): recordings
/// of the window, those verified more than `lateAfterHours` after they were
/// recorded, and those not verified yet that are already that old (they can
/// only be late). Counts, not rates: a rate is computed where it is shown.
public struct LateCount: Sendable, Codable, Equatable {
    public var recordings: Int
    public var late: Int
    public var overdue: Int

    public init(recordings: Int = 0, late: Int = 0, overdue: Int = 0) {
        self.recordings = recordings
        self.late = late
        self.overdue = overdue
    }

    public static func + (a: LateCount, b: LateCount) -> LateCount {
        LateCount(recordings: a.recordings + b.recordings, late: a.late + b.late, overdue: a.overdue + b.overdue)
    }

    /// The share of the window's recordings that are (or will be) uploaded late; nil with none.
    public var rate: Double? { recordings == 0 ? nil : Double(late + overdue) / Double(recordings) }

    /// "3 of 120 (2.5%, 1 not verified yet)", or "no recordings".
    public var text: String {
        guard let rate else { return "no recordings" }
        return String(format: "%d of %d (%.1f%%", late + overdue, recordings, rate * 100) + (overdue > 0 ? ", \(overdue) not verified yet)" : ")")
    }
}

/// The late-upload rate as a dock publishes it: over the recordings of the last `windowDays`.
public struct LateUploads: Sendable, Codable, Equatable {
    public var windowDays: Int
    public var lateAfterHours: Int
    public var overall: LateCount
    /// By officer (the file's attributed user; "" for files not attributed yet).
    public var officers: [String: LateCount]

    public static let window = 30
    public static let lateAfter = 24
}

/// A recording this dock holds that the store has not verified yet: what `fleet find` looks for.
public struct WaitingRecording: Sendable, Codable, Equatable {
    public var serial: String
    /// The officer it is attributed to; nil while its camera is not registered (held).
    public var user: String?
    public var name: String
    public var recordedAt: String?
    public var state: String
    public var bytes: Int64

    public init(serial: String, user: String?, name: String, recordedAt: String?, state: String, bytes: Int64) {
        self.serial = serial
        self.user = user
        self.name = name
        self.recordedAt = recordedAt
        self.state = state
        self.bytes = bytes
    }

    /// Every field in a fixed order, for a signed digest.
    public var fields: [String?] { [serial, user, name, recordedAt, state, String(bytes)] }
}

/// What a dock's status object says about its ledger.
public struct DockFigures: Sendable, Equatable {
    public var states: [FileState: StateTotals]
    public var backlog: StateTotals
    public var oldestWaitingDiscoveredAt: Date?
    public var oldestWaitingRecordedAt: Date?
    public var lastVerifiedAt: Date?
    /// The newest problem of a file (failed or held), one line.
    public var lastError: String?
    /// Cameras docked now with nothing finished yet (what the idle-dock alert reads).
    public var docked: [String]
    public var registryCommit: Int64?
    public var late: LateUploads
}

extension Ledger {
    /// The figures of this dock's status object: counters and indexes only,
    /// so it costs the same on a million files as on ten (the late-upload
    /// rate reads the window's recordings through `media_file_recorded`).
    public func dockFigures(now: Date = Date()) throws -> DockFigures {
        let summary = try summary()
        return try read { db in
            let oldest = try MediaFile.fetchOne(db, sql: HotSQL.oldestUnverified)
            let lastVerified = try Date.fetchOne(db, sql: FleetStatusSQL.lastVerified)
            let problem = try MediaFile.fetchOne(db, sql: HotSQL.problems)
            let docked = try String.fetchAll(db, sql: FleetStatusSQL.docked)
            var late = LateUploads(windowDays: LateUploads.window, lateAfterHours: LateUploads.lateAfter, overall: LateCount(), officers: [:])
            let rows = try Row.fetchCursor(db, sql: FleetStatusSQL.lateByOfficer, arguments: FleetStatusSQL.lateArguments(now: now))
            while let row = try rows.next() {
                let count = LateCount(recordings: row["recordings"], late: row["late"], overdue: row["overdue"])
                late.officers[row["user_id"] ?? "", default: LateCount()] = late.officers[row["user_id"] ?? "", default: LateCount()] + count
                late.overall = late.overall + count
            }
            let lastError = problem.map { file in
                "\(file.serial) \(DisplayText.escaped(file.sourcePath)) \(file.state.rawValue): \(file.lastError ?? file.holdReason?.rawValue ?? "")"
            }
            return DockFigures(states: summary.states, backlog: summary.states.waiting, oldestWaitingDiscoveredAt: oldest?.discoveredAt,
                               oldestWaitingRecordedAt: oldest?.recordedAt, lastVerifiedAt: lastVerified, lastError: lastError,
                               docked: docked, registryCommit: try Ledger.fleetState(in: db)?.appliedNumber, late: late)
        }
    }

    /// Every file not verified yet (nor cancelled), oldest found first, one at a
    /// time through the partial index of unverified files: at most what the
    /// spool holds. Stops after `limit`; returns whether more were left.
    @discardableResult
    public func forEachWaitingRecording(limit: Int, _ body: (WaitingRecording) throws -> Void) throws -> Bool {
        try read { db in
            let rows = try Row.fetchCursor(db, sql: FleetStatusSQL.waiting, arguments: [limit + 1])
            var seen = 0
            while let row = try rows.next() {
                seen += 1
                if seen > limit { return true }
                let recorded: Date? = row["recorded_at"]
                try body(WaitingRecording(serial: row["serial"], user: row["user_id"], name: row["source_path"],
                                          recordedAt: recorded.map(Timestamps.iso), state: row["state"], bytes: row["source_size"]))
            }
            return false
        }
    }

    /// The dock status's queries with sample arguments, for the query-plan test.
    static func fleetStatusQueries(now: Date = Date()) -> [(name: String, sql: String, arguments: StatementArguments)] {
        [("fleet status: last verified", FleetStatusSQL.lastVerified, []),
         ("fleet status: docked", FleetStatusSQL.docked, []),
         ("fleet status: late uploads", FleetStatusSQL.lateByOfficer, FleetStatusSQL.lateArguments(now: now)),
         ("fleet status: waiting recordings", FleetStatusSQL.waiting, [100])]
    }

    /// Each dock-status query's plan, as SQLite's EXPLAIN QUERY PLAN prints it.
    public func fleetStatusQueryPlans() throws -> [(name: String, plan: [String])] {
        try read { db in
            try Ledger.fleetStatusQueries().map { query in
                (query.name, try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + query.sql, arguments: query.arguments).map { $0["detail"] as String })
            }
        }
    }
}

enum FleetStatusSQL {
    /// The newest end of the partial index on verified_at.
    static let lastVerified = "SELECT MAX(verified_at) FROM media_file WHERE verified_at IS NOT NULL"
    static let docked = "SELECT serial FROM dock_open ORDER BY serial"
    /// The window's recordings by officer, through the index on recorded_at.
    static let lateByOfficer = """
        SELECT user_id, COUNT(*) AS recordings,
               SUM(state = 'verified' AND julianday(verified_at) - julianday(recorded_at) > :days) AS late,
               SUM(state != 'verified' AND recorded_at < :overdue) AS overdue
        FROM media_file INDEXED BY media_file_recorded
        WHERE recorded_at IS NOT NULL AND recorded_at >= :since AND state != 'cancelled'
        GROUP BY user_id
        """
    static func lateArguments(now: Date) -> StatementArguments {
        let lateAfter = Double(LateUploads.lateAfter) * 3600
        return ["days": lateAfter / 86400, "overdue": now.addingTimeInterval(-lateAfter),
                "since": now.addingTimeInterval(-Double(LateUploads.window) * 86400)]
    }
    static let waiting = """
        SELECT serial, user_id, source_path, recorded_at, state, source_size FROM media_file INDEXED BY media_file_unverified
        WHERE state NOT IN ('verified','cancelled') ORDER BY discovered_at LIMIT ?
        """
}

extension Ledger {
    /// The fleet's members as this dock's registry holds them: key fingerprint → the dock name it was admitted under.
    public func fleetMembers() throws -> [String: String] {
        try read { db in
            var members: [String: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT fingerprint, dock FROM fleet_member") {
                members[row["fingerprint"]] = row["dock"] ?? ""
            }
            return members
        }
    }
}
