import Dock
import Foundation
import Ledger
import Logging
import Platform
import ServiceLifecycle
import Transport
import UnixSignals
import UploaderCore

/// The long-running agent as one `Service`: it composes the dock monitor,
/// housekeeping, the upload scheduler and the systemd notifier, and runs
/// them as its own `ServiceGroup` (the Hummingbird `Application` way), so a
/// test can start the whole daemon in-process, give it the services it
/// wants, and stop it by cancelling.
public struct AgentDaemon: Service {
    public let configuration: Configuration
    public let models: CameraModels
    public let ledger: Ledger
    public let dockDispatch: DockDispatch
    public let logger: Logger
    let shutdownSignals: [UnixSignal]
    let notifier: SystemdNotifier
    /// How often housekeeping runs and the upload scheduler looks for due files.
    let checkInterval: Duration
    let makeServices: ServiceFactory
    /// Asked for housekeeping at once (after an upload run) rather than at the next interval.
    let housekeepingDue = HousekeepingTrigger()

    /// Builds the services the daemon runs (blocking work allowed: it runs on a thread of its own).
    public typealias ServiceFactory = @Sendable (AgentDaemon) -> [any Service]

    /// `dockDispatch`: systemd dock units for the real daemon, in-process docks
    /// for a test. `shutdownSignals`: what stops it gracefully (SIGTERM and
    /// SIGINT for the real daemon; none for a test, which cancels instead).
    /// `services`: the daemon's own (`standardServices`) unless a test gives others.
    public init(configuration: Configuration, models: CameraModels, ledger: Ledger, dockDispatch: DockDispatch = .systemdUnits,
                logger: Logger, shutdownSignals: [UnixSignal] = [.sigterm, .sigint], notifier: SystemdNotifier = SystemdNotifier(),
                checkInterval: Duration = .seconds(60), services: @escaping ServiceFactory = { $0.standardServices() }) {
        self.configuration = configuration
        self.models = models
        self.ledger = ledger
        self.dockDispatch = dockDispatch
        self.logger = logger
        self.shutdownSignals = shutdownSignals
        self.notifier = notifier
        self.checkInterval = checkInterval
        self.makeServices = services
    }

    public func run() async throws {
        let services = await BlockingThread.run(name: "uploader.daemon-start") { [self] in makeServices(self) }
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) }, gracefulShutdownSignals: shutdownSignals, logger: logger))
        await log(EventDraft(.notice, .daemonStarted, "uploader daemon started on \(configuration.hostName) (models: \(models.models.map(\.id).joined(separator: ", ")))"))
        do {
            try await group.run()
        } catch {
            await log(EventDraft(.error, .daemonStopped, "uploader daemon stopped: \(error)"))
            throw error
        }
        await log(EventDraft(.notice, .daemonStopped, "uploader daemon stopped"))
    }

    /// The ledger is SQLite: written from a thread of its own, never the cooperative pool.
    private func log(_ draft: EventDraft) async {
        await BlockingThread.run(name: "uploader.daemon-log") { [ledger] in _ = try? ledger.log(draft) }
    }

    /// Docking, housekeeping, uploads and the systemd notifier. None of them
    /// needs the store's credentials to start: uploads read them at each run.
    public func standardServices() -> [any Service] {
        [dockMonitorService(), housekeepingService(), uploadService(), systemdNotifyService(),
         fleetSyncService(), fleetStatusService()]
    }

    /// The fleet registry's sync every 30 s, so a camera registered at another dock is known here soon.
    public func fleetSyncService() -> PeriodicService {
        PeriodicService(name: "uploader.fleet-sync", every: .seconds(30)) { [configuration, ledger, logger] in
            FleetLink.syncQuietly(configuration: configuration, ledger: ledger, logger: logger)
        }
    }

    /// This dock's status written to the store every minute, and the fleet's
    /// watched (so an unattended fleet raises a silent dock).
    public func fleetStatusService() -> PeriodicService {
        PeriodicService(name: "uploader.fleet-status", every: .seconds(60)) { [configuration, ledger, logger] in
            FleetStatusPublisher.publishQuietly(configuration: configuration, ledger: ledger, logger: logger)
            FleetStatusPublisher.watchQuietly(configuration: configuration, ledger: ledger, logger: logger)
        }
    }

    public func dockMonitorService() -> DockMonitorService {
        DockMonitorService(models: models, dispatch: dockDispatch, ledger: ledger, logger: logger)
    }

    /// Purge, alerts (a credentials file that cannot be used among them),
    /// metrics, checkpoints, and redocking cameras whose files the store verified.
    public func housekeepingService() -> HousekeepingService {
        // One for the service's life: it remembers when it last looked for files verified since.
        let redock = RedockForClearing()
        return HousekeepingService(configuration: configuration, ledger: ledger, logger: logger, interval: checkInterval, trigger: housekeepingDue) {
            [configuration, ledger, logger, models, dockDispatch] in
            // Files verified while their camera is still docked: dock it again to clear them.
            guard case .systemdUnits = dockDispatch else { return }
            for (device, serial, files) in redock.camerasToRedock({ try UdevContext().connectedVolumes() }, models: models,
                                                                  configuration: configuration, ledger: ledger) {
                _ = try? ledger.log(EventDraft(.notice, .daemonDockUnit, serial: serial,
                                               "camera \(serial) is still docked on \(device.devnode) and the store verified its files: docking it again to clear \(files) of them ([camera] clear = after-verified)"))
                SystemdDockUnits.start(device, ledger: ledger, logger: logger)
            }
        }
    }

    /// Uploads inside the windows, with credentials read afresh for each run:
    /// a fixed credentials file needs no restart.
    public func uploadService() -> UploadSchedulerService {
        UploadSchedulerService(configuration: configuration, ledger: ledger, logger: logger, checkInterval: checkInterval,
                               afterRun: { [housekeepingDue] in housekeepingDue.request() }) { [configuration, ledger] in
            UploadRunner(configuration: configuration, credentials: try Credentials.load(configuration.store.credentials), ledger: ledger,
                         logger: Logger(label: "uploader.upload"))
        }
    }

    public func systemdNotifyService() -> SystemdNotifyService {
        SystemdNotifyService(notifier: notifier) { [ledger] in
            guard let summary = try? ledger.summary() else { return "running" }
            return "\(summary.states.of(.verified).count) verified, \(summary.states.waiting.count) waiting, \(summary.states.of(.quarantined).count) held"
        }
    }
}

/// After every upload run (CLI, timer or daemon): purge, alerts, metrics,
/// and a signed custody checkpoint (written to the store with any pending).
/// Each step logs its own failure and never stops the others. Blocking.
/// `conditions`: alerts the caller found (the daemon's unusable credentials).
public enum Housekeeping {
    public static func run(configuration: Configuration, ledger: Ledger, logger: Logger, conditions: [Alert] = []) {
        FleetLink.syncQuietly(configuration: configuration, ledger: ledger, logger: logger)
        do { try SpoolPurger(configuration: configuration, ledger: ledger).purge() } catch { logger.error("spool purge failed: \(error)") }
        do { try AlertDispatcher(configuration: configuration, ledger: ledger, logger: logger).run(adding: conditions) } catch { logger.error("alert check failed: \(error)") }
        do { try MetricsFile.write(configuration: configuration, ledger: ledger) } catch { logger.error("metrics file: \(error)") }
        CustodyCheckpoints.signAndPublish(configuration: configuration, ledger: ledger, logger: logger)
        FleetStatusPublisher.publishQuietly(configuration: configuration, ledger: ledger, logger: logger)
    }
}
