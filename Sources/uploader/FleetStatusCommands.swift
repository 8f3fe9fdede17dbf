import Agent
import ArgumentParser
import Crypto
import Fleet
import Foundation
import Ledger
import Logging
import Transport
import UploaderCore

/// Where `fleet status` and `fleet find` read from: the store, with the
/// members from this dock's registry at a dock in a fleet, or from the
/// store's registry alone (an admin's laptop: a configuration and read-only
/// credentials, no ledger).
struct FleetReadSite {
    let configuration: Configuration
    let client: S3Client
    /// This dock's ledger when it is a dock in a fleet (nil: read from the store alone).
    let ledger: Ledger?
    let members: FleetMembers

    static func open(_ options: GlobalOptions) throws -> FleetReadSite {
        let configuration = try options.loadConfiguration()
        let client = S3Client(configuration: configuration, credentials: try Credentials.load(configuration.store.credentials))
        var ledger: Ledger?
        if FileManager.default.fileExists(atPath: configuration.ledgerPath) {
            let opened = try options.openLedger(configuration)
            if try opened.fleetState() != nil { ledger = opened }
        }
        if let ledger {
            FleetLink.syncQuietly(configuration: configuration, ledger: ledger, logger: Logger(label: "uploader.fleet"))
            return FleetReadSite(configuration: configuration, client: client, ledger: ledger, members: try FleetMembers.fromLedger(ledger))
        }
        return FleetReadSite(configuration: configuration, client: client, ledger: nil,
                             members: try FleetMembers.fromStore(client: client, prefix: configuration.store.prefix))
    }
}

extension FleetCommand {
    struct Status: BlockingCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every dock's status from the store: a line per dock (silent ones said so), fleet totals, late uploads per dock and officer.",
            discussion: "Needs only a configuration and (read-only) credentials. A status whose signature does not hold, or that a non-member signed, is named and never counted.")
        @OptionGroup var options: GlobalOptions
        @OptionGroup var display: OutputOptions

        func runBlocking() throws {
            try options.run {
                let site = try FleetReadSite.open(options)
                let report: FleetStatusReport
                if let ledger = site.ledger {
                    // At a dock, the fleet's alerts are claimed here too (once per fleet).
                    report = try FleetStatusPublisher.watch(configuration: site.configuration, ledger: ledger, client: site.client,
                                                            logger: Logger(label: "uploader.fleet"))
                } else {
                    report = try DockStatusReader(client: site.client, prefix: site.configuration.store.prefix, members: site.members,
                                                  silentAfter: site.configuration.fleet.silentAfter).read()
                }
                if display.json { return try Output.json(report) }
                for line in FleetStatusLines.lines(report) { print(line) }
            }
        }
    }

    struct Find: BlockingCommand {
        static let configuration = CommandConfiguration(
            abstract: "Where an officer's recordings of a time are: verified in the store (by key), or waiting at which dock.",
            discussion: "Times are ISO 8601 with their zone (2026-11-21T08:00:00Z) or a UTC day (2026-11-21); --to is not included.")
        @OptionGroup var options: GlobalOptions
        @Option(help: "The officer (user id) whose recordings to find.") var user: String
        @Option(help: "From this recording time (ISO 8601 with a zone, or a UTC day).") var from: String
        @Option(help: "Until this recording time (not included).") var to: String
        @OptionGroup var display: OutputOptions

        func runBlocking() throws {
            try options.run {
                try DisplayText.checkIdentifier(user, "the user")
                let start = try FleetFind.time(from, "--from")
                let end = try FleetFind.time(to, "--to")
                guard start < end else { throw UploaderError(.usage, "--from (\(Timestamps.iso(start))) must be before --to (\(Timestamps.iso(end)))") }
                guard end.timeIntervalSince(start) <= 366 * 86400 else { throw UploaderError(.usage, "--from and --to may be at most 366 days apart: search a year at a time") }
                let site = try FleetReadSite.open(options)
                let found = try FleetFind(site: site, user: user, from: start, to: end).run()
                if display.json { return try Output.json(found) }
                for line in found.lines { print(line) }
            }
        }
    }
}

