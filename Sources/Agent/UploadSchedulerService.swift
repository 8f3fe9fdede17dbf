import Foundation
import Transport
import Ledger
import Logging
import ServiceLifecycle
import UploaderCore
import Platform

/// The daemon's upload service: whenever an upload window is open and files
/// are due, one upload run (on threads of its own) with credentials read
/// afresh (a fixed credentials file needs no restart); otherwise it sleeps
/// until the next window or the check interval, whichever comes first. On
/// graceful shutdown the run in progress stops between parts (a part in
/// flight is dropped) and every finished part stays recorded.
public struct UploadSchedulerService: Service {
    let configuration: Configuration
    let ledger: Ledger
    let logger: Logger
    let checkInterval: Duration
    /// A runner for one run: loads the credentials (blocking), or throws why it cannot.
    let makeRunner: @Sendable () throws -> UploadRunner
    /// After each run (the daemon has housekeeping run at once).
    let afterRun: @Sendable () -> Void

    public init(configuration: Configuration, ledger: Ledger, logger: Logger, checkInterval: Duration = .seconds(60),
                afterRun: @escaping @Sendable () -> Void = {}, makeRunner: @escaping @Sendable () throws -> UploadRunner) {
        self.configuration = configuration
        self.ledger = ledger
        self.logger = logger
        self.checkInterval = checkInterval
        self.afterRun = afterRun
        self.makeRunner = makeRunner
    }

    public func run() async throws {
        let stop = StopFlag()
        try await withGracefulShutdownHandler {
            while !stop.isRequested {
                let now = Date()
                // The ledger is SQLite: even this look-up stays off the cooperative pool.
                let due = await BlockingThread.run(name: "uploader.queue-check") { [ledger] in
                    (try? ledger.hasUploadDue(now: now)) ?? false
                }
                if configuration.schedule.isOpen(at: now), due {
                    let credentialsBefore = await credentialsStamp()
                    let outcome = await BlockingThread.run(name: "uploader.upload-run") { [makeRunner] in
                        // Housekeeping reports credentials that cannot be loaded (an alert): no second word here.
                        Result { () throws -> UploadReport? in
                            guard let runner = try? makeRunner() else { return nil }
                            return try runner.run(now: now, stop: stop)
                        }
                    }
                    switch outcome {
                    case .success(nil):
                        try await sleep(checkInterval, unless: stop)
                    case .success(let report?):
                        logger.notice("upload run: \(report.verified) verified, \(report.failed) failed\(report.paused ? ", paused" : "")")
                        afterRun()
                        // Credentials or bucket refused: retrying every minute only fills the log,
                        // but an admin who fixes the credentials file is answered at the next check.
                        if report.stoppedBecause != nil { try await pauseAfterRefusal(credentials: credentialsBefore, unless: stop) }
                    case .failure(let error):
                        logger.error("upload run failed: \(error)")
                        afterRun()
                        try await sleep(checkInterval, unless: stop)
                    }
                    continue
                }
                var wait = checkInterval
                if let opening = configuration.schedule.nextOpening(after: now), opening > now {
                    wait = min(wait, .seconds(max(1, opening.timeIntervalSince(now))))
                }
                try await sleep(wait, unless: stop)
            }
        } onGracefulShutdown: {
            stop.request()
        }
    }

    /// How long a run the store refused (credentials, bucket, TLS) waits before the next try.
    static let pauseAfterRefusal: Duration = .seconds(900)

    /// Waits out `pauseAfterRefusal`, looking at every check interval whether
    /// the credentials file changed since the refused run read it: a fixed
    /// file is tried at once, not a quarter of an hour later.
    private func pauseAfterRefusal(credentials before: String?, unless stop: StopFlag) async throws {
        let clock = ContinuousClock()
        let end = clock.now + Self.pauseAfterRefusal
        while !stop.isRequested, clock.now < end {
            try await sleep(min(checkInterval, end - clock.now), unless: stop)
            if await credentialsStamp() != before { return }
        }
    }

    /// The credentials file's size, modification time and inode (nil: environment
    /// credentials, or no file). A stat: on a thread of its own, off the cooperative pool.
    private func credentialsStamp() async -> String? {
        guard case .file(let path) = configuration.store.credentials else { return nil }
        return await BlockingThread.run(name: "uploader.credentials-stamp") {
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
            let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            return "\(attributes[.size] ?? 0) \(modified) \(attributes[.systemFileNumber] ?? 0)"
        }
    }

    /// Sleeps, ending early (without error) when shutdown starts.
    private func sleep(_ duration: Duration, unless stop: StopFlag) async throws {
        do {
            try await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
        } catch is CancellationError {
            stop.request()
        }
    }
}

/// Tells systemd the daemon is ready, pings its watchdog while the process
/// is healthy, and says STOPPING on shutdown.
public struct SystemdNotifyService: Service {
    let notifier: SystemdNotifier
    let status: @Sendable () -> String

    public init(notifier: SystemdNotifier, status: @escaping @Sendable () -> String) {
        self.notifier = notifier
        self.status = status
    }

    /// The status line reads the ledger (SQLite): on a thread of its own.
    private func currentStatus() async -> String {
        await BlockingThread.run(name: "uploader.notify-status", status)
    }

    public func run() async throws {
        notifier.notify("READY=1\nSTATUS=\(await currentStatus())")
        let interval = notifier.watchdogInterval ?? .seconds(30)
        do {
            try await cancelWhenGracefulShutdown {
                while true {
                    try await Task.sleep(for: interval)
                    let line = await currentStatus()
                    notifier.notify((notifier.watchdogInterval != nil ? "WATCHDOG=1\n" : "") + "STATUS=\(line)")
                }
            }
        } catch is CancellationError {}
        notifier.notify("STOPPING=1")
    }
}
