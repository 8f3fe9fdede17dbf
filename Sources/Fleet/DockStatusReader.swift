import Crypto
import Foundation
import Ledger
import Transport
import UploaderCore

/// Who may sign a dock's status: the fleet's members, each under the dock
/// name it was admitted with. Blocking.
public struct FleetMembers: Sendable, Equatable {
    /// Key fingerprint → dock name.
    public var docks: [String: String]
    /// Where the list came from, and anything that stopped reading it.
    public var source: String
    public var problem: String?

    public init(docks: [String: String], source: String, problem: String? = nil) {
        self.docks = docks
        self.source = source
        self.problem = problem
    }

    /// From this dock's registry (synced from the store).
    public static func fromLedger(_ ledger: Ledger) throws -> FleetMembers {
        let state = try ledger.fleetState()
        return FleetMembers(docks: try ledger.fleetMembers(), source: "this dock's registry at commit \(state?.appliedNumber ?? 0)",
                            problem: state?.blockedProblem)
    }

    /// From the store alone (an admin's laptop): the registry's commits read
    /// and checked in order as a dock checks them (signed, by a member,
    /// chained); only the member admissions of commits that hold count.
    public static func fromStore(client: S3Client, prefix: String) throws -> FleetMembers {
        let keys = try FleetStore.retrying { try client.listObjectKeys(prefix: FleetKeys.registryFolder(prefix: prefix)) }
        let numbers = keys.compactMap { FleetKeys.number(ofKey: $0, prefix: prefix) }.sorted()
        var members: [String: String] = [:]
        var parent = Ledger.fleetGenesisParent
        var head: Int64 = 0
        for number in numbers {
            guard number == head + 1 else {
                return FleetMembers(docks: members, source: "the store's registry up to commit \(head)",
                                    problem: "commit \(head + 1) is missing from the store: members admitted after it are not known")
            }
            head = number
            guard let bytes = try FleetStore.retrying({ try client.getSmall(key: FleetKeys.commit(prefix: prefix, number: number)) }),
                  let commit = try? FleetCommit.decode(bytes), commit.format == FleetCommit.formatName, commit.number == number,
                  commit.signatureHolds, commit.parent == parent, let signer = commit.signerFingerprint else { continue }
            if parent == Ledger.fleetGenesisParent {
                guard commit.change.kind == .memberAdmit, commit.change.publicKey == commit.signer else { continue }
            } else if members[signer] == nil {
                continue
            }
            parent = commit.hash
            if commit.change.kind == .memberAdmit, let key = commit.change.publicKey, let fingerprint = RegistryChange.fingerprint(publicKeyHex: key),
               members[fingerprint] == nil {
                members[fingerprint] = commit.change.dock ?? ""
            }
        }
        return FleetMembers(docks: members, source: "the store's registry up to commit \(head)")
    }

    /// Why `signer` may not speak for `dock` (nil: it may).
    func problem(signer: String, dock: String) -> DockStatusEntry.Verdict? {
        guard let fingerprint = RegistryChange.fingerprint(publicKeyHex: signer), let admitted = docks[fingerprint] else { return .notMember }
        return admitted == dock ? nil : .otherDock
    }
}

/// The store's requests of the fleet status: a store that answers 503 now and
/// then is asked again (with backoff, as a commit's PUT is).
public enum FleetStore {
    public static let retries = RetryPolicy(maxAttempts: 6, baseDelay: 0.2, maxDelay: 2)

    /// Once only: after a dock run (docking never waits on the network; the next minute's write tries again).
    public static let once = RetryPolicy(maxAttempts: 1, baseDelay: 0, maxDelay: 0)

    public static func retrying<T>(policy: RetryPolicy = retries, _ body: () throws -> T) throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try body()
            } catch let error as UploaderError where error.isRetryable && attempt < policy.maxAttempts {
                Thread.sleep(forTimeInterval: policy.delay(afterAttempt: attempt, retryAfter: error.retryAfter))
            }
        }
    }
}

/// One dock as `fleet status` sees it.
public struct DockStatusEntry: Sendable, Codable, Equatable {
    public enum Verdict: String, Sendable, Codable {
        case trusted
        case unreadable = "UNREADABLE"
        case unsigned = "UNSIGNED"
        case badSignature = "BAD SIGNATURE"
        case notMember = "NOT A MEMBER"
        /// Signed by a member admitted under another dock's name.
        case otherDock = "ANOTHER DOCK'S KEY"
        /// A member that has written no status yet.
        case missing = "NO STATUS"
    }