/// `fleet status` as text.
enum FleetStatusLines {
    static func lines(_ report: FleetStatusReport) -> [String] {
        var lines: [String] = []
        for entry in report.docks {
            let dock = DisplayText.escaped(entry.dock)
            guard entry.trusted, let status = entry.status else {
                lines.append("\(dock)  \(entry.verdict.rawValue): \(DisplayText.escaped(entry.problem ?? "?"))\(entry.verdict == .missing ? "" : " (figures not counted)")")
                continue
            }
            let age = entry.ageSeconds.map { FleetStatusText.duration($0) + " ago" } ?? "?"
            var line = entry.silentSince.map { "\(dock)  SILENT since \($0) (\(age))" } ?? "\(dock)  ok (\(age))"
            if let ahead = entry.clockAheadSeconds {
                line += "  CLOCK OFF: \(FleetStatusText.offset(ahead)) the store's"
            }
            line += "  verified \(status.files["verified"]?.count ?? 0), waiting \(status.backlog.count) (\(ByteCount.format(status.backlog.bytes)))"
            if let held = status.files["quarantined"], held.count > 0 { line += ", held \(held.count)" }
            if let oldest = status.oldestWaitingFoundAt { line += ", oldest waiting found \(oldest)" }
            line += ", last verified \(status.lastVerifiedAt ?? "never")"
            if !status.docked.isEmpty { line += ", docked " + status.docked.map(DisplayText.escaped).joined(separator: " ") }
            if let free = status.spoolFreeBytes { line += ", spool free \(ByteCount.format(free))" }
            line += ", registry \(status.registryCommit.map(String.init) ?? "-"), late \(status.late.overall.text)"
            if let error = status.lastError { line += ", last error: \(DisplayText.escaped(String(error.prefix(160))))" }
            lines.append(line)
        }
        let silent = report.docks.filter(\.isSilent).count
        let untrusted = report.docks.filter { !$0.trusted && $0.verdict != .missing }.count
        let files = report.files
        lines.append("fleet: \(report.docks.count) docks, \(report.docks.filter { $0.trusted && !$0.isSilent }.count) reporting, \(silent) silent (no status for \(Configuration.Fleet.durationText(report.silentAfterSeconds))), \(untrusted) untrusted; "
                     + "verified \(files["verified"]?.count ?? 0), waiting \(report.backlog.count) (\(ByteCount.format(report.backlog.bytes))), held \(files["quarantined"]?.count ?? 0); "
                     + "late uploads (recorded in the last \(LateUploads.window) days, verified more than \(LateUploads.lateAfter) h later) \(report.late.text)")
        for (officer, count) in report.officers.sorted(by: { $0.key < $1.key }) {
            lines.append("  officer \(officer.isEmpty ? "(not attributed)" : DisplayText.escaped(officer)): late \(count.text)")
        }
        if let problem = report.membersProblem { lines.append("members: \(DisplayText.escaped(problem))") }
        return lines
    }
}

/// `fleet find`: an officer's recordings of a time, in the store and at the docks.
struct FleetFind {
    let site: FleetReadSite
    let user: String
    let from: Date
    let to: Date

    /// The key template's start that lets the store be searched by officer and day.
    static let searchableStart = "{prefix}/{user}/{yyyy}/{mm}/{dd}/"

    struct Verified: Codable {
        var key: String
        var recordedAt: String?
        var size: Int64
        var host: String?
    }

    struct Waiting: Codable {
        var dock: String
        var serial: String
        var name: String
        var recordedAt: String
        var state: String
        var bytes: Int64
        /// When the dock said so (its last status; a silent dock's list may be old).
        var asOf: String
    }

    struct Found: Codable {
        var user: String
        var from: String
        var to: String
        var verified: [Verified]
        /// Why the store could not be searched (another key template), if so.
        var storeNotSearched: String?
        var waiting: [Waiting]
        /// Recordings of that time held at a dock whose camera is not registered: nobody's yet.
        var heldUnattributed: [Waiting]
        /// Docks whose waiting list is missing or does not hold (not searched).
        var docksNotSearched: [String]

        var lines: [String] {
            var lines: [String] = []
            let who = DisplayText.escaped(user)
            if let storeNotSearched { lines.append("store: not searched: \(storeNotSearched)") }
            for file in verified {
                lines.append("verified in the store  \(DisplayText.terminalSafe(file.key))  recorded \(file.recordedAt ?? "at an unknown time (listed by its day)")  \(ByteCount.format(file.size))\(file.host.map { "  from \(DisplayText.escaped($0))" } ?? "")")
            }
            for file in waiting {
                lines.append("waiting at \(DisplayText.escaped(file.dock))  \(DisplayText.escaped(file.serial)) \(DisplayText.escaped(file.name))  recorded \(file.recordedAt)  \(file.state)  \(ByteCount.format(file.bytes))  (as of \(file.asOf))")
            }
            for file in heldUnattributed {
                lines.append("held at \(DisplayText.escaped(file.dock)), camera not registered (no officer yet)  \(DisplayText.escaped(file.serial)) \(DisplayText.escaped(file.name))  recorded \(file.recordedAt)")
            }
            for dock in docksNotSearched { lines.append("not searched: \(dock)") }
            lines.append("\(who), \(from) to \(to): \(verified.count) verified in the store, \(waiting.count) waiting at docks"
                         + (heldUnattributed.isEmpty ? "" : ", \(heldUnattributed.count) held at docks with no officer yet")
                         + (docksNotSearched.isEmpty ? "" : "; \(docksNotSearched.count) docks not searched"))
            return lines
        }
    }

