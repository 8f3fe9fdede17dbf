import Foundation
import GRDB
import UploaderCore

/// A custody period as the registry holds it, with the fleet commit that made it (nil: typed at this dock).
public struct RegistryPeriod: Sendable, Equatable {
    public var id: Int64
    public var serial: String
    public var user: String
    public var from: Date
    public var until: Date?
    public var fleetCommit: Int64?

    /// "alice from 2026-…Z to open end".
    public var summary: String {
        "\(DisplayText.escaped(user)) from \(Timestamps.iso(from)) to \(until.map(Timestamps.iso) ?? "open end")"
    }

    /// Same holder and the same times (to the millisecond a commit carries).
    public func sameAs(_ other: RegistryPeriod) -> Bool {
        serial == other.serial && user == other.user && Timestamps.iso(from) == Timestamps.iso(other.from)
            && until.map(Timestamps.iso) == other.until.map(Timestamps.iso)
    }

    public func overlaps(_ other: RegistryPeriod) -> Bool {
        serial == other.serial && CustodyPeriod(user: user, from: from, until: until).overlaps(CustodyPeriod(user: other.user, from: other.from, until: other.until))
    }
}

/// A registry's contents: every device (removed ones too) and the periods in force.
public struct RegistryContents: Sendable {
    public var devices: [Device]
    public var periods: [RegistryPeriod]

    public var activeDevices: [Device] { devices.filter { $0.removedAt == nil } }
    public func device(_ serial: String) -> Device? { devices.first { $0.serial == serial } }
    /// Nothing a fleet would have to take in: no registered camera and no period in force typed here.
    public var isEmpty: Bool { activeDevices.isEmpty && !periods.contains { $0.fleetCommit == nil } }
}

/// The fleet's registry as a dock that joins takes it: its commits and members, and its contents.
public struct FleetRegistryCopy: Sendable {
    public var state: FleetState
    public var commits: [FleetCommitRecord]
    public var members: [(fingerprint: String, publicKey: String, dock: String?, admittedIn: Int64)]
    public var contents: RegistryContents
    /// The scratch copy's snapshot rows: where it started from (a new dock starts from the
    /// newest snapshot that holds) and its verdicts, so `fleet log` and the digest checks carry on.
    public var snapshots: [FleetSnapshotRow] = []
}

/// One `fleet_snapshot` row, as it is copied from a joining dock's scratch ledger.
public struct FleetSnapshotRow: Sendable {
    public var number: Int64
    public var digest: String?
    public var status: String
    public var dock: String?
    public var signer: String?
    public var problem: String?
    public var recordedAt: Date
}

extension Ledger {
    public func registryContents() throws -> RegistryContents {
        try read { db in try Ledger.registryContents(in: db) }
    }

    static func registryContents(in db: Database) throws -> RegistryContents {
        let devices = try Device.fetchAll(db, sql: "SELECT * FROM device ORDER BY serial")
        let periods = try Row.fetchAll(db, sql: "SELECT * FROM custody_period WHERE removed_at IS NULL ORDER BY serial, valid_from").map {
            RegistryPeriod(id: $0["id"], serial: $0["serial"], user: $0["user_id"], from: $0["valid_from"], until: $0["valid_until"],
                           fleetCommit: $0["fleet_commit"])
        }
        return RegistryContents(devices: devices, periods: periods)
    }

    /// The registry, commits and members of a fleet this ledger follows (a joining dock's scratch copy).
    public func fleetRegistryCopy() throws -> FleetRegistryCopy {
        try read { db in
            guard let state = try Ledger.fleetState(in: db) else { throw UploaderError(.ledger, "this ledger follows no fleet") }
            let commits = try Row.fetchAll(db, sql: "SELECT * FROM fleet_commit ORDER BY number").map(Ledger.fleetCommitRecord)
            let members = try Row.fetchAll(db, sql: "SELECT * FROM fleet_member ORDER BY admitted_in").map {
                (fingerprint: $0["fingerprint"] as String, publicKey: $0["public_key"] as String, dock: $0["dock"] as String?, admittedIn: $0["admitted_in"] as Int64)
            }
            let snapshots = try Row.fetchAll(db, sql: "SELECT * FROM fleet_snapshot ORDER BY number").map {
                FleetSnapshotRow(number: $0["number"], digest: $0["digest"], status: $0["status"], dock: $0["dock"], signer: $0["signer"],
                                 problem: $0["problem"], recordedAt: $0["recorded_at"])
            }
            return FleetRegistryCopy(state: state, commits: commits, members: members, contents: try Ledger.registryContents(in: db), snapshots: snapshots)
        }
    }

