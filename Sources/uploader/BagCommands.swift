import Agent
import Crypto
import ArgumentParser
import Foundation
import Synchronization
import Ledger
import Transport
import UploaderCore

struct ExportCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write an evidence bag (BagIt, RFC 8493) of verified files, downloaded from the store, with their custody.",
        discussion: """
        Each file is downloaded from the store and checked against the camera's SHA-256 while it streams.
        The bag holds data/, manifest-sha256.txt and manifest-sha512.txt, bag-info.txt (agency, officer,
        camera, dock, recording, ingest and verification times, Payload-Oxum), custody/ (each file's
        ledger row, the chain of events from the files' events to a checkpoint the dock signed, the
        checkpoint and the dock's public key) and tagmanifest-sha256.txt. Check it anywhere, offline,
        with `uploader verify-bag DIR` or `bagit.py --validate DIR`.
        """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "Files: a ledger id (#12) or part of a path or object key.") var files: [String] = []
    @Option(help: "Only files of this camera serial.") var device: String?
    @Option(help: "Only files of this user.") var user: String?
    @Option(name: .customLong("case"), help: "Only files of this case (uploader tag --case).") var caseID: String?
    @Option(help: "Only files recorded at or after this time (ISO 8601).") var from: String?
    @Option(help: "Only files recorded at or before this time (ISO 8601).") var to: String?
    @Option(name: .shortAndLong, help: "The bag's folder (new or empty).") var output: String
    @OptionGroup var display: OutputOptions

    func validate() throws {
        guard !files.isEmpty || device != nil || user != nil || caseID != nil || from != nil || to != nil else {
            throw ValidationError("say which files to export: FILE…, --device SERIAL, --user USER, --case ID, or --from/--to recording times")
        }
        _ = try TypedTime.absolute(from, option: "from")
        _ = try TypedTime.absolute(to, option: "to")
    }

    func runBlocking() throws {
        try options.run {
            let selection = VerifySelection(files: files, device: device, user: user, caseID: caseID)
            let recordedFrom = try TypedTime.absolute(from, option: "from"), recordedTo = try TypedTime.absolute(to, option: "to")
            let configuration = try options.loadConfiguration()
            let output = self.output.hasPrefix("/") ? self.output : FileManager.default.currentDirectoryPath + "/" + self.output
            try BagExporter.prepareFolder(output, configuration: configuration)
            let ledger = try options.openLedger(configuration)
            let client = S3Client(configuration: configuration, credentials: try Credentials.load(configuration.store.credentials))
            // A live line on a terminal: the file, its bytes so far, the rate.
            let current = Mutex((file: "", done: Int64(0), size: Int64(0)))
            let line = ProgressLine(enabled: display.showsProgress) {
                let now = current.withLock { $0 }
                return "\(now.file)  \(ByteCount.format(now.done)) of \(ByteCount.format(now.size))"
            }
            line.start()
            let report: BagReport
            do {
                report = try BagExporter(configuration: configuration, ledger: ledger).exportRecorded(
                    selection, recordedFrom: recordedFrom, recordedTo: recordedTo, to: output, client: client) { file, done, size in
                    current.withLock { $0 = (file, done, size) }
                }
            } catch {
                line.stop()
                throw error
            }
            line.stop()
            if display.json { try Output.json(report) } else {
                print("wrote \(DisplayText.terminalSafe(output)): \(report.files) files, \(ByteCount.format(report.bytes)), custody chain to the signed checkpoint at event \(report.checkpointEventID)")
                for line in report.skipped { print("  not exported: \(DisplayText.terminalSafe(line))") }
                print("check it with: uploader verify-bag \(DisplayText.terminalSafe(output))")
            }
        }
    }
}

struct VerifyBagCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-bag",
        abstract: "Check an evidence bag offline: manifests, payload, signed checkpoint, custody chain, each file's record, and who signed it.",
        discussion: """
        The bag carries the key that signed its checkpoint, so a forger who rebuilds a bag signs it with a key of their own. \
        verify-bag prints the signing key's fingerprint and checks it against a trust anchor outside the bag: \
        --trusted-keys FILE (the fingerprints the agency publishes for its docks, one a line, # starts a comment; \
        `uploader key fingerprint` prints a dock's) and/or --store (the key the dock wrote, once, to the configured store). \
        With --trusted-keys alone it needs nothing but the bag and the file.

        Exit status: 0 valid and signed by a key an anchor vouches for; 8 valid inside, but no anchor was given \
        (the signature is unanchored: it proves nothing about who made the bag); 4 something is wrong, including \
        a key the anchor does not vouch for; 2 a usage error (an unreadable trusted-keys file); 1 the store could not be asked; 7 the store refused our credentials. See docs/exit-codes.md.
        """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "The bag's folder.") var directory: String
    @Option(name: .customLong("trusted-keys"), help: "A file of the signing-key fingerprints the agency vouches for, one a line.") var trustedKeys: String?
    @Flag(help: "Check the signing key against the dock key held in the configured store.") var store = false
    @OptionGroup var display: OutputOptions

    func runBlocking() throws {
        try options.run {
            // A mistyped path is a usage error, not evidence that a bag was tampered with.
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isFolder), isFolder.boolValue else {
                throw UploaderError(.usage, "\(directory) is not a folder: give the folder `uploader export` wrote the bag into")
            }
            var anchors: [BagTrustAnchor] = []
            if let trustedKeys { anchors.append(try BagTrustAnchor.trustedKeys(file: trustedKeys)) }
            if store {
                let configuration = try options.loadConfiguration()
                let client = S3Client(configuration: configuration, credentials: try Credentials.load(configuration.store.credentials))
                anchors.append(.store(client, prefix: configuration.store.prefix))
            }
            var verdict = BagVerifier.verify(directory)
            try BagVerifier.anchor(&verdict, to: anchors)
            if display.json { try Output.json(verdict) } else { show(verdict) }
            if !verdict.valid { throw ExitCode(ExitStatus.evidenceProblem.rawValue) }
            if !verdict.anchored { throw ExitCode(ExitStatus.unanchored.rawValue) }
        }
    }

    func show(_ verdict: BagVerdict) {
        // Everything in a bag may come from a forger: nothing of it reaches the terminal raw.
        let shown = DisplayText.terminalSafe(directory)
        for problem in verdict.problems { print("problem: \(DisplayText.terminalSafe(problem))") }
        if let fingerprint = verdict.keyFingerprint {
            print("signed by key \(Ed25519PublicKey.grouped(fingerprint)) (dock \(DisplayText.escaped(verdict.dock ?? "?")))")
        }
        for anchor in verdict.vouchedBy { print("key vouched for: \(DisplayText.terminalSafe(anchor))") }
        guard verdict.valid else {
            print("\(shown): NOT VALID: \(verdict.problems.count) problem\(verdict.problems.count == 1 ? "" : "s")")
            return
        }
        print("\(shown): valid: \(verdict.files) files, \(ByteCount.format(verdict.bytes)); \(verdict.events) custody events recomputed up to the signed checkpoint at event \(verdict.checkpointEventID ?? 0)")
        if !verdict.anchored {
            print("UNANCHORED: signed by key \(Ed25519PublicKey.grouped(verdict.keyFingerprint ?? "")), which no trust anchor vouches for: pass --trusted-keys FILE (the fingerprints your agency publishes; `uploader key fingerprint` prints a dock's) or --store; until then the signature proves nothing about who made this bag")
        }
    }
}
