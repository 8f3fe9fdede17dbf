import Foundation

/// Runs blocking work (file copies, curl transfers, libudev calls) on a
/// thread of its own and hands the result to async code, so the cooperative
/// thread pool never blocks.
public enum BlockingThread {
    public static func run<T: Sendable>(name: String, _ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: body())
            }
            thread.name = name
            thread.start()
        }
    }
}

/// Guards invariant 7: code that blocks (SQLite, curl, file copies, libudev)
/// calls `assertNotInTask` first. Inside a Swift task it would block a thread
/// of the cooperative pool. The check is on for a whole process when
/// `UPLOADER_CHECK_BLOCKING=1` (every command a test runs), or for a task and
/// the tasks it starts (`$enabledForTask`: the daemon run inside a test's own
/// process); a violation stops the process.
public enum BlockingCallCheck {
    static let enabledForProcess = ProcessInfo.processInfo.environment["UPLOADER_CHECK_BLOCKING"] == "1"

    /// On below `$enabledForTask.withValue(true)`: a test's own body is a task too, and
    /// stands for a caller on a thread of its own, so the check cannot be on for all of it.
    @TaskLocal public static var enabledForTask = false

    /// Whether a blocking call made here, inside a task, would stop the process.
    public static var isEnabled: Bool { enabledForProcess || enabledForTask }

    public static func assertNotInTask(_ what: @autoclosure () -> String) {
        guard isEnabled else { return }
        if withUnsafeCurrentTask(body: { $0 != nil }) {
            fatalError("blocking call (\(what())) made inside a Swift task: it must run on a thread of its own (BlockingThread.run)")
        }
    }
}
