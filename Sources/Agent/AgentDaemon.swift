import Dock
import Foundation
import Ledger
import Logging
import Platform
import ServiceLifecycle
import Transport
import UnixSignals
import UploaderCore

/// The long-running agent as one `Service`: it composes the dock monitor, the
/// upload scheduler (with housekeeping) and the systemd notifier, and runs
/// them as its own `ServiceGroup` (the Hummingbird `Application` way), so a
/// test can start the whole daemon in-process and stop it by cancelling.
public struct AgentDaemon: Service {
    let configuration: Configuration
    let models: CameraModels
    let ledger: Ledger
    let dockDispatch: DockDispatch
    let logger: Logger
    let shutdownSignals: [UnixSignal]
    let notifier: SystemdNotifier

    /// `dockDispatch`: systemd dock units for the real daemon, in-process docks
    /// for a test. `shutdownSignals`: what stops it gracefully (SIGTERM and
    /// SIGINT for the real daemon; none for a test, which cancels instead).
    public init(configuration: Configuration, models: CameraModels, ledger: Ledger, dockDispatch: DockDispatch = .systemdUnits,
                logger: Logger, shutdownSignals: [UnixSignal] = [.sigterm, .sigint], notifier: SystemdNotifier = SystemdNotifier()) {
        self.configuration = configuration
        self.models = models
        self.ledger = ledger
        self.dockDispatch = dockDispatch
        self.logger = logger
        self.shutdownSignals = shutdownSignals
        self.notifier = notifier
    }

    public func run() async throws {
        let services = await BlockingThread.run(name: "uploader.daemon-start") { [self] in makeServices() }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: shutdownSignals, logger: logger))
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

    /// Blocking (credentials file, ledger): called on a thread of its own.
    func makeServices() -> [ServiceGroupConfiguration.ServiceConfiguration] {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: DockMonitorService(models: models, dispatch: dockDispatch, ledger: ledger, logger: logger)),
        ]
        // Uploads run from the daemon too, inside the windows; without credentials it only docks.
        if let credentials = try? Credentials.load(configuration.store.credentials) {
            let uploads = UploadRunner(configuration: configuration, credentials: credentials, ledger: ledger, logger: Logger(label: "uploader.upload"))
            let redock = RedockForClearing()
            services.append(.init(service: UploadSchedulerService(runner: uploads, configuration: configuration, ledger: ledger, logger: logger) {
                [configuration, ledger, logger, models, dockDispatch] in
                Housekeeping.run(configuration: configuration, ledger: ledger, logger: logger)
                // Files verified while their camera is still docked: dock it again to clear them.
                guard case .systemdUnits = dockDispatch else { return }
                for (device, serial, files) in redock.camerasToRedock({ try UdevContext().connectedVolumes() }, models: models,
                                                                      configuration: configuration, ledger: ledger) {
                    _ = try? ledger.log(EventDraft(.notice, .daemonDockUnit, serial: serial,
                                                   "camera \(serial) is still docked on \(device.devnode) and the store verified its files: docking it again to clear \(files) of them ([camera] clear = after-verified)"))
                    SystemdDockUnits.start(device, ledger: ledger, logger: logger)
                }
            }))
        } else {
            _ = try? ledger.log(EventDraft(.warning, .daemonNoUploads, "the credentials cannot be loaded: the daemon docks cameras but does not upload; run `uploader config check`"))
        }
        services.append(.init(service: SystemdNotifyService(notifier: notifier) { [ledger] in
            guard let summary = try? ledger.summary() else { return "running" }
            return "\(summary.states.of(.verified).count) verified, \(summary.states.waiting.count) waiting, \(summary.states.of(.quarantined).count) held"
        }))
        return services
    }
}

/// After every upload run (CLI, timer or daemon): purge, alerts, metrics,
/// and a signed custody checkpoint (written to the store with any pending).
/// Each step logs its own failure and never stops the others. Blocking.
public enum Housekeeping {
    public static func run(configuration: Configuration, ledger: Ledger, logger: Logger) {
        do { try SpoolPurger(configuration: configuration, ledger: ledger).purge() } catch { logger.error("spool purge failed: \(error)") }
        do { try AlertDispatcher(configuration: configuration, ledger: ledger, logger: logger).run() } catch { logger.error("alert check failed: \(error)") }
        do { try MetricsFile.write(configuration: configuration, ledger: ledger) } catch { logger.error("metrics file: \(error)") }
        CustodyCheckpoints.signAndPublish(configuration: configuration, ledger: ledger, logger: logger)
    }
}
