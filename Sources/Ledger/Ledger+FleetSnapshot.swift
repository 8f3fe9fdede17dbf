import Crypto
import Foundation
import GRDB
import UploaderCore

/// One entry of a registry snapshot: the registry at a commit is its members,
/// its devices (removed ones too: their custody periods stay) and its custody
/// periods that a fleet commit made and nobody withdrew, each period named by
/// that commit's number.
public enum FleetSnapshotEntry: Sendable, Equatable {
    case member(publicKey: String, dock: String?, admittedIn: Int64)
    case device(serial: String, user: String, name: String?, model: String?, removed: Bool)
    case period(commit: Int64, serial: String, user: String, from: String, until: String?)

    static let tag = "uploader.fleet-snapshot-entry/1"

    /// The entry's framed digest: what the snapshot's running digest takes, the same at every dock.
    public var digest: String {
        switch self {
        case let .member(publicKey, dock, admittedIn):
            ChainFormat.framedDigest(tag: Self.tag, ["member", publicKey, dock, String(admittedIn)])
        case let .device(serial, user, name, model, removed):
            ChainFormat.framedDigest(tag: Self.tag, ["device", serial, user, name, model, removed ? "removed" : nil])
        case let .period(commit, serial, user, from, until):
            ChainFormat.framedDigest(tag: Self.tag, ["period", String(commit), serial, user, from, until])
        }
    }
}

/// The running digest of a snapshot's entries, in the order they are written.
public final class FleetSnapshotDigest {
    let hasher = SHA256Hasher()
    public private(set) var members = 0, devices = 0, periods = 0

    public init() {}

    public func add(_ entry: FleetSnapshotEntry) {
        hasher.update(Array(entry.digest.utf8))
        switch entry {
        case .member: members += 1
        case .device: devices += 1
        case .period: periods += 1
        }
    }

    public func finalize() -> String { hasher.finalize().hex }
}

/// What this dock knows of one snapshot.
public struct FleetSnapshotRecord: Sendable, Equatable {
    public enum Status: String, Sendable {
        /// This dock reached the commit and holds its own digest; the store's snapshot is not checked yet.
        case pending
        /// This dock wrote the snapshot.
        case written
        /// The store's snapshot is the registry this dock holds at that commit.
        case matched
        /// This dock's registry started from it.
        case started
        /// A snapshot whose signature holds but whose registry is not this dock's: forged, or written by a broken dock.
        case mismatch
        /// A snapshot that does not parse, is badly signed, by a non-member, or names another commit.
        case bad
    }

    public var number: Int64
    public var digest: String?
    public var status: Status
    public var dock: String?
    public var signer: String?
    public var problem: String?
}

extension Ledger {
    /// Calls `body` with every entry of the registry at commit `number`, in
    /// snapshot order, from one read (a cursor: the registry is never held
    /// whole). False, and nothing read, when this ledger is not at that commit
    /// (another process of this dock applied the next one first).
    public func forEachFleetSnapshotEntry(atCommit number: Int64, _ body: (FleetSnapshotEntry) throws -> Void) throws -> Bool {
        try read { db in
            guard try Ledger.fleetState(in: db)?.appliedNumber == number else { return false }
            let members = try Row.fetchCursor(db, sql: "SELECT public_key, dock, admitted_in FROM fleet_member ORDER BY admitted_in, fingerprint")
            while let row = try members.next() {
                try body(.member(publicKey: row["public_key"], dock: row["dock"], admittedIn: row["admitted_in"]))
            }
            let devices = try Row.fetchCursor(db, sql: "SELECT serial, default_user, name, model, removed_at FROM device ORDER BY serial")
            while let row = try devices.next() {
                try body(.device(serial: row["serial"], user: row["default_user"], name: row["name"], model: row["model"],
                                 removed: (row["removed_at"] as Date?) != nil))
            }
            let periods = try Row.fetchCursor(db, sql: """
                SELECT fleet_commit, serial, user_id, valid_from, valid_until FROM custody_period
                WHERE fleet_commit IS NOT NULL AND removed_at IS NULL ORDER BY fleet_commit, id
                """)
            while let row = try periods.next() {
                try body(.period(commit: row["fleet_commit"], serial: row["serial"], user: row["user_id"],
                                 from: RegistryChange.time(row["valid_from"]), until: (row["valid_until"] as Date?).map(RegistryChange.time)))
            }
            return true
        }
    }

    /// Whether this dock may take its registry from a snapshot: in a fleet, no
    /// commit read yet, and no registry of its own (a dock that brings one in replays).
    public func mayStartFromFleetSnapshot() throws -> Bool {
        try read { db in
            guard let state = try Ledger.fleetState(in: db), state.appliedNumber == 0 else { return false }
            return try Int.fetchOne(db, sql: """
                SELECT (SELECT count(*) FROM device WHERE removed_at IS NULL) + (SELECT count(*) FROM custody_period WHERE removed_at IS NULL)
                """) == 0
        }
    }

