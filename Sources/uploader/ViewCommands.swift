import ArgumentParser
import Agent
import Foundation
import Ledger
import UploaderCore
import Platform

struct StatusCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "What is where: files per state and device, uploads in progress, problems, spool space.")
    @OptionGroup var options: GlobalOptions
    @OptionGroup var display: OutputOptions

    func runBlocking() throws {
        try options.run {
            let configuration = try options.loadConfiguration()
            let ledger = try options.openLedger(configuration, readOnly: true)
            let now = Date()
            let report = try StatusReport.make(configuration: configuration, ledger: ledger, now: now)
            if display.json { return try Output.json(report) }
            printHuman(report, now: now)
        }
    }

    func printHuman(_ report: StatusReport, now: Date) {
        print("uploader status — \(Output.local(now))")
        print("store \(report.store)   ledger \(report.ledger)")
        print("")
        let total = report.states.values.reduce(0) { $0 + $1.count }
        print("Files: \(total)")
        for state in FileState.allCases {
            guard let totals = report.states[state] else { continue }
            print("  \(state.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0)) \(String(totals.count).leftPad(6))  \(ByteCount.format(totals.bytes).leftPad(11))")
        }
        print("")
        print("Devices:")
        if report.devices.isEmpty { print("  none yet") }
        for device in report.devices {
            // A serial can come from the camera itself, and names from an admin: never raw to a terminal.
            let serial = DisplayText.terminalSafe(device.serial)
            let who = device.registered ? DisplayText.terminalSafe("\(device.defaultUser ?? "?")\(device.name.map { " (\($0))" } ?? "")") : "NOT REGISTERED"
            let counts = FileState.allCases.compactMap { state in device.states[state].map { "\($0.count) \(state.rawValue)" } }
            print("  \(serial.padding(toLength: 14, withPad: " ", startingAt: 0)) \(who.padding(toLength: 24, withPad: " ", startingAt: 0)) \(counts.joined(separator: ", "))"
                  + (device.lastDiscoveredAt.map { "; last docked \(Output.relative($0, now: now))" } ?? ""))
            if !device.registered {
                print("      → held until registered: uploader device add \(serial) --user ID")
            }
        }
        print("")
        if let oldest = report.oldestUnverified {
            print("Oldest not yet verified: #\(oldest.id) \(DisplayText.terminalSafe(oldest.sourcePath)) on \(DisplayText.terminalSafe(oldest.serial)), \(oldest.state.rawValue)\(oldest.holdReason.map { " (\($0.rawValue))" } ?? ""), found \(Output.relative(oldest.discoveredAt, now: now))")
        } else {
            print("Oldest not yet verified: none — everything is verified in the store")
        }
        if report.uploading.isEmpty {
            print("Uploading now: nothing")
        } else {
            print("Uploading now:")
            for item in report.uploading {
                let rate = item.bytesPerSecond.map { "\(ByteCount.format(Int64($0)))/s" } ?? "rate unknown"
                let eta = item.etaSeconds.map { "ETA \(Int($0))s" } ?? ""
                print("  #\(item.id) \(DisplayText.terminalSafe(item.sourcePath)) (\(DisplayText.terminalSafe(item.serial))) \(ByteCount.format(item.bytesSent)) of \(ByteCount.format(item.size)), \(rate) \(eta)")
            }
        }
        if !report.problems.isEmpty {
            print("")
            print("Problems (latest first):")
            for file in report.problems {
                print("  #\(file.id) \(DisplayText.terminalSafe(file.serial)) \(DisplayText.terminalSafe(file.sourcePath)): \(file.state.rawValue)\(file.holdReason.map { " (\($0.rawValue))" } ?? "") — \(DisplayText.terminalSafe(file.lastError ?? ""))")
            }
        }
        if report.tags.cases > 0 || report.tags.pendingInStore > 0 {
            print("")
            print("Cases: \(report.tags.cases) (\(report.tags.taggedFiles) files; `uploader log --case ID`, `uploader export --case ID`)"
                  + (report.tags.pendingInStore > 0 ? "; \(report.tags.pendingInStore) files' later tags wait for the store (the next upload run applies them)" : ""))
        }
        let checkpoints = report.unpublishedCheckpoints
        if checkpoints.count > 0, let oldest = checkpoints.oldestSignedAt {
            print("")
            print("Custody checkpoints: \(checkpoints.count) waiting for the store, the oldest signed \(Output.relative(oldest, now: now))"
                  + (report.checkpointsOverdue ? ": NOT IN THE STORE for over an hour (see `uploader store check` and `uploader log --level warning`)" : ""))
        }
        print("")
        print("Backlog: \(report.backlog.sentence(formatTime: Output.shortTime))")
        var spoolLine = "Spool: \(report.spool.files) files, \(ByteCount.format(report.spool.bytes)) in \(report.spool.path)"
        if let free = report.spool.freeBytes, let totalBytes = report.spool.totalBytes {
            spoolLine += "; disk \(ByteCount.format(free)) free of \(ByteCount.format(totalBytes))"
        }
        if let used = report.spool.usedPercent { spoolLine += String(format: " (%.0f%% used)", used) }
        print(spoolLine)
        if report.spool.holdingDocks {
            print("  → ABOVE THE HIGH WATERMARK: docked cameras keep their files until uploads are verified and purged")
        }
    }
}

