import Foundation
import Ledger
import Logging
import Platform
import ServiceLifecycle
import Synchronization
import Transport
import UploaderCore

/// The daemon's housekeeping, always on: every interval (and at once after
/// an upload run) it purges the spool, sends the alerts due, rewrites the
/// metrics file and signs a custody checkpoint. It needs no credentials, so
/// it goes on when they cannot be loaded, and says so: that is an alert
/// too (`credentials-unusable`), through the same channels as the others.
public struct HousekeepingService: Service {
    let configuration: Configuration
    let ledger: Ledger
    let logger: Logger
    let interval: Duration
    let trigger: HousekeepingTrigger
    /// Blocking work of the daemon's after each round (redocking cameras to clear).
    let extra: @Sendable () -> Void
    private let credentials = CredentialsWatch()

    public init(configuration: Configuration, ledger: Ledger, logger: Logger, interval: Duration = .seconds(60),
                trigger: HousekeepingTrigger = HousekeepingTrigger(), extra: @escaping @Sendable () -> Void = {}) {
        self.configuration = configuration
        self.ledger = ledger
        self.logger = logger
        self.interval = interval
        self.trigger = trigger
        self.extra = extra
    }

    public func run() async throws {
        // Files, SQLite, the alert command and the store: on threads of their own.
        await PeriodicLoop.run(name: "uploader.housekeeping", every: interval, trigger: trigger) { [self] in round() }
    }

    /// One round. Blocking.
    func round() {
        var conditions: [Alert] = []
        if let problem = credentials.check(configuration: configuration, ledger: ledger, logger: logger) {
            conditions.append(Alert(key: "credentials-unusable",
                                    message: "the store's credentials cannot be loaded, so nothing is uploaded (the daemon reads them again before each run): \(problem)"))
        }
        Housekeeping.run(configuration: configuration, ledger: ledger, logger: logger, conditions: conditions)
        extra()
    }
}

/// Loads the store's credentials each round and tells the custody log (and
/// the journal) when they become unusable and when they work again.
final class CredentialsWatch: Sendable {
    private let lastProblem = Mutex<String?>(nil)

    /// The problem with the credentials now (nil: they load). Blocking.
    func check(configuration: Configuration, ledger: Ledger, logger: Logger) -> String? {
        var problem: String?
        do {
            _ = try Credentials.load(configuration.store.credentials)
        } catch let error as UploaderError {
            problem = error.message
        } catch {
            problem = "\(error)"
        }
        let previous = lastProblem.withLock { last in
            defer { last = problem }
            return last
        }
        if let problem, problem != previous {
            _ = try? ledger.log(EventDraft(.warning, .daemonNoUploads, "the credentials cannot be loaded: the daemon docks cameras but does not upload until they can: \(problem)"))
            logger.error("the credentials cannot be loaded, nothing is uploaded: \(problem)")
        } else if problem == nil, previous != nil {
            logger.notice("the credentials load again: uploads resume at the next run")
        }
        return problem
    }
}

/// A daemon service that does one blocking piece of work every `interval`
/// (the fleet's sync every 30 s, the dock's status every minute).
public struct PeriodicService: Service {
    let name: String
    let interval: Duration
    let work: @Sendable () -> Void

    public init(name: String, every interval: Duration, _ work: @escaping @Sendable () -> Void) {
        self.name = name
        self.interval = interval
        self.work = work
    }

    public func run() async throws {
        await PeriodicLoop.run(name: name, every: interval, trigger: HousekeepingTrigger(), work)
    }
}

/// A daemon service's loop: blocking work on a thread of its own, then a wait
/// of `interval` (cut short by `trigger`), until the service is told to stop.
enum PeriodicLoop {
    static func run(name: String, every interval: Duration, trigger: HousekeepingTrigger,
                    _ work: @escaping @Sendable () -> Void) async {
        let stop = StopFlag()
        let wake: @Sendable () -> Void = {
            stop.request()
            trigger.request()
        }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                while !stop.isRequested {
                    await BlockingThread.run(name: name, work)
                    if stop.isRequested { break }
                    await BlockingThread.run(name: name + "-wait") { trigger.wait(for: interval) }
                }
            } onGracefulShutdown: { wake() }
        } onCancel: { wake() }
    }
}

/// Wakes a periodic service before its interval is over (after an upload run, or to stop).
public final class HousekeepingTrigger: Sendable {
    private let signal = DispatchSemaphore(value: 0)

    public init() {}

    public func request() { signal.signal() }

    /// Blocks until requested or `duration` passed; requests made meanwhile count as one.
    func wait(for duration: Duration) {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        _ = signal.wait(timeout: .now() + seconds)
        while signal.wait(timeout: .now()) == .success {}
    }
}