    /// Applies a snapshot as this dock's registry, in one transaction:
    /// `entries` feeds each entry to the closure it is given, and throws (all
    /// is rolled back) when the snapshot turns out not to hold. Then the dock
    /// stands at commit `number` (hash `commitHash`), files held for cameras the
    /// snapshot registers are released, and the custody log says where the registry came from.
    public func startFromFleetSnapshot(number: Int64, commitHash: String, origin: String, signer: String,
                                       entries: (_ apply: (FleetSnapshotEntry) throws -> Void) throws -> Void) throws {
        try write("start the fleet registry from snapshot \(number)") { db in
            guard let state = try Ledger.fleetState(in: db), state.appliedNumber == 0 else {
                throw UploaderError(.busy, "another process of this dock started reading the fleet registry first")
            }
            let addMember = try db.makeStatement(sql: "INSERT INTO fleet_member (fingerprint, public_key, dock, admitted_in) VALUES (?, ?, ?, ?)")
            let addDevice = try db.makeStatement(sql: """
                INSERT INTO device (serial, default_user, name, model, registered_at, removed_at) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (serial) DO UPDATE SET default_user = excluded.default_user, name = excluded.name, model = excluded.model,
                    registered_at = excluded.registered_at, removed_at = excluded.removed_at
                """)
            let addPeriod = try db.makeStatement(sql: """
                INSERT INTO custody_period (serial, user_id, valid_from, valid_until, created_at, fleet_commit) VALUES (?, ?, ?, ?, ?, ?)
                """)
            let now = Date()
            do { try entries { entry in
                switch entry {
                case let .member(publicKey, dock, admittedIn):
                    guard let fingerprint = RegistryChange.fingerprint(publicKeyHex: publicKey) else {
                        throw UploaderError(.insecure, "a member's key is not 32 bytes of hex")
                    }
                    try addMember.execute(arguments: [fingerprint, publicKey, dock, admittedIn])
                case let .device(serial, user, name, model, removed):
                    try Ledger.checkIdentifier(serial, "a serial")
                    try Ledger.checkIdentifier(user, "a user")
                    try addDevice.execute(arguments: [serial, user, name, model, now, removed ? now : nil])
                case let .period(commit, serial, user, from, until):
                    try Ledger.checkIdentifier(user, "a user")
                    guard let start = Self.storedTime(from), until.map({ Self.storedTime($0) != nil }) ?? true else {
                        throw UploaderError(.insecure, "custody period of commit \(commit) has a time that is not ISO 8601")
                    }
                    try addPeriod.execute(arguments: [serial, user, start, until.flatMap(Self.storedTime), now, commit])
                }
            } } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                throw UploaderError(.insecure, "its entries do not make a registry (\(error.message ?? "a constraint fails"))")
            }
            try db.execute(sql: "UPDATE fleet_state SET applied_number = ?, applied_hash = ?, blocked_number = NULL, blocked_problem = NULL WHERE id = 1",
                           arguments: [number, commitHash])
            try db.execute(sql: """
                INSERT INTO fleet_snapshot (number, status, dock, signer, recorded_at) VALUES (?, 'started', ?, ?, ?)
                ON CONFLICT (number) DO UPDATE SET status = 'started', dock = excluded.dock, signer = excluded.signer, problem = NULL
                """, arguments: [number, origin, signer, now])
            let counts = try Row.fetchOne(db, sql: """
                SELECT (SELECT count(*) FROM device WHERE removed_at IS NULL) AS devices, (SELECT count(*) FROM custody_period) AS periods,
                       (SELECT count(*) FROM fleet_member) AS members
                """)!
            try Ledger.append(EventDraft(.notice, .fleetJoined, """
                this dock's registry starts from the fleet's snapshot at commit \(number) (written by \(DisplayText.escaped(origin)), \
                key \(Ed25519PublicKey.grouped(signer))): \(counts["devices"] as Int) cameras, \(counts["periods"] as Int) custody periods, \
                \(counts["members"] as Int) member docks; commits before \(number) are not read here
                """), in: db)
            let held = try String.fetchAll(db, sql: """
                SELECT DISTINCT media_file.serial FROM media_file JOIN device ON device.serial = media_file.serial AND device.removed_at IS NULL
                WHERE media_file.state = 'quarantined' AND media_file.hold_reason = ?
                """, arguments: [HoldReason.unknownDevice])
            for serial in held {
                _ = try Ledger.releaseHeldFiles(serial: serial, because: "fleet snapshot at commit \(number)", in: db)
            }
        }
    }

    /// A period's time as the ledger stores it. The time a snapshot carries
    /// (`RegistryChange.time`: `2026-11-01T08:00:00.000Z`) is turned into
    /// GRDB's text for a date (`2026-11-01 08:00:00.000`, UTC) by moving
    /// characters: a snapshot carries about a hundred thousand of them, and
    /// parsing each as a date took most of a new dock's first sync. Any other
    /// shape is parsed as a date.
    static func storedTime(_ text: String) -> (any DatabaseValueConvertible)? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                guard bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(bytes[index] - UInt8(ascii: "0"))
            }
            return value
        }
        guard bytes.count == 24, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"), bytes[10] == UInt8(ascii: "T"),
              bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":"), bytes[19] == UInt8(ascii: "."), bytes[23] == UInt8(ascii: "Z"),
              let year = number(0..<4), let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
              let minute = number(14..<16), let second = number(17..<19), number(20..<23) != nil,
              year >= 1970, (1...12).contains(month), hour < 24, minute < 60, second < 60 else {
            return Timestamps.parse(text)
        }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        guard (1...days).contains(day) else { return Timestamps.parse(text) }
        var stored = bytes.dropLast()
        stored[10] = UInt8(ascii: " ")
        return String(decoding: stored, as: UTF8.self)
    }

    /// This dock's own digest of the registry at commit `number` (as it stood
    /// when this dock applied it), for checking the store's snapshot later. A
    /// verdict already given stays.
    public func recordFleetSnapshotDigest(number: Int64, digest: String) throws {
        try write("record the registry's digest at commit \(number)") { db in
            try db.execute(sql: """
                INSERT INTO fleet_snapshot (number, digest, status, recorded_at) VALUES (?, ?, 'pending', ?)
                ON CONFLICT (number) DO UPDATE SET digest = excluded.digest
                """, arguments: [number, digest, Date()])
        }
    }

    /// The verdict on the store's snapshot `number`; a mismatch or a bad one goes to the custody log.
    public func recordFleetSnapshotVerdict(number: Int64, status: FleetSnapshotRecord.Status, dock: String?, signer: String?, problem: String?) throws {
        try write("record the verdict on fleet snapshot \(number)") { db in
            let before = try String.fetchOne(db, sql: "SELECT status FROM fleet_snapshot WHERE number = ?", arguments: [number])
            try db.execute(sql: """
                INSERT INTO fleet_snapshot (number, status, dock, signer, problem, recorded_at) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (number) DO UPDATE SET status = excluded.status, dock = excluded.dock, signer = excluded.signer,
                    problem = excluded.problem, recorded_at = excluded.recorded_at
                """, arguments: [number, status.rawValue, dock, signer, problem, Date()])
            if status == .mismatch || status == .bad, before != status.rawValue {
                try Ledger.append(EventDraft(.error, .fleetRejected, """
                    fleet snapshot \(number) (written by \(DisplayText.escaped(dock ?? "?"))) refused: \(problem ?? "?"); \
                    no dock takes its registry from it
                    """), in: db)
            }
        }
    }

    public func fleetSnapshot(number: Int64) throws -> FleetSnapshotRecord? {
        try read { db in try Row.fetchOne(db, sql: "SELECT * FROM fleet_snapshot WHERE number = ?", arguments: [number]).map(Self.fleetSnapshotRecord) }
    }

    /// The newest snapshots this dock holds a digest of and has not judged yet (a few: an older one nobody wrote is left be).
    public func pendingFleetSnapshots(limit: Int = 3) throws -> [FleetSnapshotRecord] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM fleet_snapshot WHERE status = 'pending' ORDER BY number DESC LIMIT ?", arguments: [limit])
                .map(Self.fleetSnapshotRecord)
        }
    }

    /// The snapshot this dock's registry started from (nil: it replayed every commit).
    public func fleetSnapshotStart() throws -> FleetSnapshotRecord? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM fleet_snapshot WHERE status = 'started' ORDER BY number DESC LIMIT 1").map(Self.fleetSnapshotRecord)
        }
    }

    static func fleetSnapshotRecord(_ row: Row) -> FleetSnapshotRecord {
        FleetSnapshotRecord(number: row["number"], digest: row["digest"], status: FleetSnapshotRecord.Status(rawValue: row["status"]) ?? .bad,
                            dock: row["dock"], signer: row["signer"], problem: row["problem"])
    }

    /// A snapshot refused (forged, or by a broken dock): told once, ever, like an ignored commit.
    public func fleetSnapshotAlertConditions() throws -> [Alert] {
        try read { db in
            try Row.fetchAll(db, sql: """
                SELECT number, dock, problem FROM fleet_snapshot
                WHERE status IN ('mismatch','bad') AND NOT EXISTS (SELECT 1 FROM alert WHERE alert.key = 'fleet-snapshot-' || fleet_snapshot.number)
                ORDER BY number LIMIT 20
                """).map { row in
                let number: Int64 = row["number"]
                return Alert(key: "fleet-snapshot-\(number)",
                             message: "fleet snapshot \(number) (written by \(DisplayText.escaped(row["dock"] as String? ?? "?"))) was refused: \(row["problem"] as String? ?? "?"); a member's key may be misused, or a dock is broken: compare `uploader fleet log` at the docks")
            }
        }
    }
}
