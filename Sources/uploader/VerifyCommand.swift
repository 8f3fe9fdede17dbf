import Agent
import ArgumentParser
import Foundation
import Ledger
import Platform
import Transport
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
        var broken = false
        var incomplete = false
        try options.run {
            var selection = VerifySelection(files: files, device: device, user: user, caseID: caseID)
            selection.since = try TypedTime.since(since)
            let configuration = try options.loadConfiguration()
            let ledger = try options.openLedger(configuration, readOnly: true)
            let chain = try ledger.verifyChain()
            var store: S3Client?
            var storeNote: String?
            if !offline {
                do {
                    store = S3Client(configuration: configuration, credentials: try Credentials.load(configuration.store.credentials))
                } catch let error as UploaderError {
                    storeNote = "the store is not checked: \(error.message)"
                }
            }
            let verifier = CustodyVerifier(configuration: configuration, rules: ObjectRules(configuration: configuration, ledger: ledger))
            var counts = (files: 0, ok: 0, wrong: 0)
            var unchecked = 0
            try ledger.forEachFileRecord(selection) { record in
                let verdict = verifier.check(record, store: store)
                counts.files += 1
                if verdict.storeUnreachable { unchecked += 1 }
                if verdict.ok { counts.ok += 1 } else { counts.wrong += 1 }
                if display.json {
                    try Output.jsonLine(verdict)
                } else {
                    let subject = "#\(verdict.id) \(verdict.serial) \(verdict.sourcePath)"
                    // Notes say what was not checked: an "ok" hides none of them.
                    let notes = verdict.notes.isEmpty ? "" : " (note: \(verdict.notes.joined(separator: "; ")))"
                    print(DisplayText.terminalSafe(verdict.ok ? "\(subject): ok\(notes)" : "\(subject): \(verdict.problems.joined(separator: "; "))\(notes)"))
                }
            }
            let checkpoints = verifier.checkCheckpoints(ledger: ledger, store: store)
            broken = !chain.intact || counts.wrong > 0 || !checkpoints.problems.isEmpty
            // Objects that could not be checked are not "ok": say so, and exit 1 (unless something is wrong: 4).
            if unchecked > 0 {
                storeNote = "\(unchecked) objects NOT checked: the store could not be reached (see `uploader store check`; --offline checks the rest only)"
                incomplete = true
            }
            if !display.json {
                for problem in checkpoints.problems { print("custody: \(DisplayText.terminalSafe(problem))") }
                for note in checkpoints.notes { print("custody note: \(DisplayText.terminalSafe(note))") }
            }
            let chainText = chain.intact ? "custody log intact (\(chain.events) events)" : "custody log BROKEN: \(chain.problem ?? "")"
            if display.json {
                try Output.jsonLine(VerifySummary(files: counts.files, ok: counts.ok, wrong: counts.wrong, chainIntact: chain.intact,
                                                  chainEvents: chain.events, chainProblem: chain.problem, checkpoints: checkpoints,
                                                  store: storeNote ?? (offline ? "not checked (--offline)" : "checked")))
            } else {
                let anchored = checkpoints.problems.isEmpty ? checkpoints.storeLatest.map { "; the store's newest signed checkpoint (event \($0)) is in the log" } ?? "" : ""
                print("\(counts.files) files: \(counts.ok) ok, \(counts.wrong) with problems; \(chainText); \(checkpoints.local) checkpoints signed\(anchored)\(storeNote.map { "; \($0)" } ?? "")")
            }
        }
        if broken { throw ExitCode(ExitStatus.evidenceProblem.rawValue) }
        if incomplete { throw ExitCode(ExitStatus.failure.rawValue) }
    }
}

struct VerifySummary: Encodable {
    var files: Int
    var ok: Int
    var wrong: Int
    var chainIntact: Bool
    var chainEvents: Int
    var chainProblem: String?
    var checkpoints: CheckpointVerdict
    var store: String
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
