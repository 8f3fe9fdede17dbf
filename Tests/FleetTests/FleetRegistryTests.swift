import Foundation
import Testing
import TestSupport
@testable import Agent
@testable import Crypto
@testable import Fleet
@testable import Ledger
@testable import Transport
@testable import UploaderCore

/// One dock of a test fleet: its own configuration, state, spool and key, run as real `uploader` processes.
struct FleetDock {
    let site: TestSite
    let name: String
    /// Kept while any dock of the test is: its folder goes when the last one does.
    let folder: TemporaryDirectory

    init(_ folder: TemporaryDirectory, _ name: String, store: TestStore, area: StoreArea, extra: String = "") throws {
        self.name = name
        self.folder = folder
        site = try TestSite.make(name) {
            $0.store(store, area: area)
            $0.extra = "\n[agent]\nhost_name = \"\(name)\"\n" + extra
        }
    }

    @discardableResult
    func run(_ arguments: [String], config: String? = nil) throws -> UploaderProcess.Result {
        try UploaderProcess.run(arguments, config: config ?? site.configPath)
    }

    /// Runs a command that must succeed; its standard output.
    @discardableResult
    func ok(_ arguments: [String], config: String? = nil) throws -> String {
        let result = try run(arguments, config: config)
        guard result.status == 0 else {
            throw TestFailure.message("\(name): uploader \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)")
        }
        return result.stdout
    }

