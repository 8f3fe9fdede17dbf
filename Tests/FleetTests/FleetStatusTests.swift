import Foundation
import Synchronization
import Testing
import TestSupport
@testable import Agent
@testable import Crypto
@testable import Fleet
@testable import Ledger
@testable import Transport
@testable import UploaderCore

/// The dock statuses in the store as `fleet status` reads them (JSON).
func fleetStatus(_ dock: FleetDock, config: String? = nil) throws -> [String: Any] {
    try UploaderProcess.json(try dock.run(["fleet", "status", "--json"], config: config))
}

/// Each dock's entry of a `fleet status --json`, by dock name.
func entries(_ report: [String: Any]) -> [String: [String: Any]] {
    Dictionary(uniqueKeysWithValues: ((report["docks"] as? [[String: Any]]) ?? []).map { ($0["dock"] as? String ?? "?", $0) })
}

extension FleetDock {
    /// This dock's configuration and key, for writing its status in-process.
    func publish(now: Date = Date(), client: S3Client? = nil) throws -> FleetStatusPublisher.Published {
        let configuration = try site.configuration()
        return try FleetStatusPublisher.publish(configuration: configuration, ledger: try ledger(), client: client ?? site.client,
                                                key: try DockKey.loadOrCreate(configuration), now: now)
    }