    /// An ISO 8601 time with its zone, or a bare day (UTC midnight); anything else is one line of refusal.
    static func time(_ text: String, _ option: String) throws -> Date {
        let day = /^\d{4}-\d{2}-\d{2}$/
        let zoned = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/
        if text.wholeMatch(of: day) != nil, let date = try? Date(text + "T00:00:00Z", strategy: .iso8601) { return date }
        if text.wholeMatch(of: zoned) != nil {
            var normalized = text
            // Seconds are optional here, not in Foundation's parser.
            if text.range(of: #"T\d{2}:\d{2}(Z|[+-])"#, options: .regularExpression) != nil {
                normalized = text.replacingOccurrences(of: #"(T\d{2}:\d{2})"#, with: "$1:00", options: .regularExpression)
            }
            if let date = Timestamps.parse(normalized) { return date }
        }
        throw UploaderError(.usage, "\(option) \"\(DisplayText.escaped(text))\" is not a time: give ISO 8601 with its zone, like 2026-11-21T08:00:00Z, or a UTC day like 2026-11-21")
    }

    func run() throws -> Found {
        let configuration = site.configuration
        var found = Found(user: user, from: Timestamps.iso(from), to: Timestamps.iso(to), verified: [], storeNotSearched: nil, waiting: [],
                          heldUnattributed: [], docksNotSearched: [])
        if configuration.store.keyTemplate.hasPrefix(Self.searchableStart) {
            found.verified = try searchStore()
        } else {
            found.storeNotSearched = "the key template \(configuration.store.keyTemplate) does not begin with \(Self.searchableStart), so the store cannot be listed by officer and day; only the docks' waiting recordings are searched"
        }
        try searchDocks(into: &found)
        return found
    }

    /// Lists each UTC day's folder of the officer and keeps what its metadata says is theirs and of that time.
    func searchStore() throws -> [Verified] {
        let client = site.client
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        var day = calendar.startOfDay(for: from)
        var verified: [Verified] = []
        while day < to {
            let folder = ObjectKeyTemplate.render(Self.searchableStart, .init(prefix: site.configuration.store.prefix, user: user, serial: "",
                                                                              name: "", sha256: "", recordedAt: day, fileID: 0)) + "/"
            for key in try FleetStore.retrying({ try client.listObjectKeys(prefix: folder) }) {
                guard let head = try FleetStore.retrying({ try client.headObject(key: key) }) else { continue }
                // The key's user is sanitized; the metadata's is exact: never another officer's file.
                guard head.metadata["user"] == user else { continue }
                let recorded = head.metadata["recorded-at"].flatMap { $0.isEmpty ? nil : Timestamps.parse($0) }
                if let recorded, recorded < from || recorded >= to { continue }
                verified.append(Verified(key: key, recordedAt: recorded.map(Timestamps.iso), size: head.size, host: head.metadata["host"]))
            }
            day = calendar.date(byAdding: .day, value: 1, to: day)!
        }
        return verified
    }

    /// Each dock's signed list of recordings not verified yet.
    func searchDocks(into found: inout Found) throws {
        let client = site.client
        let prefix = site.configuration.store.prefix
        let (objects, _) = try FleetStore.retrying { try client.listObjects(prefix: FleetKeys.docksFolder(prefix: prefix)) }
        for object in objects where object.key.hasSuffix(".waiting.json") {
            let dock = String(object.key.dropFirst(FleetKeys.docksFolder(prefix: prefix).count).dropLast(".waiting.json".count))
            guard let bytes = try FleetStore.retrying({ try client.getSmall(key: object.key) }),
                  let list = try? DockWaiting.decode(bytes), list.format == DockWaiting.formatName else {
                found.docksNotSearched.append("\(DisplayText.escaped(dock)): its waiting list is not readable")
                continue
            }
            guard list.signatureHolds, list.dock == dock,
                  let fingerprint = RegistryChange.fingerprint(publicKeyHex: list.signer), site.members.docks[fingerprint] == dock else {
                found.docksNotSearched.append("\(DisplayText.escaped(dock)): its waiting list is unsigned, badly signed or not signed by that dock's member key")
                continue
            }
            if list.truncated { found.docksNotSearched.append("\(DisplayText.escaped(dock)): lists only its oldest \(list.recordings.count) waiting recordings") }
            for recording in list.recordings {
                guard let text = recording.recordedAt, let recorded = Timestamps.parse(text), recorded >= from, recorded < to else { continue }
                let waiting = Waiting(dock: dock, serial: recording.serial, name: recording.name, recordedAt: Timestamps.iso(recorded),
                                      state: recording.state, bytes: recording.bytes, asOf: list.at)
                if recording.user == user {
                    found.waiting.append(waiting)
                } else if recording.user == nil {
                    found.heldUnattributed.append(waiting)
                }
            }
        }
    }
}
