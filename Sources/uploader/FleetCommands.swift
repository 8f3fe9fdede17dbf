import Agent
import ArgumentParser
import Crypto
import Fleet
import Foundation
import Ledger
import Logging
import UploaderCore

struct FleetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet", abstract: "Share one camera registry among the docks, through the evidence store.",
        subcommands: [Init.self, Join.self, Admit.self, Sync.self, Log.self, Status.self, Find.self])

    struct Init: BlockingCommand {
        static let configuration = CommandConfiguration(abstract: "Create the fleet at its first dock (commit 1 admits this dock's key).")
        @OptionGroup var options: GlobalOptions

        func runBlocking() throws {
            try options.run {
                let configuration = try options.loadConfiguration()
                let ledger = try options.openLedger(configuration)
                let registry = try FleetLink.connect(configuration: configuration, ledger: ledger)
                let author = try FleetLink.author(configuration: configuration)
                let lockedUntil = try FleetLink.lockedUntil(configuration: configuration, registry: registry)
                if try ledger.fleetState() == nil, try !ledger.registryContents().isEmpty {
                    // This dock's cameras and periods come in as the fleet's first commits after its own admission.
                    try FleetCommand.report(try FleetJoin(registry: registry, author: author, lockedUntil: lockedUntil).run(creating: true))
                    print("created the fleet with this dock's registry; key \(author.key.publicKey.groupedFingerprint)")
                    return
                }
                let record = try registry.create(by: author, lockedUntil: lockedUntil)
                print("created the fleet: commit \(record.number) admits this dock (\(DisplayText.escaped(author.dock))), key \(author.key.publicKey.groupedFingerprint)")
            }
        }
    }

    struct Join: BlockingCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask to join the fleet: prints this dock's key fingerprint for an admin at a member to admit.")
        @OptionGroup var options: GlobalOptions

        func runBlocking() throws {
            try options.run {
                let configuration = try options.loadConfiguration()
                let ledger = try options.openLedger(configuration)
                let registry = try FleetLink.connect(configuration: configuration, ledger: ledger)
                let author = try FleetLink.author(configuration: configuration)
                let fingerprint = author.key.publicKey.groupedFingerprint
                if try ledger.fleetState() == nil, try !ledger.registryContents().isEmpty {
                    // A dock with a registry of its own keeps it until it is admitted, then brings it in.
                    try registry.writeJoinRequest(by: author)
                    let join = FleetJoin(registry: registry, author: author, lockedUntil: try FleetLink.lockedUntil(configuration: configuration, registry: registry))
                    try FleetCommand.report(try join.run(creating: false), fingerprint: fingerprint)
                    return
                }
                let report = try registry.requestJoin(by: author)
                if try ledger.isFleetMember(fingerprint: author.key.publicKey.fingerprint) {
                    print("this dock is a fleet member (registry at commit \(report.head)); key \(fingerprint)")
                } else {
                    print("asked to join the fleet (registry read up to commit \(report.head)); an admin at a member runs:\n  uploader fleet admit \(fingerprint.replacingOccurrences(of: " ", with: ""))\nafter comparing this fingerprint: \(fingerprint)")
                }
            }
        }
    }

    struct Admit: BlockingCommand {
        static let configuration = CommandConfiguration(abstract: "Admit a dock that asked to join, by the key fingerprint it printed.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The new dock's key fingerprint (64 hex digits; spaces and colons are ignored).") var fingerprint: [String]

        func runBlocking() throws {
            try options.run {
                guard let wanted = Ed25519PublicKey.normalizedFingerprint(fingerprint.joined()) else {
                    throw UploaderError(.usage, "a key fingerprint is 64 hex digits, as `uploader fleet join` printed it")
                }
                let configuration = try options.loadConfiguration()
                let ledger = try options.openLedger(configuration)
                let registry = try FleetLink.connect(configuration: configuration, ledger: ledger)
                let written = try registry.admit(fingerprint: wanted, by: try FleetLink.author(configuration: configuration),
                                                 lockedUntil: try FleetLink.lockedUntil(configuration: configuration, registry: registry))
                print("commit \(written.record.number): \(written.outcome)")
            }
        }
    }

    struct Sync: BlockingCommand {
        static let configuration = CommandConfiguration(abstract: "Read the fleet registry's new commits from the store now.")
        @OptionGroup var options: GlobalOptions

        func runBlocking() throws {
            try options.run {
                let configuration = try options.loadConfiguration()
                let ledger = try options.openLedger(configuration)
                guard let registry = try FleetLink.registry(configuration: configuration, ledger: ledger) else {
                    throw UploaderError(.usage, "this dock is not in a fleet: run `uploader fleet init` (the first dock) or `uploader fleet join`")
                }
                let report = try registry.sync()
                for (record, outcome) in report.commits {
                    print(FleetCommand.line(record) + (outcome.isEmpty ? "" : "; \(outcome)"))
                }
                for note in report.snapshotNotes { print(DisplayText.terminalSafe(note)) }
                if let blocked = report.blocked { throw UploaderError(.insecure, "fleet registry: \(blocked)") }
                print("registry at commit \(report.head) (\(report.commits.count) new)")
            }
        }
    }

    struct Log: BlockingCommand {
        static let configuration = CommandConfiguration(abstract: "List the registry's commits: who (dock, user), when, what, and whether the signature held.")
        @OptionGroup var options: GlobalOptions
        @OptionGroup var display: OutputOptions

        func runBlocking() throws {
            try options.run {
                let configuration = try options.loadConfiguration()
                let ledger = try options.openLedger(configuration)
                guard try ledger.fleetState() != nil else {
                    throw UploaderError(.usage, "this dock is not in a fleet: run `uploader fleet init` (the first dock) or `uploader fleet join`")
                }
                FleetLink.syncQuietly(configuration: configuration, ledger: ledger, logger: Logger(label: "uploader.fleet"))
                if display.json { return try Output.jsonArray { element in try ledger.forEachFleetCommit(element) } }
                if let start = try ledger.fleetSnapshotStart() { print(FleetCommand.snapshotStartLine(start)) }
                try ledger.forEachFleetCommit { print(FleetCommand.line($0)) }
            }
        }
    }

    /// "7  dock-b  bob  2026-…  device.add BWC-1 user officer-1  signature ok".
    static func line(_ record: FleetCommitRecord) -> String {
        let verdict = switch record.status {
        case .applied: "signature ok" + (record.problem.map { "; " + $0 } ?? "")
        case .refused: "signature ok, REFUSED: \(record.problem ?? "?")"
        case .bad: "BAD, ignored: \(record.problem ?? "?")"
        }
        return [String(record.number), record.dock ?? "?", record.user ?? "?", record.at ?? "?", record.summary, verdict]
            .map(DisplayText.terminalSafe).joined(separator: "  ")
    }

    /// What creating or joining the fleet with this dock's own registry did: each conflict on a line of its own, and a stop.
    static func report(_ outcome: FleetJoin.Outcome, fingerprint: String = "") throws {
        func conflictLines(_ conflicts: [String]) {
            for conflict in conflicts { print("CONFLICT " + DisplayText.terminalSafe(conflict)) }
        }
        switch outcome {
        case .waitingForAdmission(let plan, let head):
            conflictLines(plan.conflicts)
            print("asked to join the fleet (registry read up to commit \(head)); this dock keeps its own registry until it is admitted, then `uploader fleet join` again brings in \(plan.changes.count) record\(plan.changes.count == 1 ? "" : "s") (\(plan.identical) the fleet holds already)\(plan.conflicts.isEmpty ? "" : ", once the \(plan.conflicts.count) conflict\(plan.conflicts.count == 1 ? " above is" : "s above are") resolved")")
            print("an admin at a member runs:\n  uploader fleet admit \(fingerprint.replacingOccurrences(of: " ", with: ""))\nafter comparing this fingerprint: \(fingerprint)")
        case .conflicts(let conflicts, let head):
            conflictLines(conflicts)
            throw UploaderError(.usage, "the join stopped and nothing changed at this dock: \(conflicts.count) conflict\(conflicts.count == 1 ? "" : "s") between this dock's registry and the fleet's (at commit \(head)), listed above; resolve each here (`uploader device remove`, `uploader device unassign`) or at a member, then run `uploader fleet join` again")
        case .joined(let brought, let adoption, let head):
            for record in brought { print("brought in: " + line(record)) }
            for text in adoption.kept where !text.contains("brought into the fleet") { print("already in the fleet: " + DisplayText.terminalSafe(text)) }
            for text in adoption.received { print("from the fleet: " + DisplayText.terminalSafe(text)) }
            for text in adoption.setAside { print("set aside: " + DisplayText.terminalSafe(text)) }
            print("this dock takes its registry from the fleet (commit \(head)): \(brought.count) commit\(brought.count == 1 ? "" : "s") brought in")
        }
    }
}

extension FleetCommand {
    /// A `device …` change at a dock in a fleet goes to the store as a commit
    /// (then applied here like every dock's); nil when the dock is not in a fleet.
    static func writeThrough(_ change: RegistryChange, configuration: Configuration, ledger: Ledger) throws -> String? {
        guard try ledger.fleetState() != nil else { return nil }
        let written = try FleetLink.write(change, configuration: configuration, ledger: ledger)
        return "fleet commit \(written.record.number)" + (written.outcome.isEmpty ? "" : "; \(written.outcome)")
    }
}
