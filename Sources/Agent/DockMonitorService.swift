import Dock
import Foundation
import Ledger
import Logging
import ServiceLifecycle
import UploaderCore
import Platform

/// How the daemon has a docked camera ingested.
public enum DockDispatch: Sendable {
    /// Production: systemd starts `uploader-dock@<device>.service`, which
    /// mounts the volume as root, docks it as the `uploader` user and
    /// unmounts it. The daemon (unprivileged) may start those units through
    /// the polkit rule the package installs. Starting a unit that runs
    /// already (udev started it) joins that run.
    case systemdUnits
    /// The dock runs inside the daemon on a thread of its own: for tests,
    /// which stand folders in for volumes.
    case inProcess(DockRunner, onOutcome: @Sendable (DockOutcome) -> Void)
}

/// The daemon's docking service: a udev monitor (with coldplug, so cameras
/// docked before the daemon started are not missed) that has every supported
/// camera docked. On graceful shutdown it stops listening; in-process docks
/// end the file they are on (an interrupted copy is discarded and resumed later).
public struct DockMonitorService: Service {
    let models: CameraModels
    let dispatch: DockDispatch
    let ledger: Ledger
    let logger: Logger

    public init(models: CameraModels, dispatch: DockDispatch, ledger: Ledger, logger: Logger) {
        self.models = models
        self.dispatch = dispatch
        self.ledger = ledger
        self.logger = logger
    }

    public func run() async throws {
        let (devices, continuation) = AsyncStream<DockedDevice>.makeStream()
        let monitor = UdevMonitorThread(coldplug: true) { [models] event in
            // Only supported cameras: a USB stick is none of the daemon's business.
            guard event.action == .add, let device = event.device, device.fileSystem != nil,
                  models.model(for: device.id) != nil else { return }
            continuation.yield(device)
        }
        try await monitor.started()
        logger.notice("listening for docked cameras")
        let stop = StopFlag()
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                for await device in devices {
                    group.addTask { [dispatch, ledger, logger] in
                        switch dispatch {
                        case .systemdUnits:
                            await BlockingThread.run(name: "uploader.dock-unit") { SystemdDockUnits.start(device, ledger: ledger, logger: logger) }
                        case .inProcess(let runner, let onOutcome):
                            let outcome = await BlockingThread.run(name: "uploader.dock.\(device.sysname)") { runner.dock(device, stop: stop) }
                            logger.notice("dock \(device.devnode): \(outcome.result.rawValue): \(outcome.message)")
                            onOutcome(outcome)
                        }
                    }
                }
                await group.waitForAll()
            }
        } onGracefulShutdown: {
            monitor.stop()
            continuation.finish()
            // Running in-process docks end their current chunk, discard it and record "interrupted".
            stop.request()
        }
    }
}

/// Starts a camera's dock unit with `systemctl start --no-block`: over D-Bus,
/// which polkit authorises for the `uploader` user (the package's
/// /usr/share/polkit-1/rules.d/uploader.rules) and root anyway.
enum SystemdDockUnits {
    /// Blocking (waits for systemctl): on a thread of its own.
    static func start(_ device: DockedDevice, ledger: Ledger, logger: Logger) {
        let unit = SystemdUnitName.dock(sysname: device.sysname)
        do {
            // systemctl talks to systemd over D-Bus; it needs nothing of the agent's environment but where to look.
            let outcome = try Syscall.runChild("/bin/systemctl", arguments: ["start", "--no-block", "--no-ask-password", unit],
                                               environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"])
            let text = outcome.errorOutput.trimmingCharacters(in: .whitespacesAndNewlines)
            if outcome.status == 0 {
                _ = try? ledger.log(EventDraft(.info, .daemonDockUnit, "\(device.devnode) (\(device.id)): started \(unit)"))
                return
            }
            let message = "could not start \(unit) for the camera on \(device.devnode): \(text.isEmpty ? "systemctl exited \(outcome.status)" : text); check that polkitd is installed and /usr/share/polkit-1/rules.d/uploader.rules lets the uploader user start it, or run `systemctl start \(unit)` as root"
            _ = try? ledger.log(EventDraft(.error, .daemonDockUnit, message))
            logger.error("\(message)")
        } catch {
            let message = "could not run systemctl to start \(unit) for \(device.devnode): \(error); run `systemctl start \(unit)` as root"
            _ = try? ledger.log(EventDraft(.error, .daemonDockUnit, message))
            logger.error("\(message)")
        }
    }
}
