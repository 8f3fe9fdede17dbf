import Agent
import ArgumentParser
import Foundation
import Ledger
import UploaderCore

struct TagCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "tag",
        abstract: "Set the case, incident, retention category or a note of files; the store's copy follows.",
        discussion: """
        Each change is a custody event naming who tagged. Before upload, the tags go with the object
        (S3 object tags case/incident/category, and the category's Object Lock retention, counted
        from the recording time, and legal hold). After upload they are applied to the stored object
        at once, or by the next upload run if the store cannot be reached: tags are replaced, a
        retention is only ever extended (or made COMPLIANCE), a legal hold is set. A category with a
        lock is refused when the bucket has no Object Lock. Case and incident follow the store's rules
        for tags (up to 256 letters, digits, spaces and + - = . _ : / @); the lock is always applied
        before the tags.
        """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Files: a ledger id (#12) or part of a path or object key.") var files: [String] = []
    @Option(help: "All files of this camera serial.") var device: String?
    @Option(help: "All files of this user.") var user: String?
    @Option(help: "Only files recorded at or after this time (ISO 8601).") var from: String?
    @Option(help: "Only files recorded at or before this time (ISO 8601).") var to: String?
    @Option(name: .customLong("case"), help: "The case id.") var caseID: String?
    @Option(help: "The incident number.") var incident: String?
    @Option(help: "The retention category (a [categories.NAME] of the configuration).") var category: String?
    @Option(help: "A note.") var note: String?

    var tags: FileTags { FileTags(caseID: caseID, incident: incident, category: category, note: note) }

    func validate() throws {
        guard !files.isEmpty || device != nil || user != nil || from != nil || to != nil else {
            throw ValidationError("say which files to tag: FILE…, --device SERIAL, --user USER, or --from/--to recording times")
        }
        guard !tags.isEmpty else { throw ValidationError("say what to set: --case ID, --incident N, --category NAME and/or --note TEXT") }
        // Case and incident become object tags: what the store would refuse is refused here, before anything changes.
        if let problem = tags.problem { throw ValidationError(problem) }
        _ = try TypedTime.absolute(from, option: "from")
        _ = try TypedTime.absolute(to, option: "to")
    }

    func runBlocking() throws {
        try options.run {
            let configuration = try options.loadConfiguration()
            try FileTagging.checkCategory(category, configuration: configuration)
            var selection = VerifySelection(files: files, device: device, user: user)
            selection.recordedFrom = try TypedTime.absolute(from, option: "from")
            selection.recordedTo = try TypedTime.absolute(to, option: "to")
            let counts = try FileTagging.tag(selection, with: tags, configuration: configuration, ledger: try options.openLedger(configuration)) { id, line in
                print("#\(id) \(DisplayText.terminalSafe(line))")
            }
            let (stored, pending) = (counts.stored, counts.waitingForStore)
            print("tagged \(counts.files) file\(counts.files == 1 ? "" : "s") (\(DisplayText.escaped(tags.summary))): \(stored) stored object\(stored == 1 ? "" : "s") updated, \(pending) waiting for the store, \(counts.beforeUpload) not uploaded yet (the tags go with the upload)")
        }
    }
}
