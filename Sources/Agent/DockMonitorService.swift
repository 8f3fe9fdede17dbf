import Dock
import Foundation
import Logging
import ServiceLifecycle
import UploaderCore
import Platform

/// The daemon's docking service: a udev monitor (with coldplug) feeding
/// docks, at most `maxConcurrentDocks` at once, each on its own thread.
/// On graceful shutdown it stops listening and lets running docks finish
/// the file they are on (an interrupted copy is discarded and resumed later).
public struct DockMonitorService: Service {
    let runner: DockRunner
    let maxConcurrentDocks: Int
    let logger: Logger
    /// Tells tests (and the journal) what each dock did.
    let onOutcome: @Sendable (DockOutcome) -> Void

    public init(runner: DockRunner, maxConcurrentDocks: Int, logger: Logger, onOutcome: @escaping @Sendable (DockOutcome) -> Void = { _ in }) {
        self.runner = runner
        self.maxConcurrentDocks = maxConcurrentDocks
        self.logger = logger
        self.onOutcome = onOutcome
    }

    public func run() async throws {
        let (devices, continuation) = AsyncStream<DockedDevice>.makeStream()
        let monitor = UdevMonitorThread(coldplug: true) { event in
            guard event.action == .add, let device = event.device, device.fileSystem != nil else { return }
            continuation.yield(device)
        }
        try await monitor.started()
        logger.notice("listening for docked cameras")
        let stop = StopFlag()
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                var running = 0
                for await device in devices {
                    if running >= maxConcurrentDocks {
                        await group.next()
                        running -= 1
                    }
                    running += 1
                    group.addTask { [runner, onOutcome, logger] in
                        let outcome = await BlockingThread.run(name: "uploader.dock.\(device.sysname)") { runner.dock(device, stop: stop) }
                        logger.notice("dock \(device.devnode): \(outcome.result.rawValue): \(outcome.message)")
                        onOutcome(outcome)
                    }
                }
                await group.waitForAll()
            }
        } onGracefulShutdown: {
            monitor.stop()
            continuation.finish()
            // Running docks end their current chunk, discard it, unmount and record "interrupted".
            stop.request()
        }
    }
}
