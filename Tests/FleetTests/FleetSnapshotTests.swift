import Foundation
import Testing
import TestSupport
@testable import Agent
@testable import Crypto
@testable import Fleet
@testable import Ledger
@testable import Transport
@testable import UploaderCore

/// A dock's registry in this process, with a snapshot every `interval` commits (5 here, 1,000 in the product).
private func registry(_ dock: FleetDock, _ ledger: Ledger, interval: Int64 = 5, writes: Bool = true) throws -> FleetRegistry {
    var registry = try FleetLink.connect(configuration: try dock.site.configuration(), ledger: ledger)
    registry.snapshotInterval = interval
    if !writes { registry.snapshotWriter = nil }
    return registry
}

/// The registry a ledger holds at its head, entry by entry, in snapshot order.
private func entries(_ ledger: Ledger) throws -> [FleetSnapshotEntry] {
    let head = try #require(try ledger.fleetState()).appliedNumber
    var found: [FleetSnapshotEntry] = []
    #expect(try ledger.forEachFleetSnapshotEntry(atCommit: head) { found.append($0) })
    return found
}

/// A snapshot's header and entries, read back as a dock reads them (checked).
private func parse(_ bytes: [UInt8], number: Int64) throws -> (FleetSnapshot.Header, [FleetSnapshotEntry]) {
    let file = try #require(tmpfile())
    defer { fclose(file) }
    _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    rewind(file)
    let lines = LineReader(file: file)
    let header = try FleetSnapshot.readHeader(number: number, lines: lines)
    var found: [FleetSnapshotEntry] = []
    _ = try FleetSnapshot.readEntries(header: header, lines: lines) { found.append($0) }
    return (header, found)
}

/// A snapshot's bytes for `entries`, signed by `key` (what a forger with that key writes).
private func snapshotBytes(_ header: FleetSnapshot.Header, _ entries: [FleetSnapshotEntry], key: Ed25519PrivateKey) throws -> [UInt8] {
    let writer = try FleetSnapshot.Writer(header: header)
    entries.forEach(writer.add)
    _ = try writer.finish(key: key)
    return writer.bytes ?? []
}

/// A fleet of two docks whose registry went to commit 12 through every kind
/// of change, written at dock 1 in this process with a snapshot every 5
/// commits: dock 1 wrote snapshots 5 and 10, dock 2 replayed every commit.
private struct HonestFleet {
    let folder: TemporaryDirectory
    let store: TestStore
    let area: StoreArea
    let one: FleetDock, two: FleetDock
    let ledgerOne: Ledger, ledgerTwo: Ledger

    init(_ label: String) throws {
        let docks: [FleetDock]
        (folder, store, area, docks) = try makeFleet(label, count: 2)
        (one, two) = (docks[0], docks[1])
        ledgerOne = try one.ledger()
        ledgerTwo = try two.ledger()
        let writer = try registry(one, ledgerOne)
        let author = try FleetLink.author(configuration: try one.site.configuration())
        let changes: [RegistryChange] = [
            RegistryChange(kind: .deviceAdd, serial: "CAM-1", user: "officer-1", name: "Cam one"),
            RegistryChange(kind: .deviceAdd, serial: "CAM-2", user: "pool"),
            RegistryChange(kind: .periodAssign, serial: "CAM-2", user: "alice", from: "2026-11-01T08:00:00.000Z", until: "2026-11-01T16:00:00.000Z"),
            RegistryChange(kind: .periodAssign, serial: "CAM-2", user: "bob", from: "2026-11-02T08:00:00.000Z"),
            RegistryChange(kind: .deviceRename, serial: "CAM-1", name: "Front desk"),
            RegistryChange(kind: .deviceAdd, serial: "CAM-3", user: "officer-3"),
            RegistryChange(kind: .deviceRemove, serial: "CAM-3"),
            // A hand-over: ends bob's open period at carol's start.
            RegistryChange(kind: .periodAssign, serial: "CAM-2", user: "carol", from: "2026-11-03T08:30:00.250Z"),
            RegistryChange(kind: .periodWithdraw, serial: "CAM-2", period: 5),
            RegistryChange(kind: .deviceModel, serial: "CAM-1", model: "X2"),
        ]
        for (index, change) in changes.enumerated() {
            let written = try writer.commit(change, by: author)
            guard written.record.number == Int64(index + 3), written.record.status == .applied else {
                throw TestFailure.message("commit \(index + 3): \(written.record)")
            }
        }
        try registry(two, ledgerTwo).sync()
    }

