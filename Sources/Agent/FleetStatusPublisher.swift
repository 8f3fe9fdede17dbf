import Crypto
import Fleet
import Foundation
import Ledger
import Logging
import Platform
import Transport
import UploaderCore

/// This dock's status in the store (`{prefix}/_fleet/docks/{dock}.json` and
/// its companion list of waiting recordings), written every minute by the
/// daemon and after each dock and upload run; and the fleet's watch on its
/// docks: a silent dock, a bad status or a clock that is off is alerted once
/// per fleet by the dock that claims the alert first. Blocking.
public enum FleetStatusPublisher {
    public struct Published: Sendable {
        public var status: DockStatus
        public var waiting: DockWaiting
    }

    /// Writes this dock's status and waiting list now. Refuses (one line) when
    /// the object there is signed by another key that holds: another PC uses this dock's name.
    @discardableResult
    public static func publish(configuration: Configuration, ledger: Ledger, client: S3Client, key: Ed25519PrivateKey,
                               now: Date = Date(), retries: RetryPolicy = FleetStore.retries) throws -> Published {
        let dock = configuration.hostName
        let figures = try ledger.dockFigures(now: now)
        var recordings: [WaitingRecording] = []
        let truncated = try ledger.forEachWaitingRecording(limit: DockWaiting.limit) { recordings.append($0) }
        let space = try? Syscall.filesystemSpace(configuration.spoolDirectory)
        let status = try DockStatus(dock: dock, host: ProcessInfo.processInfo.hostName, at: now, figures: figures,
                                    spoolFreeBytes: space?.available, waitingListed: recordings.count, key: key)
        let waiting = try DockWaiting(dock: dock, at: now, recordings: recordings, truncated: truncated, key: key)
        let prefix = configuration.store.prefix
        try writeOwn(client: client, key: FleetKeys.dockStatus(prefix: prefix, dock: dock), bytes: try status.encoded(), me: key.publicKey.hex, dock: dock, retries: retries) {
            (try? DockStatus.decode($0)).map { ($0.signer, $0.signatureHolds) }
        }
        try writeOwn(client: client, key: FleetKeys.dockWaiting(prefix: prefix, dock: dock), bytes: try waiting.encoded(), me: key.publicKey.hex, dock: dock, retries: retries) {
            (try? DockWaiting.decode($0)).map { ($0.signer, $0.signatureHolds) }
        }
        return Published(status: status, waiting: waiting)
    }

    /// Overwrites this dock's own object: only over one this dock signed (or
    /// none, or one whose signature does not hold), and only if it is still the
    /// object read (`If-Match` its ETag): a second PC writing under the same
    /// dock name is found at once, never silently overwritten.
    static func writeOwn(client: S3Client, key: String, bytes: [UInt8], me: String, dock: String, retries: RetryPolicy,
                         signer: ([UInt8]) -> (signer: String, holds: Bool)?) throws {
        for _ in 0..<5 {
            let there = try FleetStore.retrying(policy: retries) { try client.getSmallTagged(key: key) }
            if let there, let found = signer(there.bytes), found.holds, found.signer != me {
                let theirs = RegistryChange.fingerprint(publicKeyHex: found.signer).map(Ed25519PublicKey.grouped) ?? "?"
                let mine = RegistryChange.fingerprint(publicKeyHex: me).map(Ed25519PublicKey.grouped) ?? "?"
                throw UploaderError(.insecure, "dock name \(DisplayText.escaped(dock)) is used by two PCs: \(key) is signed by key \(String(theirs.prefix(19))), not this PC's \(String(mine.prefix(19))); give each PC its own [agent] host_name (this PC writes no status until then)")
            }
            let condition: S3Client.ReplaceCondition = there.map { .matches($0.etag ?? "*") } ?? .absent
            if try FleetStore.retrying(policy: retries, { try client.replaceSmall(key: key, bytes: bytes, contentType: "application/json", condition: condition) }) != nil {
                return
            }
            // Someone wrote it between the read and the write: read it again and judge again.
        }
        throw UploaderError(.busy, "\(key) changed five times while this dock wrote its status: another PC may use the dock name \(DisplayText.escaped(dock))")
    }

    /// Publishes if this dock is in a fleet; a failure is logged, never thrown.
    /// Another PC with this dock's name is also a custody event and an alert.
    /// `quick`: short timeouts (after a dock run: docking never waits on the network).
    public static func publishQuietly(configuration: Configuration, ledger: Ledger, logger: Logger, quick: Bool = false) {
        do {
            guard let registry = try FleetLink.registry(configuration: configuration, ledger: ledger, quick: quick) else { return }
            try publish(configuration: configuration, ledger: ledger, client: registry.client, key: try DockKey.loadOrCreate(configuration),
                        retries: quick ? FleetStore.once : FleetStore.retries)
        } catch let error as UploaderError where error.code == .insecure {
            logger.error("fleet status not written: \(error.message)")
            let alert = Alert(key: "fleet-dock-name-reused-\(configuration.hostName)", message: error.message)
            if (try? ledger.lastAlert(key: alert.key)) == nil {
                _ = try? ledger.log(EventDraft(.error, .fleetRejected, error.message))
            }
            _ = try? AlertDispatcher(configuration: configuration, ledger: ledger, logger: logger).run(adding: [alert])
        } catch {
            logger.warning("fleet status not written: \((error as? UploaderError)?.message ?? "\(error)")")
        }
    }

    /// The fleet's watch, at a dock: reads every dock's status (members from
    /// this dock's registry), claims each alert the fleet must raise, and sends
    /// those this dock won through its own alert path. Returns the report.
    @discardableResult
    public static func watch(configuration: Configuration, ledger: Ledger, client: S3Client, logger: Logger = Logger(label: "uploader.fleet"),
                             now: Date? = nil) throws -> FleetStatusReport {
        // Members admitted since the last sync are members here too.
        _ = try? FleetRegistry(ledger: ledger, client: client, prefix: configuration.store.prefix).sync()
        let reader = DockStatusReader(client: client, prefix: configuration.store.prefix, members: try FleetMembers.fromLedger(ledger),
                                      silentAfter: configuration.fleet.silentAfter)
        let report = try reader.read(now: now)
        var won: [Alert] = []
        for (alert, claimKey) in reader.alerts(report) {
            // Claimed before: another dock (or this one) raised it already.
            if (try? ledger.lastAlert(key: alert.key)) != nil { continue }
            do {
                if try reader.claimAlert(alert, claimKey: claimKey, by: configuration.hostName) { won.append(alert) }
            } catch {
                logger.warning("cannot claim the fleet alert \(alert.key): \((error as? UploaderError)?.message ?? "\(error)")")
            }
        }
        if !won.isEmpty {
            for alert in won { try ledger.log(EventDraft(.warning, .fleetRejected, "fleet: \(alert.message)")) }
            try AlertDispatcher(configuration: configuration, ledger: ledger, logger: logger).run(adding: won)
        }
        return report
    }

    /// `watch`, logged instead of thrown (the daemon).
    public static func watchQuietly(configuration: Configuration, ledger: Ledger, logger: Logger) {
        do {
            guard let registry = try FleetLink.registry(configuration: configuration, ledger: ledger) else { return }
            try watch(configuration: configuration, ledger: ledger, client: registry.client, logger: logger)
        } catch {
            logger.warning("fleet status not read: \((error as? UploaderError)?.message ?? "\(error)")")
        }
    }
}
