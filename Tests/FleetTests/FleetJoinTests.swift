import Foundation
import Testing
import TestSupport
@testable import Fleet
@testable import Ledger
@testable import UploaderCore

extension FleetDock {
    /// A dock of a fleet's store area that has not created or joined it.
    static func outside(_ folder: TemporaryDirectory, _ name: String, store: TestStore, area: StoreArea) throws -> FleetDock {
        try FleetDock(folder, name, store: store, area: area)
    }

    /// Ingests one recording of `serial` made at `recordedAt` (ISO 8601), from a fresh folder.
    func ingest(_ serial: String, _ folder: TemporaryDirectory, name: String, recordedAt: String) throws {
        let volume = folder.sub("\(self.name)-\(serial)-\(name)")
        try CameraVolume.writeRecording(at: volume + "/\(name).MP4", recordedAt: Timestamps.parse(recordedAt)!, payloadSize: 20_000)
        try ok(["ingest", volume, "--serial", serial])
    }

    /// Who each of the camera's files is attributed to, by file name.
    func owners(_ serial: String) throws -> [String: String] {
        var owners: [String: String] = [:]
        for file in try files(serial) {
            let path = file["sourcePath"] as? String ?? ""
            owners[(path as NSString).lastPathComponent] = file["user"] as? String ?? "-"
        }
        return owners
    }

    /// `fleet join` until the key fingerprint line; admitted by `admin`.
    func askToJoin() throws -> (output: String, fingerprint: String) {
        let asked = try ok(["fleet", "join"])
        guard let fingerprint = asked.split(separator: "\n").first(where: { $0.contains("uploader fleet admit ") })?.split(separator: " ").last else {
            throw TestFailure.message("fleet join printed no fingerprint: \(asked)")
        }
        return (asked, String(fingerprint))
    }

    /// The registry's contents as `device list` and the periods, one line each, for comparing docks.
    func registryLines() throws -> [String] {
        let contents = try ledger().registryContents()
        return contents.activeDevices.map { "\($0.serial) \($0.defaultUser) \($0.name ?? "-") \($0.model ?? "-")" }
            + contents.periods.map { "\($0.serial) \($0.summary) commit \($0.fleetCommit.map(String.init) ?? "local")" }
    }
}

