import Foundation
import Testing
import TestSupport
@testable import Fleet
@testable import Ledger
@testable import UploaderCore

/// `device rename`, `device model` and `device end`: at a dock on its own
/// they change its ledger (checked, with custody events); at a dock in a
/// fleet they are commits every dock applies.
@Suite(.tags(.store, .subprocess), .serialized) struct DeviceChangeTests {
    @Test func renameModelAndEndChangeADocksOwnRegistry() throws {
        let folder = TemporaryDirectory("device-change-local")
        let store = try TestStore.fromEnvironment()
        let dock = try FleetDock.outside(folder, "dock-1", store: store, area: try store.makeArea("device-change-local"))
        try dock.ok(["device", "add", "POOL-1", "--user", "pool"])
        try dock.ok(["device", "assign", "POOL-1", "alice", "--from", "2026-11-24T08:00:00Z"])
        try dock.ingest("POOL-1", folder, name: "NINE", recordedAt: "2026-11-24T09:00:00Z")
        try dock.ingest("POOL-1", folder, name: "THIRTEEN", recordedAt: "2026-11-24T13:00:00Z")
        #expect(try dock.owners("POOL-1") == ["NINE.MP4": "alice", "THIRTEEN.MP4": "alice"])

        let ended = try dock.ok(["device", "end", "POOL-1", "--at", "2026-11-24T12:00:00Z"])
        #expect(ended.contains("ended custody period #1 of alice") && ended.contains("1 not-yet-uploaded file re-attributed"), "\(ended)")
        #expect(try dock.owners("POOL-1") == ["NINE.MP4": "alice", "THIRTEEN.MP4": "pool"], "the recording after the end goes back to the default user")
        try dock.ok(["device", "rename", "POOL-1", "Desk 3"])
        try dock.ok(["device", "model", "POOL-1", "BC-4"])
        let device = try #require(try dock.ledger().device(serial: "POOL-1"))
        #expect(device.name == "Desk 3" && device.model == "BC-4")
        let log = try dock.ok(["log", "--device", "POOL-1"])
        #expect(log.contains("custody period #1 of alice (from 2026-11-24T08:00:00.000Z) ended at 2026-11-24T12:00:00.000Z")
                && log.contains("device POOL-1 renamed from no name to Desk 3") && log.contains("model changed from none to BC-4"), "\(log)")

        // Bad input: one line each, nothing changed.
        let again = try dock.run(["device", "end", "POOL-1", "--at", "2026-11-24T13:00:00Z"])
        #expect(again.status == 1 && again.stderr == "error: device POOL-1 has no open custody period: see `uploader device show POOL-1`\n", "\(again.stderr)")
        try dock.ok(["device", "assign", "POOL-1", "bob", "--from", "2026-11-24T14:00:00Z"])
        let early = try dock.run(["device", "end", "POOL-1", "--at", "2026-11-24T13:00:00Z"])
        #expect(early.status == 2 && early.stderr.split(separator: "\n").count == 1 && early.stderr.contains("starts after"), "\(early.stderr)")
        #expect(try dock.ledger().custody(serial: "POOL-1").map { $0.until == nil } == [false, true])
        let unknown = try dock.run(["device", "rename", "NOPE-1", "Desk 4"])
        #expect(unknown.status == 1 && unknown.stderr.contains("no registered device has serial NOPE-1"), "\(unknown.stderr)")
        let hostile = try dock.run(["device", "model", "POOL-1", "BC-4\u{1b}[2J"])
        #expect(hostile.status == 2 && hostile.stderr.split(separator: "\n").count == 1, "\(hostile.stderr)")
        #expect(try dock.ledger().device(serial: "POOL-1")?.model == "BC-4")
    }

    @Test func renameModelAndEndWriteThroughTheFleet() throws {
        let (folder, store, area, docks) = try makeFleet("device-change", count: 2)
        let (one, two) = (docks[0], docks[1])
        try one.ok(["device", "add", "POOL-1", "--user", "pool"])
        let assigned = try one.ok(["device", "assign", "POOL-1", "alice", "--from", "2026-11-24T08:00:00Z"])
        try two.ingest("POOL-1", folder, name: "THIRTEEN", recordedAt: "2026-11-24T13:00:00Z")
        #expect(try two.owners("POOL-1") == ["THIRTEEN.MP4": "alice"])

        let ended = try one.ok(["device", "end", "POOL-1", "--at", "2026-11-24T12:00:00Z"])
        #expect(ended.contains("fleet commit 5"), "\(ended)")
        try one.ok(["device", "rename", "POOL-1", "Desk 3"])
        try one.ok(["device", "model", "POOL-1", "BC-4"])
        let commits = try storedCommits(store, area)
        #expect(commits[5]?.change == RegistryChange(kind: .periodEnd, serial: "POOL-1", until: "2026-11-24T12:00:00.000Z", period: 4), "after \(assigned)")
        #expect(commits[6]?.change.kind == .deviceRename && commits[7]?.change.kind == .deviceModel)

        try two.ok(["fleet", "sync"])
        #expect(try two.owners("POOL-1") == ["THIRTEEN.MP4": "pool"], "dock 2 follows the period's end")
        let device = try #require(try two.ledger().device(serial: "POOL-1"))
        #expect(device.name == "Desk 3" && device.model == "BC-4")
        #expect(try two.ledger().custody(serial: "POOL-1").map { $0.until.map(Timestamps.iso) } == ["2026-11-24T12:00:00.000Z"])
        let log = try two.ok(["log", "--device", "POOL-1"])
        #expect(log.contains("ended at 2026-11-24T12:00:00.000Z") && log.contains("renamed from no name to Desk 3 (fleet commit 6 by dock-1"), "\(log)")

        // Ending a period that is not open is refused in one line, and writes nothing.
        let again = try one.run(["device", "end", "POOL-1", "--at", "2026-11-24T13:00:00Z"])
        #expect(again.status == 1 && again.stderr.split(separator: "\n").count == 1 && again.stderr.contains("no open custody period"), "\(again.stderr)")
        #expect(try storedCommits(store, area).count == 7)
    }
}
