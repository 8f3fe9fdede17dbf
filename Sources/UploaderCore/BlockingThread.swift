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
