import Foundation
import Synchronization
import Testing
import TestSupport
@testable import Fleet
@testable import Ledger
@testable import UploaderCore
#if canImport(Glibc)
import Glibc
#endif

extension UploaderProcess.Running {
    /// Waits until the process stopped itself (a `stop` fail point): no clock, the kernel tells.
    func waitUntilStopped() -> Bool {
        var status: Int32 = 0
        while waitpid(pid, &status, WUNTRACED) == -1 && errno == EINTR {}
        return status & 0xff == 0x7f
    }
}

/// Two admins, two real processes: one is stopped by the `fleet.before-put`
/// fail point after it checked its change and before it writes, while the
/// other writes. And the answers to a commit's PUT that never arrive.
@Suite(.tags(.store, .subprocess), .serialized) struct FleetRaceTests {
    /// Dock 2's admin books bob 10:00-14:00; between its check and its write,
    /// dock 1's admin (another process) books alice 08:00-12:00. Dock 2's write
    /// meets 412, reads again, and refuses in one line naming dock 1's commit.
    @Test func aConflictingPeriodWrittenInBetweenIsRefusedNamingIt() throws {
        let (_, store, area, docks) = try makeFleet("race", count: 2)
        let (one, two) = (docks[0], docks[1])
        try one.ok(["device", "add", "POOL-1", "--user", "pool"])
        let waiting = try UploaderProcess.start(["device", "assign", "POOL-1", "bob", "--from", "2026-11-24T10:00:00Z", "--to", "2026-11-24T14:00:00Z"],
                                                config: two.site.configPath, environment: ["UPLOADER_FAILPOINTS": "fleet.before-put=stop"])
        #expect(waiting.waitUntilStopped(), "dock 2 stops between its check and its write")
        try one.ok(["device", "assign", "POOL-1", "alice", "--from", "2026-11-24T08:00:00Z", "--to", "2026-11-24T12:00:00Z"])
        waiting.signal(SIGCONT)
        let refused = waiting.finish()
        #expect(refused.status == 2, "\(refused.stdout) \(refused.stderr)")
        #expect(refused.stderr.split(separator: "\n").count == 1
                && refused.stderr.hasPrefix("error: refused: fleet commit 4 by dock-1 (user ") && refused.stderr.contains("period.assign POOL-1 user alice")
                && refused.stderr.contains("overlaps"), "\(refused.stderr)")
        #expect(try storedCommits(store, area).keys.sorted() == Array(1...4), "nothing written for the refused change")
        #expect(try two.ledger().custody(serial: "POOL-1").map(\.user) == ["alice"])
    }

    /// The store takes a commit but its answer is cut short: the retry meets
    /// its own commit (412, the same bytes) and that is success. When every
    /// answer of that command is lost it gives up, and the admin's second
    /// command finds this dock's own commit holding exactly that change and
    /// reports it as done, instead of "already registered" or an overlap with
    /// its own booking.
    @Test(arguments: [false, true])
    func aCommitWhoseAnswerWasLostIsCountedOnceAsDone(everyAnswerLost: Bool) throws {
        let (_, store, area, docks) = try makeFleet("lost-\(everyAnswerLost)", count: 1)
        let dock = docks[0]
        try dock.ok(["device", "add", "POOL-1", "--user", "pool"])
        // The first answer to each commit's PUT is lost (or every one).
        let tried = Mutex(Set<String>())
        let proxy = try FaultProxy(upstream: store.endpoint, chooseFault: { request in
            guard request.method == "PUT", request.requestLine.contains("_fleet/registry/") else { return .pass }
            let first = tried.withLock { $0.insert(request.requestLine).inserted }
            return everyAnswerLost || first ? .truncateResponse : .pass
        })
        defer { proxy.stop() }
        let flaky = try dock.config(endpoint: proxy.endpoint, named: "lossy.toml")
        let commands = [["device", "add", "BWC-LOST", "--user", "officer-1"],
                        ["device", "assign", "POOL-1", "alice", "--from", "2026-11-24T08:00:00Z", "--to", "2026-11-24T12:00:00Z"]]
        for (index, arguments) in commands.enumerated() {
            let first = try dock.run(arguments, config: flaky)
            let number = 3 + index
            if everyAnswerLost {
                #expect(first.status != 0 && first.stderr.contains("the store cannot be reached"), "\(first.stderr)")
                let second = try dock.run(arguments)
                #expect(second.status == 0 && second.stdout.contains("already in the registry: this dock wrote it as fleet commit \(number) by dock-1"),
                        "\(second.stdout) \(second.stderr)")
            } else {
                #expect(first.status == 0 && first.stdout.contains("fleet commit \(number)"), "\(first.stdout) \(first.stderr)")
            }
        }
        let puts = proxy.requests.filter { $0.method == "PUT" && $0.requestLine.contains("_fleet/registry/") }
        #expect(puts.count >= 4 && (proxy.counts[.truncateResponse] ?? 0) >= 2, "answers were lost: \(proxy.counts) \(puts.map(\.requestLine))")
        let commits = try storedCommits(store, area)
        #expect(commits.keys.sorted() == Array(1...4), "each change once: \(commits.keys.sorted())")
        #expect(try dock.ledger().device(serial: "BWC-LOST")?.defaultUser == "officer-1")
        #expect(try dock.ledger().custody(serial: "POOL-1").map(\.user) == ["alice"])
        // A change that is not this dock's own, or no longer holds, is refused as before.
        let again = try dock.run(["device", "assign", "POOL-1", "bob", "--from", "2026-11-24T09:00:00Z", "--to", "2026-11-24T10:00:00Z"])
        #expect(again.status == 2 && again.stderr.contains("overlaps"), "\(again.stderr)")
    }
}