@Suite(.tags(.store, .subprocess), .serialized) struct FleetJoinTests {
    /// The first dock has cameras and a pooled camera's periods of its own:
    /// `fleet init` brings each in as a commit after its own admission, sets
    /// aside a period of a camera it had removed, and a second dock then
    /// attributes by those periods; a period brought in is withdrawn through
    /// the fleet by its local number.
    @Test func theFirstDockBringsItsRegistryIntoTheFleetItCreates() throws {
        let folder = TemporaryDirectory("fleet-join-init")
        let store = try TestStore.fromEnvironment()
        let area = try store.makeArea("fleet-join-init")
        let one = try FleetDock.outside(folder, "dock-1", store: store, area: area)
        try one.ok(["device", "add", "BWC-1", "--user", "officer-1", "--name", "Front desk"])
        try one.ok(["device", "add", "POOL-1", "--user", "pool"])
        try one.ok(["device", "assign", "POOL-1", "alice", "--from", "2026-11-24T08:00:00Z", "--to", "2026-11-24T12:00:00Z"])
        try one.ok(["device", "assign", "POOL-1", "bob", "--from", "2026-11-24T12:00:00Z"])
        try one.ok(["device", "add", "OLD-1", "--user", "officer-9"])
        try one.ok(["device", "assign", "OLD-1", "mallory", "--from", "2026-11-24T08:00:00Z"])
        try one.ok(["device", "remove", "OLD-1"])
        try one.ingest("POOL-1", folder, name: "NINE", recordedAt: "2026-11-24T09:00:00Z")

        let created = try one.ok(["fleet", "init"])
        #expect(created.contains("set aside: custody period") && created.contains("OLD-1"), "\(created)")
        let commits = try storedCommits(store, area)
        #expect(commits.keys.sorted() == Array(1...5), "\(commits.keys.sorted())")
        #expect(commits.values.sorted { $0.number < $1.number }.map(\.change.summary) == [
            commits[1]!.change.summary,
            "device.add BWC-1 user officer-1 name Front desk", "device.add POOL-1 user pool",
            "period.assign POOL-1 user alice from 2026-11-24T08:00:00.000Z until 2026-11-24T12:00:00.000Z",
            "period.assign POOL-1 user bob from 2026-11-24T12:00:00.000Z",
        ], "\(commits.values.sorted { $0.number < $1.number }.map(\.change.summary))")
        #expect(try one.ledger().custody(serial: "OLD-1").isEmpty, "the removed camera's period does not come back with a fleet registration")
        let log = try one.ok(["log", "--device", "POOL-1"])
        #expect(log.contains("brought into the fleet as fleet commit 4 by dock-1"), "\(log)")

        let two = try FleetDock.outside(folder, "dock-2", store: store, area: area)
        let asked = try two.askToJoin()
        try one.ok(["fleet", "admit", asked.fingerprint])
        try two.ingest("POOL-1", folder, name: "ELEVEN", recordedAt: "2026-11-24T11:00:00Z")
        try two.ingest("POOL-1", folder, name: "THIRTEEN", recordedAt: "2026-11-24T13:00:00Z")
        #expect(try two.owners("POOL-1") == ["ELEVEN.MP4": "alice", "THIRTEEN.MP4": "bob"])
        #expect(try two.registryLines() == one.registryLines())

        // The period brought in is the fleet's: withdrawn through it by the number this dock knows it by.
        let alice = try #require(try one.ledger().custody(serial: "POOL-1").first { $0.user == "alice" })
        let withdrawn = try one.ok(["device", "unassign", "POOL-1", String(alice.id)])
        #expect(withdrawn.contains("fleet commit 7"), "\(withdrawn)")
        try two.ok(["fleet", "sync"])
        #expect(try two.ledger().custody(serial: "POOL-1").map(\.user) == ["bob"])
    }

    /// A dock with a history asks to join a fleet that disagrees with it:
    /// the same serial registered to another officer, a camera the fleet
    /// removed, a period that overlaps the fleet's. The join lists each
    /// conflict on a line naming both sides and stops, changing nothing, here
    /// or in the store; once an admin resolved them here, the join brings in
    /// what the fleet lacks and commits nothing twice.
    @Test func joiningWithAHistoryListsEachConflictAndStopsUntilResolved() throws {
        let (folder, store, area, docks) = try makeFleet("join-conflicts", count: 1)
        let one = docks[0]
        try one.ok(["device", "add", "BWC-1", "--user", "officer-1"])
        try one.ok(["device", "add", "SAME-1", "--user", "officer-5", "--model", "BC-4"])
        try one.ok(["device", "add", "GONE-1", "--user", "officer-6"])
        try one.ok(["device", "remove", "GONE-1"])
        try one.ok(["device", "add", "POOL-1", "--user", "pool"])
        try one.ok(["device", "assign", "POOL-1", "alice", "--from", "2026-11-24T08:00:00Z", "--to", "2026-11-24T12:00:00Z"])
        // A camera the fleet registered, booked and removed, which the new dock never had.
        try one.ok(["device", "add", "OLDPOOL-1", "--user", "pool"])
        try one.ok(["device", "assign", "OLDPOOL-1", "erin", "--from", "2026-11-20T08:00:00Z"])
        try one.ok(["device", "remove", "OLDPOOL-1"])
        let fleetHead = try storedCommits(store, area).count

        let two = try FleetDock.outside(folder, "dock-2", store: store, area: area)
        try two.ok(["device", "add", "BWC-1", "--user", "officer-9"])
        try two.ok(["device", "add", "SAME-1", "--user", "officer-5", "--model", "BC-4"])
        try two.ok(["device", "add", "GONE-1", "--user", "officer-6"])
        try two.ok(["device", "add", "NEW-1", "--user", "officer-7"])
        try two.ok(["device", "add", "POOL-1", "--user", "pool"])
        try two.ok(["device", "assign", "POOL-1", "alice", "--from", "2026-11-24T08:00:00Z"])
        try two.ok(["device", "assign", "POOL-1", "carol", "--from", "2026-11-24T10:00:00Z"]) // hands alice's period over at 10:00 here
        try two.ingest("POOL-1", folder, name: "ELEVEN", recordedAt: "2026-11-24T11:00:00Z")
        let before = try two.registryLines()

        // Before admission the join shows what it will meet.
        let asked = try two.askToJoin()
        #expect(asked.output.split(separator: "\n").filter { $0.hasPrefix("CONFLICT ") }.count == 4, "\(asked.output)")
        try one.ok(["fleet", "admit", asked.fingerprint])
        let afterAdmission = try storedCommits(store, area).count

        let stopped = try two.run(["fleet", "join"])
        #expect(stopped.status == 2, "\(stopped.stdout) \(stopped.stderr)")
        let conflicts = stopped.stdout.split(separator: "\n").filter { $0.hasPrefix("CONFLICT ") }.map(String.init)
        #expect(conflicts.count == 4, "\(stopped.stdout)")
        #expect(conflicts.contains { $0.contains("BWC-1: this dock has it registered to officer-9") && $0.contains("fleet commit 2 by dock-1 (user ") && $0.contains("registered to officer-1") },
                "\(conflicts)")
        #expect(conflicts.contains { $0.contains("GONE-1: this dock has it registered to officer-6") && $0.contains("the fleet removed it in fleet commit 5 by dock-1") },
                "\(conflicts)")
        // Here alice's period ends at 10:00 (not 12:00 as in the fleet) and carol's overlaps the fleet's alice.
        #expect(conflicts.contains { $0.contains("POOL-1: this dock's custody period #1 (alice from 2026-11-24T08:00:00.000Z to 2026-11-24T10:00:00.000Z) overlaps the fleet's period of alice") && $0.contains("assigned in fleet commit 7 by dock-1") },
                "\(conflicts)")
        #expect(conflicts.contains { $0.contains("custody period #2 (carol") }, "\(conflicts)")
        #expect(stopped.stderr.split(separator: "\n").count == 1 && stopped.stderr.contains("nothing changed at this dock"), "\(stopped.stderr)")
        #expect(try two.ledger().fleetState() == nil)
        #expect(try two.registryLines() == before, "nothing changed here")
        #expect(try storedCommits(store, area).count == afterAdmission, "nothing written to the fleet")
        #expect(try two.owners("POOL-1") == ["ELEVEN.MP4": "carol"])

        // The admin resolves each here: this dock's BWC-1 registration and its POOL-1 periods go, GONE-1 goes.
        try two.ok(["device", "remove", "BWC-1"])
        try two.ok(["device", "remove", "GONE-1"])
        try two.ok(["device", "unassign", "POOL-1", "2"])
        try two.ok(["device", "unassign", "POOL-1", "1"])
        try two.ok(["device", "assign", "POOL-1", "alice", "--from", "2026-11-24T08:00:00Z", "--to", "2026-11-24T12:00:00Z"])
        try two.ok(["device", "assign", "POOL-1", "dave", "--from", "2026-11-24T14:00:00Z"])
        let joined = try two.ok(["fleet", "join"])
        #expect(joined.contains("brought in: ") && joined.contains("device.add NEW-1") && joined.contains("period.assign POOL-1 user dave"), "\(joined)")
        let commits = try storedCommits(store, area).values
        #expect(commits.count == afterAdmission + 2, "NEW-1 and dave's period, nothing else: \(commits.map(\.change.summary))")
        #expect(commits.filter { $0.change.kind == .deviceAdd && $0.change.serial == "SAME-1" }.count == 1)
        #expect(commits.filter { $0.change.kind == .periodAssign && $0.change.user == "alice" }.count == 1)
        #expect(fleetHead < afterAdmission)

        try one.ok(["fleet", "sync"])
        #expect(try two.registryLines() == one.registryLines())
        #expect(try two.owners("POOL-1") == ["ELEVEN.MP4": "alice"], "re-attributed by the fleet's periods")
        #expect(try two.ledger().device(serial: "BWC-1")?.defaultUser == "officer-1")
        let log = try two.ok(["log", "--device", "NEW-1"])
        #expect(log.contains("brought into the fleet as fleet commit"), "\(log)")
        // Afterwards this dock writes through the fleet like any member.
        try two.ok(["device", "add", "LATER-1", "--user", "officer-8"])
        try one.ok(["fleet", "sync"])
        #expect(try one.ledger().device(serial: "LATER-1") != nil)
    }
}
