import Foundation
import Ledger
import UploaderCore

/// A dock with a registry of its own (cameras, custody periods) creating or
/// joining a fleet: its devices and periods come in as commits, what the
/// fleet holds identically is not committed again, and where the two
/// registries disagree the join lists each conflict and stops, changing
/// nothing, until an admin resolves it. Never a silent merge.
///
/// The fleet's registry is read into a scratch ledger beside this dock's
/// (the same sync and rules as every dock's), compared there, written to
/// through it (each change checked against the fleet at its newest commit),
/// and taken into this dock's ledger in one transaction at the end.
public struct FleetJoin {
    public let registry: FleetRegistry
    public let author: FleetRegistry.Author
    public let lockedUntil: Date?

    public init(registry: FleetRegistry, author: FleetRegistry.Author, lockedUntil: Date?) {
        self.registry = registry
        self.author = author
        self.lockedUntil = lockedUntil
    }

    /// How this dock's registry compares with the fleet's.
    public struct Plan: Sendable {
        /// One line each, naming this dock's record and the fleet commit it disagrees with.
        public var conflicts: [String] = []
        /// What to commit, in order: devices first, then periods by start.
        public var changes: [RegistryChange] = []
        /// Records the fleet holds identically already.
        public var identical = 0
    }

    public enum Outcome: Sendable {
        /// Not a member yet: what the join will meet once an admin admits this dock's key.
        case waitingForAdmission(Plan, head: Int64)
        /// Stopped: nothing changed here (commits brought in before a conflict stay in the fleet, and count as identical next time).
        case conflicts([String], head: Int64)
        /// In the fleet: the commits written for this dock's records, and what taking the fleet's registry did.
        case joined(brought: [FleetCommitRecord], adoption: Ledger.FleetAdoption, head: Int64)
    }

    /// `creating`: `fleet init` (commit 1 admits this dock's key), else `fleet join` (the join request is written already).
    public func run(creating: Bool) throws -> Outcome {
        let scratchPath = registry.ledger.path + ".fleet-join-\(ProcessInfo.processInfo.processIdentifier)"
        Self.removeScratch(scratchPath)
        defer { Self.removeScratch(scratchPath) }
        return try run(creating: creating, scratch: try Ledger(path: scratchPath))
    }

    private enum Replan: Error { case again }

    private func run(creating: Bool, scratch: Ledger) throws -> Outcome {
        let fleet = FleetRegistry(ledger: scratch, client: registry.client, prefix: registry.prefix)
        if creating {
            _ = try fleet.create(by: author, lockedUntil: lockedUntil)
        } else {
            try scratch.joinFleet(dock: author.dock, how: "a scratch copy to compare this dock's registry with")
            try fleet.syncOrThrow()
            if try !scratch.isFleetMember(fingerprint: author.key.publicKey.fingerprint) {
                let plan = try Self.plan(local: try registry.ledger.registryContents(), fleet: scratch)
                return .waitingForAdmission(plan, head: try scratch.fleetState()?.appliedNumber ?? 0)
            }
        }
        var brought: [FleetCommitRecord] = []
        while true {
            try fleet.syncOrThrow()
            let plan = try Self.plan(local: try registry.ledger.registryContents(), fleet: scratch)
            if !plan.conflicts.isEmpty {
                try registry.ledger.log(EventDraft(.warning, .fleetRejected, "joining the fleet stopped, nothing changed at this dock: \(plan.conflicts.count) conflict\(plan.conflicts.count == 1 ? "" : "s") between this dock's registry and the fleet's: \(plan.conflicts.joined(separator: "; "))"))
                return .conflicts(plan.conflicts, head: try scratch.fleetState()?.appliedNumber ?? 0)
            }
            guard let next = plan.changes.first else { break }
            do {
                // Checked again against the fleet at the commit it will follow: a change another admin made meanwhile is a conflict, never merged.
                let written = try fleet.commit(next, by: author, lockedUntil: lockedUntil, precheck: {
                    let now = try Self.plan(local: try registry.ledger.registryContents(), fleet: scratch)
                    guard now.conflicts.isEmpty, now.changes.first == next else { throw Replan.again }
                })
                brought.append(written.record)
            } catch Replan.again {
                continue
            }
        }
        let copy = try scratch.fleetRegistryCopy()
        let adoption = try registry.ledger.adoptFleetRegistry(copy, dock: author.dock, broughtIn: Set(brought.map(\.number)))
        return .joined(brought: brought, adoption: adoption, head: copy.state.appliedNumber)
    }

    static func removeScratch(_ path: String) {
        for suffix in ["", "-wal", "-shm", ".migrate.lock"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }

    /// Compares this dock's registry (`local`) with the fleet's (`fleet`: a ledger that follows it).
    public static func plan(local: RegistryContents, fleet ledger: Ledger) throws -> Plan {
        var plan = Plan()
        let fleet = try ledger.registryContents()
        func origin(_ serial: String, _ kinds: [RegistryChange.Kind]) throws -> String {
            try ledger.lastFleetCommit(serial: serial, kinds: kinds)?.origin ?? "the fleet"
        }
        func described(_ device: Device) -> String {
            "registered to \(DisplayText.escaped(device.defaultUser)) (name \(device.name.map(DisplayText.escaped) ?? "none"), model \(device.model.map(DisplayText.escaped) ?? "none"))"
        }
        for device in local.activeDevices {
            let serial = DisplayText.escaped(device.serial)
            guard let there = fleet.device(device.serial) else {
                plan.changes.append(RegistryChange(kind: .deviceAdd, serial: device.serial, user: device.defaultUser, name: device.name, model: device.model))
                continue
            }
            if there.removedAt != nil {
                plan.conflicts.append("\(serial): this dock has it \(described(device)); the fleet removed it in \(try origin(device.serial, [.deviceRemove]))")
            } else if there.defaultUser != device.defaultUser || there.name != device.name || there.model != device.model {
                plan.conflicts.append("\(serial): this dock has it \(described(device)); \(try origin(device.serial, [.deviceAdd, .deviceRename, .deviceModel])) has it \(described(there))")
            } else {
                plan.identical += 1
            }
        }
        let registered = Set(local.activeDevices.map(\.serial))
        for period in local.periods where period.fleetCommit == nil && registered.contains(period.serial) {
            let theirs = fleet.periods.filter { $0.serial == period.serial }
            if theirs.contains(where: { $0.sameAs(period) }) {
                plan.identical += 1
                continue
            }
            let overlapping = theirs.filter { $0.overlaps(period) }
            for other in overlapping {
                let made = try other.fleetCommit.flatMap { try ledger.fleetCommit(number: $0) }?.origin ?? "the fleet"
                plan.conflicts.append("\(DisplayText.escaped(period.serial)): this dock's custody period #\(period.id) (\(period.summary)) overlaps the fleet's period of \(other.summary), assigned in \(made)")
            }
            if overlapping.isEmpty {
                plan.changes.append(RegistryChange(kind: .periodAssign, serial: period.serial, user: period.user, from: RegistryChange.time(period.from),
                                                   until: period.until.map(RegistryChange.time)))
            }
        }
        plan.changes.sort { ($0.kind == .deviceAdd ? 0 : 1, $0.serial ?? "", $0.from ?? "") < ($1.kind == .deviceAdd ? 0 : 1, $1.serial ?? "", $1.from ?? "") }
        return plan
    }
}
