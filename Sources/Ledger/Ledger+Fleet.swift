import Crypto
import Foundation
import GRDB
import UploaderCore

/// One change to the fleet's registry, as a fleet commit carries it. The
/// registry itself is the ledger's `device` and `custody_period` tables: a
/// change is checked and applied by the same rules as a change typed at this
/// dock (periods never overlap, a serial is registered once…).
public struct RegistryChange: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case memberAdmit = "member.admit"
        case deviceAdd = "device.add", deviceRemove = "device.remove", deviceRename = "device.rename", deviceModel = "device.model"
        case periodAssign = "period.assign", periodEnd = "period.end", periodWithdraw = "period.withdraw"
    }

    public var kind: Kind
    public var serial: String?
    public var user: String?
    public var name: String?
    public var model: String?
    /// ISO 8601 times of a period (assign), or the end of one (end: `until`).
    public var from: String?
    public var until: String?
    /// The period a change names, by the number of the commit that assigned it (the same at every dock).
    public var period: Int64?
    /// member.admit: the admitted dock's Ed25519 public key (hex) and its name.
    public var publicKey: String?
    public var dock: String?

    public init(kind: Kind, serial: String? = nil, user: String? = nil, name: String? = nil, model: String? = nil, from: String? = nil,
                until: String? = nil, period: Int64? = nil, publicKey: String? = nil, dock: String? = nil) {
        self.kind = kind
        self.serial = serial
        self.user = user
        self.name = name
        self.model = model
        self.from = from
        self.until = until
        self.period = period
        self.publicKey = publicKey
        self.dock = dock
    }

    /// Every field, in a fixed order, for the commit's signed digest.
    public var fields: [String?] {
        [kind.rawValue, serial, user, name, model, from, until, period.map(String.init), publicKey, dock]
    }

    /// One line for people ("device.add BWC-1 user officer-1"); identifiers are escaped.
    public var summary: String {
        var parts = [kind.rawValue]
        if let serial { parts.append(DisplayText.escaped(serial)) }
        if let user { parts.append("user " + DisplayText.escaped(user)) }
        if let name { parts.append("name " + DisplayText.escaped(name)) }
        if let model { parts.append("model " + DisplayText.escaped(model)) }
        if let from { parts.append("from " + DisplayText.escaped(from)) }
        if let until { parts.append("until " + DisplayText.escaped(until)) }
        if let period { parts.append("period of commit \(period)") }
        if let dock { parts.append("dock " + DisplayText.escaped(dock)) }
        if let publicKey { parts.append("key " + String(Ed25519PublicKey.grouped(Self.fingerprint(publicKeyHex: publicKey) ?? "?").prefix(19))) }
        return parts.joined(separator: " ")
    }

    /// A period's time as a commit carries it (what every dock parses back to the same instant).
    public static func time(_ date: Date) -> String { Timestamps.iso(date) }

    /// The SHA-256 fingerprint of a hex public key; nil if it is not 32 bytes of hex.
    public static func fingerprint(publicKeyHex: String) -> String? {
        Ed25519PublicKey(hex: publicKeyHex)?.fingerprint
    }
}

/// Where this dock's copy of the fleet registry stands.
public struct FleetState: Sendable, Equatable {
    public var dock: String
    public var joinedAt: Date
    /// The highest commit number read from the store (applied, refused or ignored).
    public var appliedNumber: Int64
    /// The hash of the last commit that held (signed by a member, chained): the next commit's parent.
    public var appliedHash: String
    public var syncedAt: Date?
    /// A commit the sync cannot get past (missing from the store), and why.
    public var blockedNumber: Int64?
    public var blockedProblem: String?
}

/// A commit as this dock judged it.
public struct FleetCommitRecord: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable { case applied, refused, bad }
    public var number: Int64
    public var hash: String?
    public var dock: String?
    public var user: String?
    public var at: String?
    public var kind: String?
    public var serial: String?
    public var summary: String
    /// The fingerprint of the key that signed it.
    public var signer: String?
    public var status: Status
    public var problem: String?

    public init(number: Int64, hash: String?, dock: String?, user: String?, at: String?, kind: String?, serial: String?, summary: String,
                signer: String?, status: Status, problem: String?) {
        self.number = number
        self.hash = hash
        self.dock = dock
        self.user = user
        self.at = at
        self.kind = kind
        self.serial = serial
        self.summary = summary
        self.signer = signer
        self.status = status
        self.problem = problem
    }

    /// "commit 7 by dock-b (user bob, 2026-…)", escaped.
    public var origin: String {
        "fleet commit \(number) by \(DisplayText.escaped(dock ?? "?")) (user \(DisplayText.escaped(user ?? "?")), \(DisplayText.escaped(at ?? "?")))"
    }
}