    /// This configuration with another store endpoint (a proxy, or nothing listening), same state and spool.
    func config(endpoint: String, named file: String) throws -> String {
        let text = try String(contentsOfFile: site.configPath, encoding: .utf8)
        let path = site.root + "/" + file
        let line = text.split(separator: "\n").first { $0.hasPrefix("endpoint = ") }!
        try text.replacingOccurrences(of: String(line), with: "endpoint = \"\(endpoint)\"").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func ledger() throws -> Ledger { try Ledger(path: site.ledgerPath) }

    /// The files of a camera at this dock (`device show --json`).
    func files(_ serial: String) throws -> [[String: Any]] {
        (try UploaderProcess.json(try run(["device", "show", serial, "--json"]))["files"] as? [[String: Any]]) ?? []
    }

    /// Ingests one recording of `serial` from a fresh folder.
    func ingest(_ serial: String, _ folder: TemporaryDirectory, name: String, config: String? = nil) throws {
        let volume = folder.sub("\(self.name)-\(serial)-\(name)")
        try FileManager.default.createDirectory(atPath: volume, withIntermediateDirectories: true)
        try CameraVolume.writeRecording(at: volume + "/\(name).MP4", recordedAt: Date(timeIntervalSince1970: 1_795_000_000), payloadSize: 20_000)
        try ok(["ingest", volume, "--serial", serial], config: config)
    }
}

/// A fleet of `count` docks: the first creates it, each other asks to join and the first admits it.
func makeFleet(_ label: String, count: Int, extra: String = "") throws -> (TemporaryDirectory, TestStore, StoreArea, [FleetDock]) {
    let folder = TemporaryDirectory("fleet-\(label)")
    let store = try TestStore.fromEnvironment()
    let area = try store.makeArea("fleet-\(label)")
    let docks = try (1...count).map { try FleetDock(folder, "dock-\($0)", store: store, area: area, extra: extra) }
    try docks[0].ok(["fleet", "init"])
    for dock in docks.dropFirst() {
        let asked = try dock.ok(["fleet", "join"])
        guard let fingerprint = asked.split(separator: "\n").first(where: { $0.contains("uploader fleet admit ") })?.split(separator: " ").last else {
            throw TestFailure.message("fleet join printed no fingerprint: \(asked)")
        }
        try docks[0].ok(["fleet", "admit", String(fingerprint)])
    }
    return (folder, store, area, docks)
}

/// The registry's commits in the store, by number.
func storedCommits(_ store: TestStore, _ area: StoreArea) throws -> [Int64: FleetCommit] {
    let client = store.client(bucket: area.bucket)
    var commits: [Int64: FleetCommit] = [:]
    for key in try client.listObjectKeys(prefix: FleetKeys.registryFolder(prefix: area.prefix)) {
        guard let number = FleetKeys.number(ofKey: key, prefix: area.prefix), let bytes = try client.getSmall(key: key) else { continue }
        commits[number] = try? FleetCommit.decode(bytes)
    }
    return commits
}

@Suite(.tags(.store, .subprocess), .serialized) struct FleetRegistryTests {
    /// The promise: a camera registered once is known at every dock. Dock 2
    /// attributes a camera registered at dock 1 (the sync before attributing),
    /// and a camera's files held at dock 2 before it was registered anywhere
    /// are released by a sync, with a custody event naming the commit.
    @Test func aCameraRegisteredAtOneDockIsAttributedAtAnother() throws {
        let (folder, _, _, docks) = try makeFleet("two", count: 2)
        let (one, two) = (docks[0], docks[1])
        try two.ingest("BWC-8", folder, name: "EARLY")
        #expect(try two.files("BWC-8").first?["state"] as? String == "quarantined", "a camera nobody registered is held")

        try one.ok(["device", "add", "BWC-7", "--user", "officer-7"])
        let added = try one.ok(["device", "add", "BWC-8", "--user", "officer-8"])
        try two.ingest("BWC-7", folder, name: "LATER")
        let seven = try two.files("BWC-7")
        #expect(seven.count == 1 && seven.first?["user"] as? String == "officer-7" && seven.first?["state"] as? String == "spooled",
                "dock 2 attributes the camera dock 1 registered: \(seven)")

        try two.ok(["fleet", "sync"])
        let eight = try two.files("BWC-8")
        #expect(eight.first?["state"] as? String == "spooled" && eight.first?["user"] as? String == "officer-8", "\(eight)")
        let commit = added.split(separator: "fleet commit ").last.flatMap { $0.prefix { $0.isNumber } }.map(String.init) ?? "?"
        let log = try two.ok(["log", "--device", "BWC-8"])
        #expect(log.contains("released from quarantine") && log.contains("fleet commit \(commit) by dock-1"),
                "the release names the commit that brought the registration: \(log)")
    }

    /// Eight admins at four docks at once: each change lands exactly once and
    /// the head is the count of commits (init, three admissions, eight adds).
    @Test func concurrentWritersEachLandOnce() throws {
        let (_, store, area, docks) = try makeFleet("concurrent", count: 4)
        let running = try (0..<8).map { index in
            try UploaderProcess.start(["device", "add", "CAM-\(index)", "--user", "officer-\(index)"], config: docks[index % 4].site.configPath)
        }
        let results = running.map { $0.finish() }
        for (index, result) in results.enumerated() {
            #expect(result.status == 0, "writer \(index): \(result.stderr)")
        }
        let commits = try storedCommits(store, area)
        #expect(commits.keys.sorted() == Array(1...12), "commits \(commits.keys.sorted())")
        let adds = commits.values.filter { $0.change.kind == .deviceAdd }.compactMap(\.change.serial)
        #expect(adds.sorted() == (0..<8).map { "CAM-\($0)" }, "each change once: \(adds.sorted())")
        for dock in docks {
            try dock.ok(["fleet", "sync"])
            let devices = try JSONSerialization.jsonObject(with: Data(try dock.ok(["device", "list", "--json"]).utf8)) as? [[String: Any]]
            #expect(devices?.count == 8, "\(dock.name) knows \(devices?.count ?? -1) cameras")
        }
    }

    /// The store's credentials alone cannot reassign a camera: a commit signed
    /// by a key that is not a member's, one changed after it was signed, and
    /// an unsigned one, written straight to the store, are ignored, logged and
    /// alerted; attribution does not change, and the members' next commit holds.
    @Test func commitsWrittenWithStoreCredentialsAloneAreIgnoredAndAlerted() throws {
        let alerts = TemporaryDirectory("fleet-alerts")
        let (folder, store, area, docks) = try makeFleet("forged", count: 2,
                                                        extra: "\n[monitoring]\nalert_command = \"echo \\\"$UPLOADER_ALERT_KEY\\\" >> '\(alerts.sub("keys"))'\"\n")
        let (one, two) = (docks[0], docks[1])
        try one.ok(["device", "add", "BWC-1", "--user", "officer-1"])
        try two.ok(["fleet", "sync"])
        let head = try #require(try two.ledger().fleetState())
        #expect(head.appliedNumber == 3)
        let client = store.client(bucket: area.bucket)
        let mallory = RegistryChange(kind: .periodAssign, serial: "BWC-1", user: "mallory", from: "2020-01-01T00:00:00.000Z")
        func put(_ commit: FleetCommit) throws {
            #expect(try client.putOnce(key: FleetKeys.commit(prefix: area.prefix, number: commit.number), bytes: try commit.encoded(),
                                       contentType: "application/json") == .created)
        }
        // Signed, chained, but by a key no member admitted.
        try put(try FleetCommit(number: 4, parent: head.appliedHash, dock: "dock-1", user: "admin", change: mallory, key: try Ed25519PrivateKey()))
        // Signed by dock 1's own key, then changed.
        let memberKey = try DockKey.loadOrCreate(try one.site.configuration())
        var tampered = try FleetCommit(number: 5, parent: head.appliedHash, dock: "dock-1", user: "admin",
                                       change: RegistryChange(kind: .periodAssign, serial: "BWC-1", user: "officer-1", from: "2020-01-01T00:00:00.000Z"), key: memberKey)
        tampered.change.user = "mallory"
        try put(tampered)
        // Not signed at all.
        var unsigned = try FleetCommit(number: 6, parent: head.appliedHash, dock: "dock-1", user: "admin", change: mallory, key: memberKey)
        unsigned.signature = nil
        try put(unsigned)

        try two.ok(["housekeeping"])
        try two.ingest("BWC-1", folder, name: "AFTER")
        let files = try two.files("BWC-1")
        #expect(files.count == 1 && files.first?["user"] as? String == "officer-1", "attribution unchanged: \(files)")
        let log = try JSONSerialization.jsonObject(with: Data(try two.ok(["fleet", "log", "--json"]).utf8)) as? [[String: Any]] ?? []
        let verdicts = Dictionary(uniqueKeysWithValues: log.map { ($0["number"] as? Int ?? 0, "\($0["status"] ?? "") \($0["problem"] ?? "")") })
        #expect(verdicts[4]?.hasPrefix("bad it is signed by key") == true && verdicts[5] == "bad its signature does not hold"
                && verdicts[6] == "bad it is not signed", "\(verdicts)")
        let sent = (try? String(contentsOfFile: alerts.sub("keys"), encoding: .utf8)) ?? ""
        #expect(["fleet-commit-4", "fleet-commit-5", "fleet-commit-6"].allSatisfy { sent.contains($0) }, "alerts sent: \(sent)")
        let events = try two.ok(["log", "--level", "error"])
        #expect(events.contains("fleet commit 4 by dock-1 (user admin") && events.contains("ignored"), "\(events)")

        // The members' next commit holds: its parent is the last commit that held.
        try one.ok(["device", "assign", "BWC-1", "officer-2", "--from", "2026-01-01T00:00:00Z"])
        try two.ok(["fleet", "sync"])
        #expect(try two.ledger().custody(serial: "BWC-1").map(\.user) == ["officer-2"])
    }

    /// With the store out of reach a device command refuses in one line and
    /// changes nothing; docking goes on from the registry this dock holds.
    @Test func storeDownRefusesDeviceChangesAndDocksFromTheCache() throws {
        let (folder, _, _, docks) = try makeFleet("down", count: 1)
        let dock = docks[0]
        try dock.ok(["device", "add", "BWC-9", "--user", "officer-9"])
        let down = try dock.config(endpoint: "http://127.0.0.1:9", named: "down.toml")
        let refused = try dock.run(["device", "add", "BWC-10", "--user", "officer-10"], config: down)
        #expect(refused.status != 0)
        #expect(refused.stderr.split(separator: "\n").count == 1 && refused.stderr.contains("the store cannot be reached"), "\(refused.stderr)")
        #expect(try dock.ledger().device(serial: "BWC-10") == nil)
        try dock.ingest("BWC-9", folder, name: "OFFLINE", config: down)
        let files = try dock.files("BWC-9")
        #expect(files.count == 1 && files.first?["user"] as? String == "officer-9" && files.first?["state"] as? String == "spooled", "\(files)")
    }
}