    /// A configuration of the same store with no ledger: an admin's laptop.
    func laptopConfig() throws -> String {
        let text = try String(contentsOfFile: site.configPath, encoding: .utf8)
            .replacingOccurrences(of: "state = \"state\"", with: "state = \"laptop-state\"")
            .replacingOccurrences(of: "spool = \"spool\"", with: "spool = \"laptop-spool\"")
        let path = site.root + "/laptop.toml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

@Suite(.tags(.store, .subprocess), .serialized) struct FleetStatusTests {
    /// A dock writes its status after an upload run; `fleet status` at another
    /// dock and on a laptop with no ledger lists every dock with its figures,
    /// the fleet's totals and the late-upload rate per officer.
    @Test func statusIsWrittenAfterRunsAndReadFromTheStoreAlone() throws {
        let (folder, _, _, docks) = try makeFleet("status", count: 2)
        let (one, two) = (docks[0], docks[1])
        try one.ok(["device", "add", "BWC-1", "--user", "officer-1"])
        try two.ingest("BWC-1", folder, name: "A")
        try two.ok(["upload", "--now"])
        try one.ok(["housekeeping"])

        for config in [nil, try one.laptopConfig()] {
            let report = try fleetStatus(one, config: config)
            let docksSeen = entries(report)
            #expect(Set(docksSeen.keys) == ["dock-1", "dock-2"], "\(docksSeen.keys)")
            let status = try #require(docksSeen["dock-2"]?["status"] as? [String: Any])
            #expect(docksSeen["dock-2"]?["verdict"] as? String == "trusted" && docksSeen["dock-2"]?["silentSince"] == nil)
            #expect((status["files"] as? [String: [String: Any]])?["verified"]?["count"] as? Int == 1, "\(status)")
            #expect(status["registryCommit"] as? Int == 3 && status["lastVerifiedAt"] is String, "\(status)")
            let late = try #require(status["late"] as? [String: Any])
            // The recording is from 2026-11-18, over 24 h before this upload: late, for officer-1.
            #expect((late["officers"] as? [String: [String: Int]])?["officer-1"] == ["recordings": 1, "late": 1, "overdue": 0], "\(late)")
        }
        #expect(!FileManager.default.fileExists(atPath: one.site.root + "/laptop-state/ledger.sqlite"), "the laptop needs no ledger")
        let text = try one.ok(["fleet", "status"])
        #expect(text.contains("dock-2  ok (") && text.contains("fleet: 2 docks, 2 reporting, 0 silent"), "\(text)")
    }

    /// A silent dock is alerted once per fleet: every dock's watch sees it, one
    /// claim (`If-None-Match: *`) wins, and only that dock sends the alert.
    @Test func aSilentDockIsAlertedOncePerFleet() throws {
        let alerts = TemporaryDirectory("fleet-status-alerts")
        // (The command reads the alert's JSON on stdin: this test sends in-process, where a closed pipe would be SIGPIPE.)
        let (_, store, area, docks) = try makeFleet("silent", count: 3,
                                                   extra: "\n[monitoring]\nalert_command = \"cat >/dev/null; echo \\\"$UPLOADER_ALERT_KEY\\\" >> '\(alerts.sub("keys"))'\"\n")
        for dock in docks { try dock.publish() }
        // An hour later by the store's clock, nobody wrote since: all three are silent; each dock watches at once.
        let later = Date().addingTimeInterval(3600)
        let reports = Mutex<[FleetStatusReport]>([])
        DispatchQueue.concurrentPerform(iterations: docks.count) { index in
            let dock = docks[index]
            guard let configuration = try? dock.site.configuration(), let ledger = try? dock.ledger(),
                  let report = try? FleetStatusPublisher.watch(configuration: configuration, ledger: ledger, client: dock.site.client, now: later) else { return }
            reports.withLock { $0.append(report) }
        }
        #expect(reports.withLock { $0.count } == 3)
        #expect(reports.withLock { $0 }.allSatisfy { $0.docks.filter(\.isSilent).count == 3 })
        let sent = ((try? String(contentsOfFile: alerts.sub("keys"), encoding: .utf8)) ?? "").split(separator: "\n")
        #expect(sent.filter { $0.hasPrefix("fleet-silent-") }.count == 3, "one alert per silent dock, not one per dock and silent dock: \(sent)")
        let claims = try store.client(bucket: area.bucket).listObjectKeys(prefix: area.prefix + "/_fleet/alerts/")
        #expect(claims.count == 3 && claims.allSatisfy { $0.contains("/_fleet/alerts/silent-dock-") }, "\(claims)")
    }

    /// The attacks on the statuses, written straight to the store with its
    /// credentials: a member's status changed after signing, an unsigned one,
    /// one signed by a key that is not a member, one signed by another
    /// member's key. Each is named, none of their figures is counted.
    @Test func forgedAndNonMemberStatusesAreNamedAndNeverCounted() throws {
        let (_, store, area, docks) = try makeFleet("forged-status", count: 3)
        let client = store.client(bucket: area.bucket)
        for dock in docks { try dock.publish() }
        func put(_ dock: String, _ bytes: [UInt8]) throws {
            let key = FleetKeys.dockStatus(prefix: area.prefix, dock: dock)
            let there = try client.getSmallTagged(key: key)
            #expect(try client.replaceSmall(key: key, bytes: bytes, contentType: "application/json",
                                            condition: there.map { .matches($0.etag ?? "*") } ?? .absent) != nil)
        }
        // dock-2's own status, its figures raised after it was signed.
        var forged = try docks[1].publish().status
        forged.files["verified"] = StateTotals(count: 999_999, bytes: 1)
        try put("dock-2", try forged.encoded())
        // dock-3's status with its signature removed.
        var unsigned = try docks[2].publish().status
        unsigned.signature = nil
        try put("dock-3", try unsigned.encoded())
        // A dock nobody admitted, signing with its own key.
        let outsider = try Ed25519PrivateKey()
        let figures = try docks[0].ledger().dockFigures()
        try put("dock-9", try DockStatus(dock: "dock-9", host: "laptop", at: Date(), figures: figures, spoolFreeBytes: 1, waitingListed: 0, key: outsider).encoded())
        // dock-1's member key speaking for a dock "dock-7".
        let dockOneKey = try DockKey.loadOrCreate(try docks[0].site.configuration())
        try put("dock-7", try DockStatus(dock: "dock-7", host: "x", at: Date(), figures: figures, spoolFreeBytes: 1, waitingListed: 0, key: dockOneKey).encoded())

        for config in [nil, try docks[0].laptopConfig()] {
            let seen = entries(try fleetStatus(docks[0], config: config))
            #expect(seen["dock-1"]?["verdict"] as? String == "trusted")
            #expect(seen["dock-2"]?["verdict"] as? String == "BAD SIGNATURE" && seen["dock-2"]?["status"] == nil, "\(seen["dock-2"] ?? [:])")
            #expect(seen["dock-3"]?["verdict"] as? String == "UNSIGNED")
            #expect(seen["dock-9"]?["verdict"] as? String == "NOT A MEMBER")
            #expect(seen["dock-7"]?["verdict"] as? String == "ANOTHER DOCK'S KEY", "\(seen["dock-7"] ?? [:])")
        }
        let text = try docks[0].ok(["fleet", "status"])
        #expect(text.contains("dock-2  BAD SIGNATURE: its signature does not hold") && text.contains("(figures not counted)"), "\(text)")
        #expect(text.contains("1 reporting") && text.contains("4 untrusted") && !text.contains("999999"), "\(text)")
        // The watch at a dock raised each once, through the alert path (custody log).
        let log = try docks[0].ok(["log", "--level", "warning"])
        #expect(log.contains("the status of dock dock-2 in the store is BAD SIGNATURE"), "\(log)")
    }