    var client: S3Client { store.client(bucket: area.bucket) }

    func snapshot(_ number: Int64) throws -> [UInt8] {
        try #require(try client.getSmall(key: FleetSnapshot.key(prefix: area.prefix, number: number)))
    }

    /// Puts `bytes` where snapshot `number` is, as someone with the store's credentials can on a bucket without Object Lock.
    func replaceSnapshot(_ number: Int64, with bytes: [UInt8]) throws {
        let key = FleetSnapshot.key(prefix: area.prefix, number: number)
        _ = try client.deleteObject(key: key)
        #expect(try client.putOnce(key: key, bytes: bytes, contentType: "application/json") == .created)
    }

    /// A new dock that asks to join now, in this process: its first sync.
    func newDock(_ name: String) throws -> (FleetDock, Ledger, FleetRegistry.SyncReport) {
        let dock = try FleetDock(folder, name, store: store, area: area)
        let ledger = try dock.ledger()
        let report = try registry(dock, ledger).requestJoin(by: try FleetLink.author(configuration: try dock.site.configuration()))
        return (dock, ledger, report)
    }
}

@Suite(.tags(.store, .subprocess), .serialized) struct FleetSnapshotTests {
    /// A new dock starts from the newest snapshot and replays the commits
    /// after it; it ends with the registry of a dock that replayed every
    /// commit (members, devices, removed ones, periods with their commits, a
    /// hand-over's end), its held files are released, and `fleet log` says
    /// where its history begins. The replaying dock checked both snapshots.
    @Test func aDockStartingFromASnapshotEndsWithTheRegistryOfOneThatReplayed() throws {
        let fleet = try HonestFleet("snapshot")
        #expect(try fleet.ledgerOne.fleetSnapshot(number: 5)?.status == .written && (try fleet.ledgerOne.fleetSnapshot(number: 10)?.status == .written))
        let checked = [try fleet.ledgerTwo.fleetSnapshot(number: 5), try fleet.ledgerTwo.fleetSnapshot(number: 10)]
        #expect(checked.map { $0?.status } == [.matched, .matched], "the replaying dock checked both: \(checked)")

        let three = try FleetDock(fleet.folder, "dock-3", store: fleet.store, area: fleet.area)
        try three.ingest("CAM-1", fleet.folder, name: "BEFORE")
        #expect(try three.files("CAM-1").first?["state"] as? String == "quarantined")
        let ledger = try three.ledger()
        let report = try registry(three, ledger).requestJoin(by: try FleetLink.author(configuration: try three.site.configuration()))
        #expect(report.startedFrom == 10 && report.head == 12 && report.commits.map(\.record.number) == [11, 12], "\(report.snapshotNotes)")

        let replayed = try entries(fleet.ledgerTwo)
        #expect(replayed.count == 7, "2 members, 3 devices, 2 periods (alice's was withdrawn): \(replayed)")
        #expect(try entries(ledger) == replayed, "the same registry as the dock that replayed every commit")
        #expect(try entries(fleet.ledgerOne) == replayed)
        #expect(try ledger.custody(serial: "CAM-2").map { "\($0.user) \(Timestamps.iso($0.from)) \($0.until.map(Timestamps.iso) ?? "open")" }
                == (try fleet.ledgerTwo.custody(serial: "CAM-2").map { "\($0.user) \(Timestamps.iso($0.from)) \($0.until.map(Timestamps.iso) ?? "open")" }))

        let files = try three.files("CAM-1")
        #expect(files.first?["state"] as? String == "spooled" && files.first?["user"] as? String == "officer-1", "released by the snapshot: \(files)")
        let log = try three.ok(["fleet", "log"]).split(separator: "\n")
        #expect(log.first?.contains("started from the fleet's snapshot at commit 10, written by dock-1") == true
                && log.first?.contains("commits 1 to 10 are not listed here") == true, "\(log)")
        #expect(log.dropFirst().map { $0.prefix { $0 != " " } } == ["11", "12"], "\(log)")
    }

    /// A dock with a registry of its own joins a fleet whose history starts,
    /// for it, at a snapshot: its own camera goes in as a commit, it ends with
    /// the registry of a dock that replayed every commit, and it keeps where
    /// its history starts (`fleet log` says so after the join as before it).
    @Test func aDockWithARegistryOfItsOwnJoinsFromASnapshot() throws {
        let fleet = try HonestFleet("snapshot-join")
        let three = try FleetDock(fleet.folder, "dock-3", store: fleet.store, area: fleet.area)
        try three.ok(["device", "add", "CAM-9", "--user", "officer-9"])
        let asked = try three.askToJoin()
        #expect(asked.output.contains("commit 12"), "\(asked.output)")
        try fleet.one.ok(["fleet", "admit", asked.fingerprint])
        let joined = try three.ok(["fleet", "join"])
        #expect(joined.contains("CAM-9"), "the dock's own camera is brought in: \(joined)")

        try registry(fleet.two, fleet.ledgerTwo).sync()
        let ledger = try three.ledger()
        #expect(try entries(ledger) == (try entries(fleet.ledgerTwo)), "the same registry as the dock that replayed every commit")
        #expect(try entries(ledger).contains { "\($0)".contains("CAM-9") })
        #expect(try ledger.fleetSnapshot(number: 10)?.status == .started, "the join keeps where this dock's history starts")
        let log = try three.ok(["fleet", "log"]).split(separator: "\n")
        #expect(log.first?.contains("started from the fleet's snapshot at commit 10") == true, "\(log)")
        #expect(log.dropFirst().map { $0.prefix { $0 != " " } } == ["11", "12", "13", "14"], "\(log)")
    }

    /// Snapshots that do not hold are refused by a new dock, which falls back
    /// to the one before and replays from there: entries changed after
    /// signing, a signature that does not hold, a key that is not the member
    /// that wrote the commit (a non-member's, naming itself a member), a hash
    /// that is not commit N's (signed by the member), a snapshot cut short.
    /// Each is recorded, logged and alerted.
    @Test func forgedSnapshotsAreRefusedAndTheNewDockFallsBack() throws {
        let fleet = try HonestFleet("forged-snapshot")
        let honest = try fleet.snapshot(10)
        let text = String(decoding: honest, as: UTF8.self)
        let (header, honestEntries) = try parse(honest, number: 10)
        let memberKey = try DockKey.loadOrCreate(try fleet.one.site.configuration())
        let mallory = try Ed25519PrivateKey()
        let changedDevice = honestEntries.map { entry -> FleetSnapshotEntry in
            guard case let .device(serial, _, name, model, removed) = entry, serial == "CAM-1" else { return entry }
            return .device(serial: serial, user: "mallory", name: name, model: model, removed: removed)
        }
        var malloryHeader = FleetSnapshot.Header(number: 10, commit: header.commit, dock: "dock-1", user: "admin", signer: mallory.publicKey.hex)
        malloryHeader.at = header.at
        let commitNine = try #require(try fleet.ledgerTwo.fleetCommit(number: 9)?.hash)
        var wrongCommit = header
        wrongCommit.commit = commitNine
        let forgeries: [(String, [UInt8], String)] = [
            ("changed after signing", Array(text.replacingOccurrences(of: #""user":"officer-1""#, with: #""user":"mallory""#).utf8),
             "its entries are not the ones it was signed with"),
            ("signed by another key", try snapshotBytes(header, changedDevice, key: mallory), "its signature does not hold"),
            ("a non-member naming itself a member", try snapshotBytes(malloryHeader, [.member(publicKey: mallory.publicKey.hex, dock: "mallory", admittedIn: 2)] + changedDevice, key: mallory),
             "not by the member that wrote commit 10"),
            ("another commit's hash", try snapshotBytes(wrongCommit, changedDevice, key: memberKey), "as commit 10's hash"),
            ("cut short", Array(text.split(separator: "\n").dropLast().joined(separator: "\n").utf8) + [10], "it ends before its end line"),
        ]
        #expect(text.contains(#""user":"officer-1""#))
        let replayed = try entries(fleet.ledgerTwo)
        for (index, (what, bytes, problem)) in forgeries.enumerated() {
            try fleet.replaceSnapshot(10, with: bytes)
            let (_, ledger, report) = try fleet.newDock("new-\(index)")
            #expect(report.startedFrom == 5 && report.head == 12, "\(what): \(report.snapshotNotes)")
            #expect(try entries(ledger) == replayed, "\(what): the registry is the honest one")
            let verdict = try ledger.fleetSnapshot(number: 10)
            #expect(verdict?.status == .bad && verdict?.problem?.contains(problem) == true, "\(what): \(String(describing: verdict))")
            #expect(try ledger.fleetSnapshotAlertConditions().map(\.key) == ["fleet-snapshot-10"], "\(what)")
            #expect(try ledger.events(EventFilter(minimumLevel: .error)).contains { $0.message.contains("fleet snapshot 10") && $0.message.contains(problem) }, "\(what)")
        }
    }

    /// A member's key can sign a snapshot that is not the registry (here:
    /// a camera given to another officer). Every dock that replayed the
    /// commits holds its own digest at that commit and catches it: recorded,
    /// in the custody log, alerted.
    @Test func aMemberSignedSnapshotWithAChangedDeviceIsCaughtByAReplayingDock() throws {
        let (_, store, area, docks) = try makeFleet("member-forged", count: 2)
        let (one, two) = (docks[0], docks[1])
        let ledgerOne = try one.ledger()
        // Dock 1 writes no snapshot itself: the forger (with dock 1's key) writes snapshot 5.
        let writer = try registry(one, ledgerOne, writes: false)
        let author = try FleetLink.author(configuration: try one.site.configuration())
        for change in [RegistryChange(kind: .deviceAdd, serial: "CAM-1", user: "officer-1"), RegistryChange(kind: .deviceAdd, serial: "CAM-2", user: "officer-2"),
                       RegistryChange(kind: .periodAssign, serial: "CAM-2", user: "alice", from: "2026-11-01T08:00:00.000Z")] {
            _ = try writer.commit(change, by: author)
        }
        let state = try #require(try ledgerOne.fleetState())
        #expect(state.appliedNumber == 5)
        var forged: [FleetSnapshotEntry] = []
        _ = try ledgerOne.forEachFleetSnapshotEntry(atCommit: 5) { entry in
            if case let .device(serial, _, name, model, removed) = entry, serial == "CAM-1" {
                forged.append(.device(serial: serial, user: "mallory", name: name, model: model, removed: removed))
            } else {
                forged.append(entry)
            }
        }
        let bytes = try snapshotBytes(FleetSnapshot.Header(number: 5, commit: state.appliedHash, dock: "dock-1", user: "admin", signer: author.key.publicKey.hex),
                                      forged, key: author.key)
        #expect(try store.client(bucket: area.bucket).putOnce(key: FleetSnapshot.key(prefix: area.prefix, number: 5), bytes: bytes,
                                                               contentType: "application/json") == .created)

        let ledgerTwo = try two.ledger()
        let report = try registry(two, ledgerTwo).sync()
        #expect(report.head == 5)
        let verdict = try ledgerTwo.fleetSnapshot(number: 5)
        #expect(verdict?.status == .mismatch && verdict?.problem?.contains("is not the one this dock holds at commit 5") == true, "\(String(describing: verdict))")
        #expect(try ledgerTwo.fleetSnapshotAlertConditions().map(\.key) == ["fleet-snapshot-5"])
        let events = try two.ok(["log", "--level", "error"])
        #expect(events.contains("fleet snapshot 5 (written by dock-1) refused"), "\(events)")
        #expect(try ledgerTwo.device(serial: "CAM-1")?.defaultUser == "officer-1", "the checking dock's registry is its own")
    }
}
