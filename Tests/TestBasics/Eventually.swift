import Foundation
import Platform
import Testing

/// Waits until `condition` holds, asking it again every `interval` seconds;
/// false if `seconds` pass first. The one poll loop of the tests: the limit
/// only turns an event that never comes into a failure, it times nothing.
public func eventually(within seconds: Double, every interval: Double = 0.02, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while true {
        if try condition() { return true }
        if Date() >= deadline { return false }
        usleep(useconds_t(interval * 1_000_000))
    }
}

/// `eventually` for an async test: the waiting runs on a thread of its own,
/// never on the cooperative pool the code under test needs.
public func eventually(within seconds: Double, every interval: Double = 0.02,
                       _ condition: @escaping @Sendable () throws -> Bool) async -> Bool {
    await BlockingThread.run(name: "test.eventually") { eventually(within: seconds, every: interval) { (try? condition()) ?? false } }
}

/// Runs `body` (a daemon, its services) with invariant 7 checked in this very
/// process: a blocking call inside any task it starts stops the test run.
public func withBlockingCallsChecked<T: Sendable>(_ body: () async throws -> T) async rethrows -> T {
    try await BlockingCallCheck.$enabledForTask.withValue(true) { try await body() }
}

extension Tag {
    /// Needs the S3 store scripts/test starts (SeaweedFS, and moto for the store-facing suites).
    @Tag public static var store: Self
    /// Runs the built `uploader` executable as a child process.
    @Tag public static var subprocess: Self
    /// Takes more than a few seconds (many runs, capped bandwidth, big files).
    @Tag public static var slow: Self
    /// Needs umockdev's emulated USB cameras (scripts/test runs the tests under umockdev-wrapper).
    @Tag public static var emulated: Self
}