    /// Clocks: a dock whose clock is an hour ahead and one an hour behind are
    /// flagged, and neither is called silent (silence is the store's clock); a
    /// status dated two days ahead keeps no dock alive: by the store's clock
    /// an hour later it is silent like any other.
    @Test func clocksAnHourApartAndAStatusFromTheFuture() throws {
        let (_, store, area, docks) = try makeFleet("clocks", count: 3)
        try docks[0].publish(now: Date().addingTimeInterval(3600))
        try docks[1].publish(now: Date().addingTimeInterval(-3600))
        try docks[2].publish(now: Date().addingTimeInterval(2 * 86400))
        let seen = entries(try fleetStatus(docks[0]))
        #expect(seen.values.allSatisfy { $0["silentSince"] == nil }, "\(seen)")
        #expect((seen["dock-1"]?["clockAheadSeconds"] as? Double).map { abs($0 - 3600) < 120 } == true, "\(seen["dock-1"] ?? [:])")
        #expect((seen["dock-2"]?["clockAheadSeconds"] as? Double).map { abs($0 + 3600) < 120 } == true)
        let text = try docks[0].ok(["fleet", "status"])
        #expect(text.contains("CLOCK OFF: 1h ahead of the store's") && text.contains("CLOCK OFF: 1h behind the store's") && text.contains("CLOCK OFF: 2d ahead of"), "\(text)")
        let reader = DockStatusReader(client: store.client(bucket: area.bucket), prefix: area.prefix,
                                      members: try FleetMembers.fromLedger(try docks[0].ledger()), silentAfter: 900)
        let later = try reader.read(now: Date().addingTimeInterval(3600))
        #expect(later.docks.first { $0.dock == "dock-3" }?.isSilent == true, "a status from the future is not trusted for silence")
        #expect(reader.alerts(later).contains { $0.alert.key.hasPrefix("fleet-clock-dock-3-") })
    }

    /// A second PC configured with an admitted dock's name: its status write
    /// meets the other PC's signed object and refuses in one line, with a
    /// custody event and an alert; the first PC's status stays.
    @Test func aDockNameReusedByASecondPCIsFoundAndAlerted() throws {
        let alerts = TemporaryDirectory("fleet-reuse-alerts")
        let (folder, store, area, docks) = try makeFleet("reused", count: 2)
        try docks[1].publish()
        let impostor = try FleetDock(folder, "dock-2", store: store, area: area,
                                     extra: "\n[monitoring]\nalert_command = \"echo \\\"$UPLOADER_ALERT_KEY\\\" >> '\(alerts.sub("keys"))'\"\n")
        try impostor.ok(["fleet", "join"])
        do {
            try impostor.publish()
            Issue.record("a second PC overwrote dock-2's status")
        } catch let error as UploaderError {
            #expect(error.message.hasPrefix("dock name dock-2 is used by two PCs:") && !error.message.contains("\n"), "\(error.message)")
        }
        try impostor.ok(["housekeeping"])
        let sent = (try? String(contentsOfFile: alerts.sub("keys"), encoding: .utf8)) ?? ""
        #expect(sent.contains("fleet-dock-name-reused-dock-2"), "\(sent)")
        #expect(try impostor.ok(["log", "--level", "error"]).contains("is used by two PCs"))
        let there = try #require(try store.client(bucket: area.bucket).getSmall(key: FleetKeys.dockStatus(prefix: area.prefix, dock: "dock-2")))
        let key = try DockKey.loadOrCreate(try docks[1].site.configuration())
        #expect(try DockStatus.decode(there).signer == key.publicKey.hex, "the first PC's status stays")
    }

    /// A store that answers 503 to every third request: the status is written
    /// and `fleet status` and `fleet find` read every dock all the same.
    @Test func aStoreAnswering503ToEveryThirdRequest() throws {
        let (folder, store, area, docks) = try makeFleet("503", count: 2)
        try docks[0].ok(["device", "add", "BWC-5", "--user", "officer-5"])
        try docks[1].ingest("BWC-5", folder, name: "W")
        let proxy = try FaultProxy(upstream: store.endpoint)
        defer { proxy.stop() }
        proxy.answer503(every: 3)
        let client = S3Client(target: .init(endpoint: proxy.endpoint, bucket: area.bucket, addressing: .path), region: "us-east-1", credentials: store.credentials)
        try docks[0].publish(client: client)
        try docks[1].publish(client: client)
        let config = try docks[0].config(endpoint: proxy.endpoint, named: "shedding.toml")
        let seen = entries(try fleetStatus(docks[0], config: config))
        #expect(seen["dock-1"]?["verdict"] as? String == "trusted" && seen["dock-2"]?["verdict"] as? String == "trusted", "\(seen)")
        let found = try UploaderProcess.json(try docks[0].run(["fleet", "find", "--user", "officer-5", "--from", "2026-11-01", "--to", "2026-12-01", "--json"], config: config))
        #expect((found["waiting"] as? [[String: Any]])?.count == 1, "\(found)")
        #expect((proxy.counts[.slowDown] ?? 0) >= 5, "the store shed load: \(proxy.counts)")
    }