    /// The newest applied commit of one of `kinds` to camera `serial` (nil: none).
    public func lastFleetCommit(serial: String, kinds: [RegistryChange.Kind]) throws -> FleetCommitRecord? {
        try read { db in
            try Row.fetchOne(db, sql: """
                SELECT * FROM fleet_commit WHERE serial = ? AND status = 'applied' AND kind IN (\(kinds.map { "'\($0.rawValue)'" }.joined(separator: ",")))
                ORDER BY number DESC LIMIT 1
                """, arguments: [serial]).map(Ledger.fleetCommitRecord)
        }
    }

    /// What taking the fleet's registry did at this dock, for the admin.
    public struct FleetAdoption: Sendable {
        /// Devices and periods of this dock's that the fleet holds now (identical), by commit.
        public var kept: [String] = []
        /// Devices and periods the fleet brought that this dock did not have.
        public var received: [String] = []
        /// Periods of cameras not registered here, withdrawn: the fleet's registry decides for them now.
        public var setAside: [String] = []
    }

    /// A dock with a registry of its own joins: in one transaction it takes
    /// the fleet's commits, members and contents (`fleet`, read into a
    /// scratch ledger after this dock's own devices and periods were
    /// committed), keeping each of its own devices and periods that the fleet
    /// now holds identically (a period is tied to its fleet commit). Refuses,
    /// changing nothing, when anything of this dock's is not in the fleet's
    /// registry as it is (changed since the join looked). `broughtIn`: the
    /// commits this join wrote, so the log says which records they carried.
    public func adoptFleetRegistry(_ fleet: FleetRegistryCopy, dock: String, broughtIn: Set<Int64>) throws -> FleetAdoption {
        try write("join the fleet with this dock's registry") { db in
            if try Ledger.fleetState(in: db) != nil {
                throw UploaderError(.usage, "this dock is in a fleet already: see `uploader fleet log`")
            }
            var adoption = FleetAdoption()
            let local = try Ledger.registryContents(in: db)
            let localDevices = Dictionary(local.devices.map { ($0.serial, $0) }) { first, _ in first }
            let fleetActive = Dictionary(fleet.contents.activeDevices.map { ($0.serial, $0) }) { first, _ in first }
            let byNumber = Dictionary(fleet.commits.map { ($0.number, $0) }) { first, _ in first }
            var lastDeviceCommit: [String: Int64] = [:]
            var broughtAdds = Set<String>()
            for record in fleet.commits where record.status == .applied && record.kind?.hasPrefix("device.") == true {
                guard let serial = record.serial else { continue }
                lastDeviceCommit[serial] = record.number
                if broughtIn.contains(record.number), record.kind == RegistryChange.Kind.deviceAdd.rawValue { broughtAdds.insert(serial) }
            }
            func commitOrigin(_ number: Int64?) -> String {
                number.flatMap { byNumber[$0] }?.origin ?? "the fleet"
            }
            // Every device and period of this dock's must be the fleet's now, identically.
            for device in local.activeDevices {
                guard let there = fleetActive[device.serial], there.defaultUser == device.defaultUser, there.name == device.name, there.model == device.model else {
                    throw UploaderError(.busy, "device \(DisplayText.escaped(device.serial)) of this dock is not in the fleet's registry as it is here (it changed while the join ran): run `uploader fleet join` again")
                }
            }
            var claimed = Set<Int64>()
            for period in local.periods where period.fleetCommit == nil {
                guard let device = localDevices[period.serial], device.removedAt == nil else {
                    // A camera this dock took out of its registry: its periods would come back with a fleet's registration.
                    try db.execute(sql: "UPDATE custody_period SET removed_at = ? WHERE id = ?", arguments: [Date(), period.id])
                    let line = "custody period #\(period.id) of \(DisplayText.escaped(period.serial)) (\(period.summary)) is withdrawn: the camera is not registered at this dock, and the fleet's registry decides who holds it from now on"
                    try Ledger.append(EventDraft(.warning, .deviceUnassigned, serial: period.serial, user: period.user, line), in: db)
                    adoption.setAside.append(line)
                    continue
                }
                guard let match = fleet.contents.periods.first(where: { $0.sameAs(period) && !claimed.contains($0.id) }), let commit = match.fleetCommit else {
                    throw UploaderError(.busy, "custody period #\(period.id) of \(DisplayText.escaped(period.serial)) is not in the fleet's registry as it is here (it changed while the join ran): run `uploader fleet join` again")
                }
                claimed.insert(match.id)
                try db.execute(sql: "UPDATE custody_period SET fleet_commit = ? WHERE id = ?", arguments: [commit, period.id])
                let how = broughtIn.contains(commit) ? "brought into the fleet as" : "is the fleet's period of"
                let line = "custody period #\(period.id) of \(DisplayText.escaped(period.serial)) (\(period.summary)) \(how) \(commitOrigin(commit))"
                try Ledger.append(EventDraft(.notice, .deviceAssigned, serial: period.serial, user: period.user, line), in: db)
                adoption.kept.append(line)
            }
            // The fleet's commits and members, as the scratch copy judged them.
            try db.execute(sql: "INSERT INTO fleet_state (id, dock, joined_at, applied_number, applied_hash, synced_at) VALUES (1, ?, ?, ?, ?, ?)",
                           arguments: [dock, Date(), fleet.state.appliedNumber, fleet.state.appliedHash, fleet.state.syncedAt])
            for member in fleet.members {
                try db.execute(sql: "INSERT INTO fleet_member (fingerprint, public_key, dock, admitted_in) VALUES (?, ?, ?, ?)",
                               arguments: [member.fingerprint, member.publicKey, member.dock, member.admittedIn])
            }
            for snapshot in fleet.snapshots {
                try db.execute(sql: "INSERT INTO fleet_snapshot (number, digest, status, dock, signer, problem, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                               arguments: [snapshot.number, snapshot.digest, snapshot.status, snapshot.dock, snapshot.signer, snapshot.problem, snapshot.recordedAt])
            }
            let now = Date()
            for record in fleet.commits {
                try db.execute(sql: """
                    INSERT INTO fleet_commit (number, hash, dock, user_id, at, kind, serial, summary, signer, status, problem, recorded_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [record.number, record.hash, record.dock, record.user, record.at, record.kind, record.serial, record.summary,
                                     record.signer, record.status.rawValue, record.problem, now])
            }
            // The fleet's devices this dock did not have, and its periods.
            var touched = Set<String>()
            for device in fleet.contents.activeDevices {
                let origin = commitOrigin(lastDeviceCommit[device.serial])
                if let mine = localDevices[device.serial], mine.removedAt == nil {
                    let how = broughtAdds.contains(device.serial) ? "brought into the fleet as" : "is registered in the fleet identically by"
                    let line = "device \(DisplayText.escaped(device.serial)) (\(DisplayText.escaped(device.defaultUser))) \(how) \(origin)"
                    try Ledger.append(EventDraft(.notice, .deviceRegistered, serial: device.serial, user: device.defaultUser, line), in: db)
                    adoption.kept.append(line)
                    continue
                }
                _ = try Ledger.addDevice(serial: device.serial, defaultUser: device.defaultUser, name: device.name, model: device.model,
                                         because: origin + ", taken in when this dock joined", in: db)
                adoption.received.append("device \(DisplayText.escaped(device.serial)) (\(DisplayText.escaped(device.defaultUser))) from \(origin)")
                touched.insert(device.serial)
            }
            // A camera the fleet removed keeps its row, and its periods (a registration later brings them back, as at every dock).
            for device in fleet.contents.devices where device.removedAt != nil && localDevices[device.serial] == nil {
                try db.execute(sql: "INSERT INTO device (serial, default_user, name, model, registered_at, removed_at) VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [device.serial, device.defaultUser, device.name, device.model, device.registeredAt, device.removedAt])
            }
            for period in fleet.contents.periods where !claimed.contains(period.id) {
                try db.execute(sql: "INSERT INTO custody_period (serial, user_id, valid_from, valid_until, created_at, fleet_commit) VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [period.serial, period.user, period.from, period.until, now, period.fleetCommit])
                let line = "custody period #\(db.lastInsertedRowID) of \(DisplayText.escaped(period.serial)) (\(period.summary)) from \(commitOrigin(period.fleetCommit))"
                try Ledger.append(EventDraft(.notice, .deviceAssigned, serial: period.serial, user: period.user, line + ", taken in when this dock joined"), in: db)
                adoption.received.append(line)
                touched.insert(period.serial)
            }
            for serial in touched.sorted() { _ = try Ledger.reattribute(serial: serial, in: db) }
            try Ledger.append(EventDraft(.notice, .fleetJoined, """
                this dock (\(DisplayText.escaped(dock))) takes its registry from the fleet at commit \(fleet.state.appliedNumber): \
                \(adoption.kept.count) of its records the fleet holds (\(broughtIn.count) brought in as commits), \
                \(adoption.received.count) taken from the fleet, \(adoption.setAside.count) set aside
                """), in: db)
            return adoption
        }
    }
}
