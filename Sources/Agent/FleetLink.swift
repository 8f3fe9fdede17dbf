import Crypto
import Fleet
import Foundation
import Ledger
import Logging
import Platform
import Transport
import UploaderCore

/// This dock's link to the fleet registry in the store: who writes, with
/// which client, and the syncs the agent runs (before attributing a dock's
/// files, after each upload run, every 30 s in the daemon). Blocking.
public enum FleetLink {
    /// A sync before docking waits at most this long for the store: docking never waits on the network.
    public static let dockingBudget: TimeInterval = 3

    /// The registry through the store, for a dock in a fleet (nil: not in one).
    /// `quick`: short timeouts (docking). Throws when the credentials cannot be loaded.
    public static func registry(configuration: Configuration, ledger: Ledger, quick: Bool = false) throws -> FleetRegistry? {
        guard try ledger.fleetState() != nil else { return nil }
        return try connect(configuration: configuration, ledger: ledger, quick: quick)
    }

    public static func connect(configuration: Configuration, ledger: Ledger, quick: Bool = false) throws -> FleetRegistry {
        let credentials = try Credentials.load(configuration.store.credentials)
        let client = quick
            ? S3Client(target: .init(endpoint: configuration.store.endpoint, bucket: configuration.store.bucket, addressing: configuration.store.addressing),
                       region: configuration.store.region, credentials: credentials, connectTimeout: 2, stallTimeout: 2,
                       caBundle: configuration.store.caBundle, serverSideEncryption: configuration.store.serverSideEncryption)
            : S3Client(configuration: configuration, credentials: credentials)
        var registry = FleetRegistry(ledger: ledger, client: client, prefix: configuration.store.prefix)
        // A dock without its key yet (or unreadable) still reads and checks snapshots; it writes none.
        registry.snapshotWriter = (try? author(configuration: configuration))
            .map { FleetSnapshotWriter(author: $0, retentionDays: configuration.custody.checkpointRetentionDays) }
        return registry
    }

    /// This dock (its name and key) and the operating-system user who runs the command.
    public static func author(configuration: Configuration) throws -> FleetRegistry.Author {
        FleetRegistry.Author(dock: configuration.hostName, user: Ledger.actor.withLock { $0 } ?? ProcessInfo.processInfo.userName,
                             key: try DockKey.loadOrCreate(configuration))
    }

    /// Commits are kept like the custody checkpoints where the bucket has Object Lock.
    public static func lockedUntil(configuration: Configuration, registry: FleetRegistry) throws -> Date? {
        try registry.retrying { try registry.client.objectLockEnabled() } ? Date().addingTimeInterval(Double(configuration.custody.checkpointRetentionDays) * 86400) : nil
    }

    /// Writes one change through the fleet; a store out of reach is one line (the dock keeps docking from its cache).
    public static func write(_ change: RegistryChange, configuration: Configuration, ledger: Ledger) throws -> (record: FleetCommitRecord, outcome: String) {
        let registry = try connect(configuration: configuration, ledger: ledger)
        do {
            return try registry.commit(change, by: try author(configuration: configuration),
                                       lockedUntil: try lockedUntil(configuration: configuration, registry: registry))
        } catch let error as UploaderError where error.code.isStoreProblem {
            let at = (try? ledger.fleetState()).flatMap { $0 }.map { " (commit \($0.appliedNumber))" } ?? ""
            throw UploaderError(error.code, "the registry is not changed: this dock is in a fleet, whose registry lives in the evidence store, and the store cannot be reached (\(error.message)); try again when it answers; docking goes on from the registry this dock holds\(at)",
                                underlying: error.underlying)
        }
    }

    /// Syncs if this dock is in a fleet; a failure is logged, never thrown
    /// (an offline dock works from its cache). `quick`: before docking.
    public static func syncQuietly(configuration: Configuration, ledger: Ledger, logger: Logger, quick: Bool = false) {
        do {
            guard let registry = try registry(configuration: configuration, ledger: ledger, quick: quick) else { return }
            let report = try registry.sync(deadline: quick ? Date().addingTimeInterval(dockingBudget) : nil)
            for (record, _) in report.commits where record.status != .applied {
                logger.error("\(record.origin) ignored: \(record.problem ?? "?")")
            }
            if let blocked = report.blocked { logger.error("fleet registry: \(blocked)") }
            for note in report.snapshotNotes { logger.notice("fleet registry: \(note)") }
        } catch {
            logger.warning("fleet registry not synced (working from this dock's copy): \((error as? UploaderError)?.message ?? "\(error)")")
        }
    }
}

extension UploaderError.Code {
    /// The store did not answer, or answered with a refusal of this request (not of the change).
    var isStoreProblem: Bool {
        switch self {
        case .storeUnavailable, .storeAuth, .storeMissingBucket, .storeTLS, .storeRejected, .credentials: true
        default: false
        }
    }
}
