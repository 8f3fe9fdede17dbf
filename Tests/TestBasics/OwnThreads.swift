import Dispatch

/// Runs `body`, and every task it starts, on a thread of its own instead of
/// Swift's cooperative pool. The pool has one thread per core (two on a CI
/// machine), and other tests run for minutes with a blocking body on them
/// (a whole upload run, a subprocess): a daemon under test must not wait for
/// them, or a test that gives it 30 seconds fails only when the run is busy.
public func withOwnThreads<T: Sendable>(_ body: () async throws -> T) async rethrows -> T {
    try await withTaskExecutorPreference(OwnThreadExecutor()) { try await body() }
}

/// A serial queue on libdispatch's overcommitting threads: never starved by
/// the cooperative pool. The code under test sends blocking work to threads
/// of its own (invariant 7), so one thread for its tasks is enough.
final class OwnThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let queue = DispatchQueue(label: "test.own-threads")

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }
}