    public var dock: String
    public var verdict: Verdict
    public var problem: String?
    /// The status, when its signature and signer hold (nil otherwise: never counted).
    public var status: DockStatus?
    /// When the store last took this dock's status (the store's clock).
    public var storedAt: String?
    /// How long ago, by the store's clock.
    public var ageSeconds: Double?
    /// Silent since (the store's time of its last status) when older than `[fleet] silent_after`.
    public var silentSince: String?
    /// How far the dock's clock was from the store's when it wrote (positive: ahead); set when off by more than a few minutes.
    public var clockAheadSeconds: Double?

    public var trusted: Bool { verdict == .trusted }
    public var isSilent: Bool { silentSince != nil }
}

/// The fleet's status from the store alone.
public struct FleetStatusReport: Sendable, Codable {
    public var readAt: String
    public var silentAfterSeconds: Double
    public var members: String
    public var membersProblem: String?
    public var docks: [DockStatusEntry]

    /// Figures of the docks whose status holds (never those of a bad one).
    public var trusted: [DockStatus] { docks.compactMap { $0.trusted ? $0.status : nil } }

    public var files: [String: StateTotals] {
        trusted.reduce(into: [:]) { totals, status in
            for (state, value) in status.files {
                totals[state, default: .zero].count += value.count
                totals[state, default: .zero].bytes += value.bytes
            }
        }
    }

    public var backlog: StateTotals {
        trusted.reduce(into: StateTotals.zero) { sum, status in
            sum.count += status.backlog.count
            sum.bytes += status.backlog.bytes
        }
    }

    public var late: LateCount { trusted.reduce(LateCount()) { $0 + $1.late.overall } }

    /// Late uploads by officer, over every trusted dock.
    public var officers: [String: LateCount] {
        trusted.reduce(into: [:]) { sum, status in
            for (officer, count) in status.late.officers { sum[officer, default: LateCount()] = sum[officer, default: LateCount()] + count }
        }
    }
}

/// Reads `{prefix}/_fleet/docks/`: each status object, judged before any of
/// its figures is believed. Silence and clocks are judged by the store's
/// clock (Last-Modified, and the `Date` of its answer), never by a dock's:
/// a dock whose clock is an hour off is neither silent nor trusted to say it is alive. Blocking.
public struct DockStatusReader {
    public let client: S3Client
    public let prefix: String
    public let members: FleetMembers
    public let silentAfter: TimeInterval
    /// A status dated this far from the store's time of writing is flagged (its clock is off).
    public static let clockTolerance: TimeInterval = 300

    public init(client: S3Client, prefix: String, members: FleetMembers, silentAfter: TimeInterval) {
        self.client = client
        self.prefix = prefix
        self.members = members
        self.silentAfter = silentAfter
    }

    /// `now`: the time to judge silence at (tests); else the store's own clock, else this machine's.
    public func read(now: Date? = nil) throws -> FleetStatusReport {
        let (objects, storeNow) = try FleetStore.retrying { try client.listObjects(prefix: FleetKeys.docksFolder(prefix: prefix)) }
        let reference = now ?? storeNow ?? Date()
        var entries: [DockStatusEntry] = []
        for object in objects {
            guard let dock = FleetKeys.dock(ofStatusKey: object.key, prefix: prefix) else { continue }
            var entry = DockStatusEntry(dock: dock, verdict: .trusted)
            entry.storedAt = object.lastModified.map(Timestamps.iso)
            guard let bytes = try FleetStore.retrying({ try client.getSmall(key: object.key) }) else { continue }
            judge(bytes, into: &entry)
            if let stored = object.lastModified {
                entry.ageSeconds = max(0, reference.timeIntervalSince(stored))
                // Only a trusted status is a sign of life (a bad one is alerted as such).
                if entry.trusted, reference.timeIntervalSince(stored) > silentAfter { entry.silentSince = Timestamps.iso(stored) }
                if let status = entry.status, let at = status.atDate, abs(at.timeIntervalSince(stored)) > Self.clockTolerance {
                    entry.clockAheadSeconds = at.timeIntervalSince(stored)
                }
            }
            entries.append(entry)
        }
        // A member that never wrote a status is listed too.
        let reported = Set(entries.map(\.dock))
        for dock in Set(members.docks.values).subtracting(reported) where !dock.isEmpty {
            entries.append(DockStatusEntry(dock: dock, verdict: .missing, problem: "a fleet member that has written no status yet"))
        }
        return FleetStatusReport(readAt: Timestamps.iso(reference), silentAfterSeconds: silentAfter, members: members.source,
                                 membersProblem: members.problem, docks: entries.sorted { $0.dock < $1.dock })
    }