extension Ledger {
    public static let fleetGenesisParent = String(repeating: "0", count: 64)

    public func fleetState() throws -> FleetState? {
        try read { db in try Ledger.fleetState(in: db) }
    }

    static func fleetState(in db: Database) throws -> FleetState? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM fleet_state WHERE id = 1") else { return nil }
        return FleetState(dock: row["dock"], joinedAt: row["joined_at"], appliedNumber: row["applied_number"], appliedHash: row["applied_hash"],
                          syncedAt: row["synced_at"], blockedNumber: row["blocked_number"], blockedProblem: row["blocked_problem"])
    }

    /// This dock takes its registry from the fleet from now on (`fleet init`, `fleet join`).
    public func joinFleet(dock: String, how: String) throws {
        try write("join the fleet") { db in
            if try Ledger.fleetState(in: db) != nil {
                throw UploaderError(.usage, "this dock is in a fleet already: see `uploader fleet log`")
            }
            try db.execute(sql: "INSERT INTO fleet_state (id, dock, joined_at, applied_number, applied_hash) VALUES (1, ?, ?, 0, ?)",
                           arguments: [dock, Date(), Ledger.fleetGenesisParent])
            try Ledger.append(EventDraft(.notice, .fleetJoined, "this dock (\(dock)) takes its registry from the fleet: \(how)"), in: db)
        }
    }

    public func isFleetMember(fingerprint: String) throws -> Bool {
        try read { db in try Ledger.isFleetMember(fingerprint: fingerprint, in: db) }
    }

    static func isFleetMember(fingerprint: String, in db: Database) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT 1 FROM fleet_member WHERE fingerprint = ?", arguments: [fingerprint]) ?? false
    }

    /// The commits read after `number`, oldest first (a short run: since a sync or a write began).
    public func fleetCommits(after number: Int64 = 0) throws -> [FleetCommitRecord] {
        var records: [FleetCommitRecord] = []
        try forEachFleetCommit(after: number) { records.append($0) }
        return records
    }

    /// Every commit read after `number`, oldest first, one at a time: a registry of years stays out of memory.
    public func forEachFleetCommit(after number: Int64 = 0, _ body: (FleetCommitRecord) throws -> Void) throws {
        try read { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT * FROM fleet_commit WHERE number > ? ORDER BY number", arguments: [number])
            while let row = try rows.next() { try body(Self.fleetCommitRecord(row)) }
        }
    }

    /// One commit as this dock recorded it (nil: not read yet).
    public func fleetCommit(number: Int64) throws -> FleetCommitRecord? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM fleet_commit WHERE number = ?", arguments: [number]).map(Self.fleetCommitRecord)
        }
    }

    static func fleetCommitRecord(_ row: Row) -> FleetCommitRecord {
        FleetCommitRecord(number: row["number"], hash: row["hash"], dock: row["dock"], user: row["user_id"], at: row["at"], kind: row["kind"],
                          serial: row["serial"], summary: row["summary"], signer: row["signer"],
                          status: FleetCommitRecord.Status(rawValue: row["status"]) ?? .bad, problem: row["problem"])
    }

    /// The fleet commit that assigned a local custody period (nil: typed here before the fleet).
    public func fleetCommit(ofPeriod id: Int64) throws -> Int64? {
        try read { db in try Int64.fetchOne(db, sql: "SELECT fleet_commit FROM custody_period WHERE id = ?", arguments: [id]) }
    }

    /// The commit by `signer` that made exactly `change` and whose effect is still in force
    /// (nil: none). A second try of a command whose first answer was lost meets it.
    public func fleetCommitHolding(_ change: RegistryChange, signer: String) throws -> FleetCommitRecord? {
        try read { db in
            guard let serialOrKey = change.serial ?? change.publicKey,
                  let row = try Row.fetchOne(db, sql: """
                      SELECT * FROM fleet_commit WHERE status = 'applied' AND kind = ? AND summary = ? AND signer = ? AND serial IS ?
                      ORDER BY number DESC LIMIT 1
                      """, arguments: [change.kind.rawValue, change.summary, signer, change.serial]) else { return nil }
            let record = Ledger.fleetCommitRecord(row)
            let serial = change.serial ?? ""
            // Nothing after it changed the same thing.
            let later = try Bool.fetchOne(db, sql: """
                SELECT 1 FROM fleet_commit WHERE number > ? AND status = 'applied' AND serial IS ? AND kind IN (\(Self.sameTarget(change.kind).map { "'\($0.rawValue)'" }.joined(separator: ",")))
                """, arguments: [record.number, change.serial]) ?? false
            if later { return nil }
            let device = try Ledger.activeDevice(serial: serial, in: db)
            let held: Bool
            switch change.kind {
            case .memberAdmit:
                held = try Bool.fetchOne(db, sql: "SELECT 1 FROM fleet_member WHERE fingerprint = ? AND admitted_in = ?",
                                         arguments: [RegistryChange.fingerprint(publicKeyHex: serialOrKey) ?? "", record.number]) ?? false
            case .deviceAdd:
                held = device.map { $0.defaultUser == change.user && $0.name == change.name && $0.model == change.model } ?? false
            case .deviceRemove:
                held = device == nil
            case .deviceRename:
                held = device?.name == change.name
            case .deviceModel:
                held = device?.model == change.model
            case .periodAssign, .periodEnd, .periodWithdraw:
                let period = try Row.fetchOne(db, sql: "SELECT valid_until, removed_at FROM custody_period WHERE serial = ? AND fleet_commit = ?",
                                              arguments: [serial, change.kind == .periodAssign ? record.number : change.period])
                let until = (period?["valid_until"] as Date?).map(Timestamps.iso)
                let removed = (period?["removed_at"] as Date?) != nil
                held = period != nil && (change.kind == .periodWithdraw ? removed
                                         : !removed && until == change.until.flatMap(Timestamps.parse).map(Timestamps.iso))
            }
            return held ? record : nil
        }
    }

    /// The kinds of change that would undo or replace a change of `kind` to the same camera.
    static func sameTarget(_ kind: RegistryChange.Kind) -> [RegistryChange.Kind] {
        switch kind {
        // A key stays a member (the member row says by which commit).
        case .memberAdmit: []
        case .deviceAdd, .deviceRemove: [.deviceAdd, .deviceRemove]
        case .deviceRename: [.deviceRename, .deviceAdd, .deviceRemove]
        case .deviceModel: [.deviceModel, .deviceAdd, .deviceRemove]
        // A period is judged by the period row itself (its end and withdrawal), not by later commits to the camera.
        case .periodAssign, .periodEnd, .periodWithdraw: []
        }
    }

    /// Refuses `change` as it would be refused if applied to the registry as it is now; changes nothing.
    public func checkRegistryChange(_ change: RegistryChange, number: Int64) throws {
        try write("check a registry change") { db in
            try db.inSavepoint {
                _ = try Ledger.apply(change, number: number, origin: "check", in: db)
                return .rollback
            }
        }
    }

    /// Records commit `record.number` (the next after `fleet_state`): a commit
    /// that held (`record.status == .applied` asked) has its change applied,
    /// or is marked refused when the registry's rules refuse it; a bad one is
    /// recorded and skipped. One transaction, with its custody event. Returns
    /// the record as stored, and the change's outcome; nil if another process
    /// recorded this commit first.
    @discardableResult
    public func recordFleetCommit(_ record: FleetCommitRecord, change: RegistryChange?) throws -> (record: FleetCommitRecord, outcome: String)? {
        try write("apply fleet commit \(record.number)") { db in
            guard let state = try Ledger.fleetState(in: db), state.appliedNumber == record.number - 1 else { return nil }
            var stored = record
            var outcome = ""
            if stored.status == .applied, let change {
                do {
                    try db.inSavepoint {
                        outcome = try Ledger.apply(change, number: record.number, origin: record.origin, in: db)
                        return .commit
                    }
                } catch let error as UploaderError {
                    stored.status = .refused
                    stored.problem = "the registry refuses it: \(error.message)"
                }
            }
            // Commits are ordered by number, never by the time a dock wrote in them: a time well before
            // the commit it follows says one of the two docks' clocks is off (told, and alerted once).
            if stored.status != .bad, stored.problem == nil, let note = try Ledger.clockNote(stored, parentHash: state.appliedHash, in: db) {
                stored.problem = note
                try Ledger.append(EventDraft(.warning, .fleetCommit, serial: stored.serial, "\(stored.origin): \(note)"), in: db)
            }
            try db.execute(sql: """
                INSERT INTO fleet_commit (number, hash, dock, user_id, at, kind, serial, summary, signer, status, problem, recorded_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [stored.number, stored.hash, stored.dock, stored.user, stored.at, stored.kind, stored.serial, stored.summary,
                                 stored.signer, stored.status.rawValue, stored.problem, Date()])
            // A commit that held (applied or refused) is the next one's parent; a bad one is not part of the chain.
            try db.execute(sql: "UPDATE fleet_state SET applied_number = ?, applied_hash = ?, blocked_number = NULL, blocked_problem = NULL WHERE id = 1",
                           arguments: [stored.number, stored.status == .bad ? state.appliedHash : (stored.hash ?? state.appliedHash)])
            switch stored.status {
            case .applied:
                try Ledger.append(EventDraft(.notice, .fleetCommit, serial: stored.serial, user: change?.user,
                                             "\(stored.origin) applied: \(stored.summary)\(outcome.isEmpty ? "" : "; \(outcome)")"), in: db)
            case .refused, .bad:
                try Ledger.append(EventDraft(.error, .fleetRejected, serial: stored.serial,
                                             "\(stored.origin) ignored: \(stored.problem ?? "?") (\(stored.summary)); the registry stays as it was"), in: db)
            }
            return (stored, outcome)
        }
    }

    /// How far a commit's time may lie before the time of the commit it follows (clocks differ a little).
    public static let fleetClockTolerance: TimeInterval = 300

    /// A note when `record` says it was written well before the commit it follows (its parent).
    static func clockNote(_ record: FleetCommitRecord, parentHash: String, in db: Database) throws -> String? {
        guard let at = record.at.flatMap(Timestamps.parse),
              let parent = try Row.fetchOne(db, sql: "SELECT * FROM fleet_commit WHERE number < ? AND status != 'bad' ORDER BY number DESC LIMIT 1",
                                            arguments: [record.number]).map(fleetCommitRecord), parent.hash == parentHash,
              let parentAt = parent.at.flatMap(Timestamps.parse), parentAt.timeIntervalSince(at) > fleetClockTolerance else { return nil }
        let minutes = Int((parentAt.timeIntervalSince(at) / 60).rounded())
        return "clock: it says it was written \(minutes) min before \(parent.origin), which it follows: the clock of \(DisplayText.escaped(record.dock ?? "?")) or of \(DisplayText.escaped(parent.dock ?? "?")) is off (set it right with NTP); the registry orders commits by number, so this changes nothing it decides"
    }

    /// The sync reached the store: when, and what (if anything) stops it.
    public func recordFleetSync(blockedAt number: Int64? = nil, problem: String? = nil) throws {
        try write("record a fleet sync") { db in
            let before = try Ledger.fleetState(in: db)
            try db.execute(sql: "UPDATE fleet_state SET synced_at = ?, blocked_number = ?, blocked_problem = ? WHERE id = 1",
                           arguments: [Date(), number, problem])
            if let number, let problem, before?.blockedNumber != number {
                try Ledger.append(EventDraft(.error, .fleetRejected, "fleet commit \(number): \(problem)"), in: db)
            }
        }
    }

    /// Alerts for fleet commits this dock ignored (each told once, ever) and a sync that cannot go on.
    public func fleetAlertConditions() throws -> [Alert] {
        try read { db in
            var alerts: [Alert] = []
            for row in try Row.fetchAll(db, sql: """
                SELECT number, dock, user_id, at, summary, problem FROM fleet_commit
                WHERE (status != 'applied' OR problem LIKE 'clock: %') AND NOT EXISTS (SELECT 1 FROM alert WHERE alert.key = 'fleet-commit-' || fleet_commit.number)
                ORDER BY number LIMIT 100
                """) {
                let record = FleetCommitRecord(number: row["number"], hash: nil, dock: row["dock"], user: row["user_id"], at: row["at"], kind: nil,
                                               serial: nil, summary: row["summary"], signer: nil, status: .bad, problem: row["problem"])
                if let problem = record.problem, problem.hasPrefix("clock: ") {
                    alerts.append(Alert(key: "fleet-commit-\(record.number)", message: "\(record.origin) \(problem.dropFirst(7))"))
                    continue
                }
                alerts.append(Alert(key: "fleet-commit-\(record.number)",
                                    message: "\(record.origin) was ignored: \(record.problem ?? "?") (\(record.summary)); someone with the store's credentials but not a fleet member's key may be trying to change the registry: see `uploader fleet log`"))
            }
            if let state = try Ledger.fleetState(in: db), let number = state.blockedNumber, let problem = state.blockedProblem {
                alerts.append(Alert(key: "fleet-blocked-\(number)", message: "the fleet registry cannot be synced past commit \(number - 1): \(problem)"))
            }
            return alerts
        }
    }

    /// Applies one change of the registry; returns what it did, for the log. Throws as the local command would.
    static func apply(_ change: RegistryChange, number: Int64, origin: String, in db: Database) throws -> String {
        func required<T>(_ value: T?, _ what: String) throws -> T {
            guard let value else { throw UploaderError(.usage, "a \(change.kind.rawValue) change needs \(what)") }
            return value
        }
        func time(_ text: String?, _ what: String) throws -> Date? {
            guard let text else { return nil }
            guard let date = Timestamps.parse(text) else { throw UploaderError(.usage, "\(what) \(DisplayText.escaped(text)) is not an ISO 8601 time") }
            return date
        }
        func periodRow(_ serial: String) throws -> CustodyRecord {
            let commit = try required(change.period, "the period's commit")
            guard let record = try CustodyRecord.fetchOne(db, sql: "SELECT * FROM custody_period WHERE serial = ? AND fleet_commit = ? AND removed_at IS NULL",
                                                          arguments: [serial, commit]) else {
                throw UploaderError(.notFound, "device \(serial) has no custody period made by fleet commit \(commit)")
            }
            return record
        }
        switch change.kind {
        case .memberAdmit:
            let key = try required(change.publicKey, "a public key")
            guard let fingerprint = RegistryChange.fingerprint(publicKeyHex: key) else { throw UploaderError(.usage, "the admitted key is not 32 bytes of hex") }
            if try isFleetMember(fingerprint: fingerprint, in: db) { throw UploaderError(.usage, "key \(Ed25519PublicKey.grouped(fingerprint)) is a member already") }
            try db.execute(sql: "INSERT INTO fleet_member (fingerprint, public_key, dock, admitted_in) VALUES (?, ?, ?, ?)",
                           arguments: [fingerprint, key, change.dock, number])
            return "key \(Ed25519PublicKey.grouped(fingerprint)) of \(DisplayText.escaped(change.dock ?? "?")) is a member"
        case .deviceAdd:
            let serial = try required(change.serial, "a serial")
            let released = try addDevice(serial: serial, defaultUser: try required(change.user, "a user"), name: change.name, model: change.model,
                                         because: origin, in: db)
            return released > 0 ? "released \(released) held file\(released == 1 ? "" : "s")" : ""
        case .deviceRemove:
            try removeDevice(serial: try required(change.serial, "a serial"), in: db)
            return ""
        case .deviceRename:
            try describeDevice(serial: try required(change.serial, "a serial"), name: try required(change.name, "a name"), because: origin, in: db)
            return ""
        case .deviceModel:
            try describeDevice(serial: try required(change.serial, "a serial"), model: try required(change.model, "a model"), because: origin, in: db)
            return ""
        case .periodAssign:
            let serial = try required(change.serial, "a serial")
            let result = try assign(serial: serial, user: try required(change.user, "a user"), from: try required(try time(change.from, "from"), "a start"),
                                    until: try time(change.until, "until"), fleetCommit: number, in: db)
            return "\(result.reattributed) not-yet-uploaded file\(result.reattributed == 1 ? "" : "s") re-attributed"
        case .periodEnd:
            let serial = try required(change.serial, "a serial")
            let changed = try endPeriod(try periodRow(serial), serial: serial, at: try required(try time(change.until, "until"), "an end"), in: db)
            return "\(changed) not-yet-uploaded file\(changed == 1 ? "" : "s") re-attributed"
        case .periodWithdraw:
            let serial = try required(change.serial, "a serial")
            let (_, changed) = try unassign(serial: serial, periodID: try periodRow(serial).id, in: db)
            return "\(changed) not-yet-uploaded file\(changed == 1 ? "" : "s") re-attributed"
        }
    }
}
