import Agent
import ArgumentParser
import Foundation
import Ledger
import Platform
import Transport
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
            if let category, configuration.categories.categories[category] == nil {
                let known = configuration.categories.categories.keys.sorted()
                throw UploaderError(.usage, "there is no category \"\(category)\": \(known.isEmpty ? "define one under [categories.NAME] in \(configuration.sourcePath)" : "known categories are \(known.joined(separator: ", "))")")
            }
            var selection = VerifySelection(files: files, device: device, user: user)
            selection.recordedFrom = try TypedTime.absolute(from, option: "from")
            selection.recordedTo = try TypedTime.absolute(to, option: "to")
            let ledger = try options.openLedger(configuration)
            let rules = ObjectRules(configuration: configuration, ledger: ledger)
            let client = (try? Credentials.load(configuration.store.credentials)).map { S3Client(configuration: configuration, credentials: $0) }
            // A lock the bucket cannot enforce is refused before anything is written.
            let locks = client.map { StoreAnswerCache(client: $0) }
            if let name = category, let wanted = configuration.categories.categories[name], wanted.lockMode != nil || wanted.holdsLegally,
               let locks, let enforced = try? locks.get(), !enforced {
                throw UploaderError(.config, "category \(name) locks its files, but bucket \(configuration.store.bucket) has no Object Lock: use a bucket created with Object Lock (see `uploader store check`), or set lock = \"none\" in [categories.\(name)]")
            }
            var ids: [Int64] = []
            try ledger.forEachFileRecord(selection) { ids.append($0.file.id) }
            guard !ids.isEmpty else { throw UploaderError(.notFound, "no file in the ledger matches: see `uploader status` or `uploader device show SERIAL`") }
            var stored = 0, pending = 0, beforeUpload = 0
            for start in stride(from: 0, to: ids.count, by: 500) {
                for file in try ledger.tag(Array(ids[start..<min(ids.count, start + 500)]), with: tags) {
                    guard file.storeTagsPending else {
                        beforeUpload += file.state == .verified ? 0 : 1
                        continue
                    }
                    guard file.state == .verified, let client, let locks else { pending += 1; continue }
                    do {
                        let message = try StoreTagging.apply(file, rules: rules, client: client, bucketLocks: locks.get)
                        print("#\(file.id) \(DisplayText.terminalSafe(message))")
                        stored += 1
                    } catch {
                        let message = (error as? UploaderError)?.message ?? "\(error)"
                        try? ledger.markStoreTagsPending(file.id, reason: message)
                        print("#\(file.id) tagged in the ledger; the stored object follows with the next upload run: \(DisplayText.terminalSafe(message))")
                        pending += 1
                    }
                }
            }
            print("tagged \(ids.count) file\(ids.count == 1 ? "" : "s") (\(DisplayText.escaped(tags.summary))): \(stored) stored object\(stored == 1 ? "" : "s") updated, \(pending) waiting for the store, \(beforeUpload) not uploaded yet (the tags go with the upload)")
        }
    }
}
