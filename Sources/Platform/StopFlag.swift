#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A request to stop, checked by long-running loops (the copy loop checks it
/// every chunk). Set by SIGTERM/SIGINT in the CLI, or by the daemon's
/// graceful shutdown.
public final class StopFlag: Sendable {
    private let requested = Atomic<Bool>(false)

    public init() {}

    public func request() { requested.store(true, ordering: .relaxed) }

    public var isRequested: Bool { requested.load(ordering: .relaxed) }
}

public enum TerminationSignals {
    /// Set when SIGTERM or SIGINT arrives after `install()`.
    public static let flag = StopFlag()

    /// systemd stops a dock unit with SIGTERM when its camera is unplugged:
    /// the copy then ends cleanly (no half file, mount released) instead of dying mid-write.
    public static func install() {
        signal(SIGTERM) { _ in TerminationSignals.flag.request() }
        signal(SIGINT) { _ in TerminationSignals.flag.request() }
        // A parent may have started us with these signals blocked (the mask is inherited).
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &signals, nil)
    }
}
