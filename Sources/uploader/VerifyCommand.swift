import Agent
import ArgumentParser
import Foundation
import Ledger
import UploaderCore

struct VerifyCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check files against everything that vouches for them: the custody log, the registry, the spool copy, the store.",
        discussion: """
        Recomputes the custody log's hash chain, then for each selected file: the ledger row against
        the event that last recorded it (a row edited behind the ledger's back is caught), the user
        against the custody period at the recording time, the spool copy's SHA-256 (while one is
        kept), and the object in the store (HEAD: size, checksum, metadata). One verdict line per
        file. Exit status: 0 all ok; 4 something is wrong (each line says what, and since which
        event); 1 the check itself could not run.
        """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Files: a ledger id (#12) or part of a path or object key.") var files: [String] = []
    @Option(help: "Only files of this camera serial.") var device: String?
    @Option(help: "Only files of this user.") var user: String?
    @Option(help: "Only files discovered since this time (ISO 8601, or 30m, 2h, 7d ago).") var since: String?
    @Option(name: .customLong("case"), help: "Only files of this case (uploader tag --case).") var caseID: String?
    @Flag(help: "Every file in the ledger.") var all = false
    @Flag(help: "Do not contact the store (no HEAD of the objects).") var offline = false
    @OptionGroup var display: OutputOptions

    func validate() throws {
        _ = try TypedTime.since(since)
        guard all || !files.isEmpty || device != nil || user != nil || since != nil || caseID != nil else {
            throw ValidationError("say which files to verify: FILE…, --device SERIAL, --user USER, --case ID, --since TIME or --all")
        }
    }

    func runBlocking() throws {
        var status = ExitStatus.success
        try options.run {
            var selection = VerifySelection(files: files, device: device, user: user, caseID: caseID)
            selection.since = try TypedTime.since(since)
            let configuration = try options.loadConfiguration()
            let ledger = try options.openLedger(configuration, readOnly: true)
            let result = try CustodyVerification.run(configuration: configuration, ledger: ledger, selection: selection, offline: offline) { verdict in
                if display.json { return try Output.jsonLine(verdict) }
                let subject = "#\(verdict.id) \(verdict.serial) \(verdict.sourcePath)"
                // Notes say what was not checked: an "ok" hides none of them.
                let notes = verdict.notes.isEmpty ? "" : " (note: \(verdict.notes.joined(separator: "; ")))"
                print(DisplayText.terminalSafe(verdict.ok ? "\(subject): ok\(notes)" : "\(subject): \(verdict.problems.joined(separator: "; "))\(notes)"))
            }
            status = result.exitStatus
            if display.json { return try Output.jsonLine(result.summary) }
            let checkpoints = result.checkpoints
            for problem in checkpoints.problems { print("custody: \(DisplayText.terminalSafe(problem))") }
            for note in checkpoints.notes { print("custody note: \(DisplayText.terminalSafe(note))") }
            let chain = result.chain
            let chainText = chain.intact ? "custody log intact (\(chain.events) events)" : "custody log BROKEN: \(chain.problem ?? "")"
            let anchored = checkpoints.problems.isEmpty ? checkpoints.storeLatest.map { "; the store's newest signed checkpoint (event \($0)) is in the log" } ?? "" : ""
            print("\(result.files) files: \(result.ok) ok, \(result.wrong) with problems; \(chainText); \(checkpoints.local) checkpoints signed\(anchored)\(result.storeNote.map { "; \($0)" } ?? "")")
        }
        if status != .success { throw ExitCode(status.rawValue) }
    }
}

extension VerifySelection {
    /// From the command line: `#12` or `12` is a ledger id, anything else part of a path or key.
    init(files: [String], device: String?, user: String?, caseID: String? = nil) {
        self.init()
        self.caseID = caseID
        for file in files {
            if let id = Int64(file.trimmingCharacters(in: CharacterSet(charactersIn: "#"))) { ids.append(id) } else { pathContains.append(file) }
        }
        serial = device
        self.user = user
    }
}
