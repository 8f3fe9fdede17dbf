import ArgumentParser
import Foundation
import Ledger
import LedgerSimulation
import Platform
import UploaderCore

/// The ledger-scale benchmark's loader (`scripts/lib/bench-ledger.sh`): fills
/// the configured ledger with years of simulated history. Its own executable,
/// so the product never ships a way to write made-up custody events.
@main
struct LedgerSimulationCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uploader-ledger-simulation",
        abstract: "Fill the configured ledger with years of simulated history (for the ledger-scale benchmark).")
    @Option(help: "The configuration file (default: as `uploader` finds it).") var config: String?
    @Option(help: "Cameras.") var devices = 200
    @Option(help: "Camera files.") var files = 1_000_000
    @Option(help: "Custody events per file.") var eventsPerFile = 10

    func validate() throws {
        guard devices > 0, files >= 0, eventsPerFile >= 7 else { throw ValidationError("--devices ≥ 1, --files ≥ 0, --events-per-file ≥ 7") }
    }

    func run() throws {
        let configuration = try ConfigurationLoader.load(path: Configuration.resolvePath(explicit: config, environment: ProcessInfo.processInfo.environment))
        Ledger.actor.withLock { $0 = ProcessIdentity.actorName(environment: ProcessInfo.processInfo.environment) }
        try AgentUser.become(ownerOf: configuration.stateDirectory)
        let ledger = try Ledger(path: configuration.ledgerPath, readOnly: false)
        let started = Date()
        try ledger.simulateHistory(devices: devices, files: files, eventsPerFile: eventsPerFile) { done in
            if done % 100_000 == 0 || done == files {
                FileHandle.standardError.write(Data("\(done) files, \(Int(Date().timeIntervalSince(started))) s\n".utf8))
            }
        }
    }
}