    /// `fleet find`: a recording waiting at dock 2 is found there, then in the
    /// store by its key once verified; another officer's search finds nothing
    /// of it, and bad times are refused in one line.
    @Test func findLocatesAnOfficersRecordingsWaitingAndVerified() throws {
        let (folder, _, _, docks) = try makeFleet("find", count: 2)
        let (one, two) = (docks[0], docks[1])
        try one.ok(["device", "add", "BWC-1", "--user", "officer-1"])
        try one.ok(["device", "add", "BWC-2", "--user", "officer-2"])
        try two.ingest("BWC-1", folder, name: "MINE")
        try two.ingest("BWC-2", folder, name: "OTHER")
        try two.ingest("BWC-UNKNOWN", folder, name: "HELD")
        let recorded = Date(timeIntervalSince1970: 1_795_000_000)
        let from = Timestamps.iso(recorded.addingTimeInterval(-60)), to = Timestamps.iso(recorded.addingTimeInterval(60))
        func find(_ user: String) throws -> [String: Any] {
            try UploaderProcess.json(try one.run(["fleet", "find", "--user", user, "--from", from, "--to", to, "--json"]))
        }
        let waiting = try find("officer-1")
        let atDock = (waiting["waiting"] as? [[String: Any]]) ?? []
        #expect(atDock.count == 1 && atDock.first?["dock"] as? String == "dock-2" && atDock.first?["serial"] as? String == "BWC-1", "\(waiting)")
        #expect((waiting["heldUnattributed"] as? [[String: Any]])?.first?["serial"] as? String == "BWC-UNKNOWN", "held files are nobody's: \(waiting)")
        #expect((waiting["verified"] as? [Any])?.isEmpty == true)

        try two.ok(["upload", "--now"])
        let verified = try find("officer-1")
        let keys = ((verified["verified"] as? [[String: Any]]) ?? []).compactMap { $0["key"] as? String }
        #expect(keys.count == 1 && keys.first?.contains("/officer-1/2026/11/") == true && keys.first?.contains("MINE") == true, "\(verified)")
        #expect((verified["waiting"] as? [Any])?.isEmpty == true, "\(verified)")
        let other = try find("officer-2")
        #expect(((other["verified"] as? [[String: Any]]) ?? []).allSatisfy { ($0["key"] as? String)?.contains("OTHER") == true }, "\(other)")
        let outside = try UploaderProcess.json(try one.run(["fleet", "find", "--user", "officer-1", "--from", "2026-11-19", "--to", "2026-11-20", "--json"]))
        #expect((outside["verified"] as? [Any])?.isEmpty == true && (outside["waiting"] as? [Any])?.isEmpty == true, "\(outside)")

        // Another key template: the store cannot be searched by officer and day, and the command says so.
        let otherTemplate = one.site.root + "/other-template.toml"
        try String(contentsOfFile: one.site.configPath, encoding: .utf8)
            .replacingOccurrences(of: "[store]\n", with: "[store]\nkey_template = \"{prefix}/{serial}/{name}\"\n")
            .write(toFile: otherTemplate, atomically: true, encoding: .utf8)
        let unsearched = try UploaderProcess.json(try one.run(["fleet", "find", "--user", "officer-1", "--from", from, "--to", to, "--json"], config: otherTemplate))
        #expect((unsearched["storeNotSearched"] as? String)?.contains("cannot be listed by officer and day") == true, "\(unsearched)")

        for (from, to) in [("yesterday", "2026-11-20"), ("2026-11-18T08:00", "2026-11-20"), ("2026-11-20", "2026-11-18")] {
            let refused = try one.run(["fleet", "find", "--user", "officer-1", "--from", from, "--to", to])
            #expect(refused.status == 2 && refused.stderr.split(separator: "\n").count == 1, "\(from) \(to): \(refused.status) \(refused.stderr)")
        }
    }
}