struct LogCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "log", abstract: "The custody log: every step of every file, hash-chained.")
    @OptionGroup var options: GlobalOptions
    @Option(help: "Only events since this time (ISO 8601, or 30m, 2h, 7d ago).") var since: String?
    @Option(help: "Only events of this camera serial.") var device: String?
    @Option(help: "Only events of this user's files.") var user: String?
    @Option(help: "Only events of one file: its ledger id (#12) or part of its path or object key.") var file: String?
    @Option(name: .customLong("case"), help: "Only events of the files of this case (uploader tag --case).") var caseID: String?
    @Option(help: "Lowest level shown: debug, info, notice, warning, error.") var level: String = "info"
    @Option(help: "Show only the last N events.") var limit: Int?
    @OptionGroup var display: OutputOptions
    @Flag(help: "Keep printing new events as they are written.") var follow = false
    @Flag(help: "Recompute the hash chain and report whether the log is intact.") var verify = false

    func validate() throws {
        guard LedgerEvent.Level(rawValue: level) != nil else {
            throw ValidationError("--level \(level) is not a level: use debug, info, notice, warning or error")
        }
        _ = try TypedTime.since(since)
    }

    func runBlocking() throws {
        try options.run {
            let configuration = try options.loadConfiguration()
            let ledger = try options.openLedger(configuration, readOnly: true)
            if verify {
                let result = try ledger.verifyChain()
                if display.json { try Output.json(result) } else if result.intact {
                    print("custody log intact: \(result.events) events, every hash chain link verified")
                } else {
                    print("custody log BROKEN: \(result.problem ?? "")")
                }
                if !result.intact { throw ExitCode(ExitStatus.evidenceProblem.rawValue) }
                return
            }
            var filter = EventFilter(serial: device, user: user, minimumLevel: LedgerEvent.Level(rawValue: level) ?? .info, limit: limit)
            filter.caseID = caseID
            if let since {
                filter.since = try TypedTime.since(since)
            }
            if let file {
                if let id = Int64(file.trimmingCharacters(in: CharacterSet(charactersIn: "#"))) { filter.fileID = id } else { filter.pathContains = file }
            }
            // Events the agent's own user wrote (daemon, docks) need no "by"; an admin's do.
            let agent = ProcessIdentity.ownerName(of: configuration.stateDirectory)
            var lastID: Int64?
            if display.json && !follow {
                try Output.jsonArray { element in try ledger.forEachEvent(filter, element) }
            } else {
                try ledger.forEachEvent(filter) { try printEvent($0, agent: agent); lastID = $0.id }
            }
            guard follow else { return }
            filter.limit = nil
            while true {
                filter.afterID = lastID ?? filter.afterID ?? 0
                // Polling a WAL database is cheap, and a reader never blocks the writer.
                Thread.sleep(forTimeInterval: 1)
                try ledger.forEachEvent(filter) { try printEvent($0, agent: agent); lastID = $0.id }
                fflush(nil)
            }
        }
    }

    func printEvent(_ event: LedgerEvent, agent: String?) throws {
        if display.json {
            return try Output.jsonLine(event)
        }
        var subject: [String] = []
        if let serial = event.serial { subject.append(serial) }
        if let user = event.user { subject.append(user) }
        if let fileID = event.fileID { subject.append("#\(fileID)") }
        // An admin's action always names who did it (even when the admin runs as the agent's user);
        // the agent's own steps only when someone else ran them.
        let by = event.actor.flatMap { $0 == agent && !Self.adminActions.contains(event.kind) ? nil : " (by \(DisplayText.escaped($0)))" } ?? ""
        print("\(Output.local(event.at)) \(event.level.rawValue.uppercased().padding(toLength: 7, withPad: " ", startingAt: 0)) \(event.kind.rawValue.padding(toLength: 18, withPad: " ", startingAt: 0)) \(subject.isEmpty ? "" : "[\(DisplayText.terminalSafe(subject.joined(separator: " ")))] ")\(DisplayText.terminalSafe(event.message))\(by)")
    }

    /// Events only an admin's command writes.
    static let adminActions: Set<EventKind> = [
        .deviceRegistered, .deviceRemoved, .deviceAssigned, .deviceUnassigned,
        .fileTagged, .filePrioritized, .fileCancelled, .fileRetry,
        .spoolKeyAdded, .custodyExport,
    ]
}

extension String {
    func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