    func judge(_ bytes: [UInt8], into entry: inout DockStatusEntry) {
        guard let status = try? DockStatus.decode(bytes), status.format == DockStatus.formatName else {
            entry.verdict = .unreadable
            entry.problem = "\(bytes.count) bytes that are not a dock status"
            return
        }
        if (status.signature ?? "").isEmpty {
            entry.verdict = .unsigned
            entry.problem = "the status is not signed"
        } else if !status.signatureHolds {
            entry.verdict = .badSignature
            entry.problem = "its signature does not hold (changed or forged in the store)"
        } else if status.dock != entry.dock {
            entry.verdict = .otherDock
            entry.problem = "it names dock \(DisplayText.escaped(status.dock)), not the dock of its key in the store"
        } else if let verdict = members.problem(signer: status.signer, dock: status.dock) {
            entry.verdict = verdict
            let fingerprint = RegistryChange.fingerprint(publicKeyHex: status.signer).map(Ed25519PublicKey.grouped) ?? "?"
            entry.problem = verdict == .notMember
                ? "it is signed by key \(String(fingerprint.prefix(19))), which is not a fleet member"
                : "it is signed by the key of member \(DisplayText.escaped(members.docks[RegistryChange.fingerprint(publicKeyHex: status.signer) ?? ""] ?? "?")), not \(DisplayText.escaped(status.dock))'s"
        } else {
            entry.status = status
        }
    }

    /// Claims the fleet's one alert about `entry` (`If-None-Match: *` on
    /// `{prefix}/_fleet/alerts/…`): true for the one dock that wins. The claim
    /// names the condition and its time (the store's), so a dock silent again later is alerted again.
    public func claimAlert(_ alert: Alert, claimKey: String, by dock: String) throws -> Bool {
        let body = try FleetSignature.encode(["format": "uploader.fleet-alert/1", "key": alert.key, "message": alert.message,
                                              "claimedBy": dock, "at": Timestamps.iso(Date())])
        return try FleetStore.retrying { try client.putOnce(key: claimKey, bytes: body, contentType: "application/json") } == .created
    }

    /// The alerts the fleet must raise for this report: each silent dock (since
    /// its last status), and each dock whose status is bad or whose clock is
    /// off; with the claim key that makes each one the fleet's, not each dock's.
    public func alerts(_ report: FleetStatusReport) -> [(alert: Alert, claimKey: String)] {
        var found: [(Alert, String)] = []
        for entry in report.docks {
            let dock = DisplayText.escaped(entry.dock)
            if !entry.trusted, entry.verdict != .missing {
                let stamp = entry.storedAt ?? "unknown"
                found.append((Alert(key: "fleet-status-bad-\(entry.dock)-\(stamp)",
                                    message: "the status of dock \(dock) in the store is \(entry.verdict.rawValue): \(entry.problem ?? "?"); its figures are not counted, and someone with the store's credentials may be hiding a dock: see `uploader fleet status`"),
                              FleetKeys.fleetAlert(prefix: prefix, kind: "bad", dock: entry.dock, since: stamp)))
            } else if let since = entry.silentSince {
                found.append((Alert(key: "fleet-silent-\(entry.dock)-\(since)",
                                    message: "dock \(dock) is silent: its last status reached the store at \(since), more than \(Configuration.Fleet.durationText(silentAfter)) ago ([fleet] silent_after); check that PC, its network and its daemon"),
                              FleetKeys.fleetAlert(prefix: prefix, kind: "silent", dock: entry.dock, since: since)))
            }
            if let ahead = entry.clockAheadSeconds, let stamp = entry.status?.at {
                found.append((Alert(key: "fleet-clock-\(entry.dock)-\(stamp)",
                                    message: "dock \(dock)'s clock is \(FleetStatusText.offset(ahead)) the store's (its status says \(stamp)): set its time (NTP); its silence is judged by the store's clock"),
                              FleetKeys.fleetAlert(prefix: prefix, kind: "clock", dock: entry.dock, since: stamp)))
            }
        }
        return found
    }
}

extension FleetKeys {
    /// The claim on the fleet's alert of one kind about one dock since one time (written once: `If-None-Match: *`).
    public static func fleetAlert(prefix: String, kind: String, dock: String, since: String) -> String {
        folder(prefix: prefix) + "alerts/\(kind)-\(dock)-" + since.replacingOccurrences(of: ":", with: "") + ".json"
    }
}

/// How the fleet's figures read for people.
public enum FleetStatusText {
    /// "45s", "12m", "3h 5m", "2d 4h".
    public static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m" + (s % 60 == 0 ? "" : " \(s % 60)s") }
        if s < 86400 { return "\(s / 3600)h" + (s % 3600 / 60 == 0 ? "" : " \(s % 3600 / 60)m") }
        return "\(s / 86400)d" + (s % 86400 / 3600 == 0 ? "" : " \(s % 86400 / 3600)h")
    }

    /// A clock's offset to the minute (the store's times have whole seconds; the write takes a moment).
    public static func offset(_ seconds: Double) -> String {
        duration((abs(seconds) / 60).rounded() * 60) + (seconds > 0 ? " ahead of" : " behind")
    }
}
