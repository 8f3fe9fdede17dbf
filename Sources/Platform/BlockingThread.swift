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
/// of the cooperative pool. The check is on when `UPLOADER_CHECK_BLOCKING=1`
/// (the daemon tests run the agent so); a violation stops the process.
public enum BlockingCallCheck {
    static let enabled = ProcessInfo.processInfo.environment["UPLOADER_CHECK_BLOCKING"] == "1"

    public static func assertNotInTask(_ what: @autoclosure () -> String) {
        guard enabled else { return }
        if withUnsafeCurrentTask(body: { $0 != nil }) {
            fatalError("blocking call (\(what())) made inside a Swift task: it must run on a thread of its own (BlockingThread.run)")
        }
    }
}
