import Foundation
import Testing
import TestSupport
@testable import Agent
@testable import Crypto
@testable import Fleet
@testable import Ledger
@testable import Transport
@testable import UploaderCore

/// A fleet whose docks send their alerts' keys to one file.
func makeAlertingFleet(_ label: String, count: Int) throws -> (TemporaryDirectory, TestStore, StoreArea, [FleetDock], alerts: () -> String) {
    let alerts = TemporaryDirectory("fleet-alerts-\(label)")
    let (folder, store, area, docks) = try makeFleet(label, count: count,
                                                    extra: "\n[monitoring]\nalert_command = \"echo \\\"$UPLOADER_ALERT_KEY\\\" >> '\(alerts.sub("keys"))'\"\n")
    return (folder, store, area, docks, { _ = alerts; return (try? String(contentsOfFile: alerts.sub("keys"), encoding: .utf8)) ?? "" })
}

/// The registry's bad input, each put in the store for real and met by
/// real docks: one clear line, a custody event, an alert where an admin
/// must act, and never an attribution the registry's members did not make.
@Suite(.tags(.store, .subprocess), .serialized) struct FleetBadInputTests {
    /// Half a commit (a write cut short, or junk someone put there) at the next number.
    @Test func aCommitThatDoesNotParseIsIgnoredAndAlerted() throws {
        let (folder, store, area, docks, alerts) = try makeAlertingFleet("unparsable", count: 2)
        let (one, two) = (docks[0], docks[1])
        try one.ok(["device", "add", "BWC-1", "--user", "officer-1"])
        let head = try #require(try one.ledger().fleetState())
        let whole = try FleetCommit(number: 4, parent: head.appliedHash, dock: "dock-1", user: "admin",
                                    change: RegistryChange(kind: .periodAssign, serial: "BWC-1", user: "mallory", from: "2020-01-01T00:00:00.000Z"),
                                    key: try DockKey.loadOrCreate(try one.site.configuration())).encoded()
        #expect(try store.client(bucket: area.bucket).putOnce(key: FleetKeys.commit(prefix: area.prefix, number: 4), bytes: Array(whole.prefix(60)),
                                                              contentType: "application/json") == .created)

        let synced = try two.ok(["fleet", "sync"])
        let line = synced.split(separator: "\n").first { $0.hasPrefix("4  ") }.map(String.init) ?? ""
        #expect(line == "4  ?  ?  ?  60 bytes that are not a fleet commit  BAD, ignored: it does not parse as a fleet commit", "\(synced)")
        try two.ok(["housekeeping"])
        #expect(alerts().contains("fleet-commit-4"), "alerts: \(alerts())")
        let events = try two.ok(["log", "--level", "error"])
        #expect(events.contains("fleet commit 4 by ? (user ?, ?) ignored: it does not parse as a fleet commit"), "\(events)")
        try two.ingest("BWC-1", folder, name: "AFTER", recordedAt: "2026-11-24T09:00:00Z")
        #expect(try two.owners("BWC-1") == ["AFTER.MP4": "officer-1"], "attribution unchanged")

        // The members' next commit follows the last one that held.
        let next = try one.ok(["device", "assign", "BWC-1", "officer-2", "--from", "2026-01-01T00:00:00Z"])
        #expect(next.contains("fleet commit 5"), "\(next)")
        try two.ok(["fleet", "sync"])
        #expect(try two.owners("BWC-1") == ["AFTER.MP4": "officer-2"])
    }

    /// Commit 4 disappears from the store (an insider with the store's
    /// credentials, where the bucket has no Object Lock) while commit 5 is
    /// there: a dock that has not read 4 stops at 3, says so in one line,
    /// logs and alerts it, applies nothing past the gap and refuses changes;
    /// when an admin puts commit 4 back, the sync goes on and the files follow.
    @Test func aGapInTheCommitNumbersStopsTheSyncUntilTheCommitIsBack() throws {
        let (folder, store, area, docks, alerts) = try makeAlertingFleet("gap", count: 2)
        let (one, two) = (docks[0], docks[1])
        try one.ok(["device", "add", "POOL-1", "--user", "pool"])
        try two.ok(["fleet", "sync"])
        try one.ok(["device", "assign", "POOL-1", "alice", "--from", "2026-11-24T08:00:00Z"])
        try one.ok(["device", "assign", "POOL-1", "bob", "--from", "2026-11-24T12:00:00Z"])
        let client = store.client(bucket: area.bucket)
        let key = FleetKeys.commit(prefix: area.prefix, number: 4)
        let saved = try #require(try client.getSmall(key: key))
        _ = try client.deleteObject(key: key)

        let blocked = try two.run(["fleet", "sync"])
        #expect(blocked.status != 0 && blocked.stderr.split(separator: "\n").count == 1
                && blocked.stderr.contains("commit 4 is missing from the store while commit 5 exists"), "\(blocked.stderr)")
        #expect(try two.ledger().fleetState()?.appliedNumber == 3, "nothing past the gap is applied")
        let refused = try two.run(["device", "add", "BWC-9", "--user", "officer-9"])
        #expect(refused.status != 0 && refused.stderr.split(separator: "\n").count == 1
                && refused.stderr.contains("the fleet registry cannot be changed: commit 4 is missing"), "\(refused.stderr)")
        try two.ingest("POOL-1", folder, name: "THIRTEEN", recordedAt: "2026-11-24T13:00:00Z")
        #expect(try two.owners("POOL-1") == ["THIRTEEN.MP4": "pool"], "attributed by the registry this dock holds, nothing from past the gap")
        try two.ok(["housekeeping"])
        #expect(alerts().contains("fleet-blocked-4"), "alerts: \(alerts())")
        let events = try two.ok(["log", "--level", "error"])
        #expect(events.contains("fleet commit 4: commit 4 is missing from the store"), "\(events)")

        // The admin puts commit 4 back (from a backup or an older version).
        #expect(try client.putOnce(key: key, bytes: saved, contentType: "application/json") == .created)
        try two.ok(["fleet", "sync"])
        #expect(try two.ledger().fleetState()?.appliedNumber == 5)
        #expect(try two.owners("POOL-1") == ["THIRTEEN.MP4": "bob"], "the file not yet uploaded follows the registry")
    }

    /// Dock 2's clock is an hour behind dock 1's: its commit, written after
    /// dock 1's (it names dock 1's as its parent), says it was written an hour
    /// earlier. Docks order commits by number, never by that time: the hand-over
    /// it records and an overlapping period it asks for are judged after dock
    /// 1's period, the same at every dock; the clock is told and alerted.
    @Test func aDockWhoseClockIsAnHourBehindIsJudgedByCommitNumber() throws {
        let (folder, store, area, docks, alerts) = try makeAlertingFleet("clock", count: 3)
        let (one, two, three) = (docks[0], docks[1], docks[2])
        try one.ok(["device", "add", "POOL-1", "--user", "pool"])
        try one.ok(["device", "assign", "POOL-1", "alice", "--from", "2026-11-24T08:00:00Z"])
        // What dock 2 writes with its own key when its clock says an hour less: only a commit's `at` carries a dock's clock.
        let client = store.client(bucket: area.bucket)
        let keyOfTwo = try DockKey.loadOrCreate(try two.site.configuration())
        let behind = Date().addingTimeInterval(-3600)
        var parent = try #require(try storedCommits(store, area)[5]).hash
        for (number, change) in [(Int64(6), RegistryChange(kind: .periodAssign, serial: "POOL-1", user: "bob", from: "2026-11-24T12:00:00.000Z")),
                                 (7, RegistryChange(kind: .periodAssign, serial: "POOL-1", user: "carol", from: "2026-11-24T09:00:00.000Z", until: "2026-11-24T10:00:00.000Z"))] {
            let commit = try FleetCommit(number: number, parent: parent, dock: "dock-2", user: "admin-b", at: behind, change: change, key: keyOfTwo)
            #expect(try client.putOnce(key: FleetKeys.commit(prefix: area.prefix, number: number), bytes: try commit.encoded(), contentType: "application/json") == .created)
            parent = commit.hash
        }

        try three.ingest("POOL-1", folder, name: "NINE", recordedAt: "2026-11-24T09:30:00Z")
        try three.ingest("POOL-1", folder, name: "THIRTEEN", recordedAt: "2026-11-24T13:00:00Z")
        #expect(try three.owners("POOL-1") == ["NINE.MP4": "alice", "THIRTEEN.MP4": "bob"])
        for dock in [one, two] { try dock.ok(["fleet", "sync"]) }
        for dock in docks {
            #expect(try dock.ledger().custody(serial: "POOL-1").map { "\($0.user) \(Timestamps.iso($0.from)) \($0.until.map(Timestamps.iso) ?? "open")" } == [
                "alice 2026-11-24T08:00:00.000Z 2026-11-24T12:00:00.000Z", "bob 2026-11-24T12:00:00.000Z open",
            ], "\(dock.name)")
            let log = try JSONSerialization.jsonObject(with: Data(try dock.ok(["fleet", "log", "--json"]).utf8)) as? [[String: Any]] ?? []
            let status = Dictionary(uniqueKeysWithValues: log.map { ($0["number"] as? Int ?? 0, $0["status"] as? String ?? "") })
            #expect(status[6] == "applied" && status[7] == "refused", "\(dock.name): \(status)")
        }
        let shown = try three.ok(["fleet", "log"]).split(separator: "\n").first { $0.hasPrefix("6  ") }.map(String.init) ?? ""
        #expect(shown.contains("signature ok; clock: it says it was written 60 min before fleet commit 5 by dock-1"), "\(shown)")
        try three.ok(["housekeeping"])
        #expect(alerts().contains("fleet-commit-6"), "alerts: \(alerts())")
        #expect(try three.ok(["log", "--level", "warning"]).contains("fleet commit 6 by dock-2 (user admin-b"))
    }

    /// The store answers 503 SlowDown to every third request while admins at
    /// three docks write and the docks sync: every command succeeds, every
    /// change lands exactly once, and every dock ends at the same registry.
    @Test func aStoreThatAnswers503ToEveryThirdRequestLandsEachCommitOnce() throws {
        let (_, store, area, docks) = try makeFleet("slowdown", count: 3)
        let proxy = try FaultProxy(upstream: store.endpoint, faults: [.slowDown], everyNth: 3)
        defer { proxy.stop() }
        let flaky = try docks.map { try $0.config(endpoint: proxy.endpoint, named: "flaky.toml") }
        let commands: [(Int, [String])] = [
            (0, ["device", "add", "CAM-0", "--user", "officer-0"]),
            (1, ["device", "add", "CAM-1", "--user", "officer-1"]),
            (2, ["fleet", "sync"]),
            (0, ["device", "assign", "CAM-1", "alice", "--from", "2026-11-24T08:00:00Z"]),
            (1, ["device", "assign", "CAM-0", "bob", "--from", "2026-11-24T08:00:00Z"]),
            (2, ["device", "rename", "CAM-0", "Desk 1"]),
            (0, ["fleet", "sync"]),
            (1, ["device", "end", "CAM-1", "--at", "2026-11-24T12:00:00Z"]),
        ]
        for (index, arguments) in commands {
            let result = try docks[index].run(arguments, config: flaky[index])
            #expect(result.status == 0, "\(docks[index].name) \(arguments.joined(separator: " ")): \(result.stderr)")
        }
        #expect((proxy.counts[.slowDown] ?? 0) >= 5, "the store said 503 often: \(proxy.counts)")
        let commits = try storedCommits(store, area)
        #expect(commits.keys.sorted() == Array(1...9), "\(commits.keys.sorted())")
        let changes = commits.values.filter { $0.change.kind != .memberAdmit }.map(\.change.summary)
        #expect(Set(changes).count == 6 && changes.count == 6, "each change once: \(changes)")
        for dock in docks { try dock.ok(["fleet", "sync"]) }
        #expect(try docks[1].registryLines() == docks[0].registryLines() && docks[2].registryLines() == docks[0].registryLines())
        #expect(try docks[2].ledger().fleetCommits().allSatisfy { $0.status == .applied })
    }
}
