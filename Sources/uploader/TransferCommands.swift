import ArgumentParser
import Foundation
import Ingest
import Agent
import Ledger
import Platform
import Logging
import SystemPackage
import Transport
import UploaderCore

struct IngestCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest", abstract: "Copy a camera volume's media into the spool with SHA-256 proof.",
        discussion: "Exit status: 0 all secured, 1 some files failed or were quarantined, 3 stopped early (camera removed or spool full).")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "The mounted camera volume (or any folder).") var path: String
    @Option(help: "The camera's serial number.") var serial: String
    @OptionGroup var display: OutputOptions

    func runBlocking() throws {
        var exit = ExitStatus.success
        try options.run {
            // Typed by an admin, the serial names the camera in every row, event and object key: refused before anything is copied.
            try DisplayText.checkIdentifier(serial, "the serial")
            let configuration = try options.loadConfiguration()
            let ledger = try options.openLedger(configuration)
            let ingestor = Ingestor(configuration: configuration, ledger: ledger, logger: Logger(label: "uploader.ingest"))
            // Ctrl-C or SIGTERM ends the copy cleanly: no half file, the ledger says so.
            TerminationSignals.install()
            let counters = ingestor.progress
            let progress = ProgressLine(enabled: display.showsProgress) { counters.line }
            progress.start()
            let report = try ingestor.ingest(volume: path, serial: serial, stop: TerminationSignals.flag)
            progress.stop()
            FleetStatusPublisher.publishQuietly(configuration: configuration, ledger: ledger, logger: Logger(label: "uploader.ingest"), quick: true)
            if display.json {
                try Output.json(report)
            } else {
                if report.leftOnCamera > 0 {
                    print("\(report.leftOnCamera) file\(report.leftOnCamera == 1 ? "" : "s") left on the camera: the spool is above its high watermark")
                }
                print("ingest \(DisplayText.terminalSafe(path)) (camera \(DisplayText.escaped(serial))): \(report.copied) copied (\(ByteCount.format(report.bytesCopied))), \(report.alreadySecured) already secured, \(report.held) held, \(report.quarantined) quarantined, \(report.failed) failed" + (report.waitingToSettle > 0 ? ", \(report.waitingToSettle) still being written" : ""))
                if report.held > 0 {
                    print("camera \(DisplayText.escaped(serial)) is not registered: its files are secured in the spool and held; run `uploader device add \(DisplayText.escaped(serial)) --user ID` to release them")
                }
            }
            if let reason = report.stoppedBecause {
                FileHandle.standardError.write(Data("error: \(reason)\n".utf8))
                exit = .interrupted
            } else if report.failed > 0 || report.quarantined > 0 {
                exit = .failure
            }
        }
        if exit != .success { throw ExitCode(exit.rawValue) }
    }
}

/// Files named on the command line, by id, path, serial or user.
struct FileSelection: ParsableArguments {
    @Option(help: "All files of this camera serial.") var device: String?
    @Option(help: "All files of this user.") var user: String?
    @Argument(help: "Files: ledger id (#12) or part of the camera path or object key.") var files: [String] = []

    var isEmpty: Bool { device == nil && user == nil && files.isEmpty }

    func resolve(_ ledger: Ledger) throws -> [MediaFile] {
        let selected = try ledger.select(files: files, serial: device, user: user)
        if selected.isEmpty, !isEmpty {
            throw UploaderError(.notFound, "no file in the ledger matches \((files + [device, user].compactMap { $0 }).joined(separator: ", ")): see `uploader status` or `uploader device show SERIAL`")
        }
        return selected
    }
}

struct UploadCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "upload", abstract: "Upload spooled files to the evidence store and verify them there.",
        discussion: """
        Runs only inside the [schedule] windows unless --now is given. Ctrl-C or SIGTERM stops
        between parts (a part in flight is dropped); finished parts are kept for the next run.
        Exit status: 0 all verified (or nothing to do), 1 some files failed, 7 the store refused this site (credentials, bucket, TLS, encryption): see docs/exit-codes.md.
        """)
    @OptionGroup var options: GlobalOptions
    @Flag(help: "Upload now, even outside the upload windows.") var now = false
    @OptionGroup var selection: FileSelection
    @OptionGroup var display: OutputOptions

    func runBlocking() throws {
        var exit = ExitStatus.success
        try options.run {
            let configuration = try options.loadConfiguration()
            let credentials = try Credentials.load(configuration.store.credentials)
            let ledger = try options.openLedger(configuration)
            let ids = selection.isEmpty ? nil : try selection.resolve(ledger).map(\.id)
            let runner = UploadRunner(configuration: configuration, credentials: credentials, ledger: ledger,
                                      logger: Logger(label: "uploader.upload"))
            TerminationSignals.install()
            let progress = ProgressLine(ledger: ledger, enabled: display.showsProgress)
            progress.start()
            let report = try runner.run(ids: ids, force: now, stop: TerminationSignals.flag)
            progress.stop()
            // Space for the next docks, due alerts, fresh metrics.
            Housekeeping.run(configuration: configuration, ledger: ledger, logger: Logger(label: "uploader.upload"))
            if display.json {
                try Output.json(report)
            } else if report.windowClosed {
                let windows = configuration.schedule.windows.map(\.text).joined(separator: ", ")
                print("outside the upload windows (\(windows)); next one opens \(report.nextWindowOpens.map(Output.local) ?? "never"); use --now to upload anyway")
            } else {
                print("upload: \(report.verified) verified, \(report.failed) failed, \(ByteCount.format(report.bytesSent)) sent, \(report.retries) retries"
                      + (report.paused ? "; paused, the rest resumes on the next run" : "")
                      + (report.staleUploadsAborted > 0 ? "; \(report.staleUploadsAborted) abandoned multipart uploads aborted" : ""))
            }
            if let reason = report.stoppedBecause {
                FileHandle.standardError.write(Data("error: \(reason)\n".utf8))
                exit = .storeRefused
            } else if report.failed > 0 {
                exit = .failure
            }
        }
        if exit != .success { throw ExitCode(exit.rawValue) }
    }
}

struct AlertsCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "alerts", abstract: "Check the alert conditions now and send the ones due ([monitoring]).")
    @OptionGroup var options: GlobalOptions
    @Flag(help: "Only list what is due; send nothing.") var dryRun = false
    @OptionGroup var display: OutputOptions

    func runBlocking() throws {
        try options.run {
            let configuration = try options.loadConfiguration()
            let alerts = try AlertDispatcher(configuration: configuration, ledger: try options.openLedger(configuration),
                                             logger: Logger(label: "uploader.alerts")).run(send: !dryRun)
            if display.json { return try Output.json(alerts) }
            if alerts.isEmpty { print("no alert due"); return }
            for alert in alerts { print(DisplayText.terminalSafe("\(dryRun ? "due" : "sent"): [\(alert.key)] \(alert.message)")) }
        }
    }
}

struct MetricsCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics", abstract: "Print Prometheus metrics (or --write the [monitoring] metrics_textfile).")
    @OptionGroup var options: GlobalOptions
    @Flag(help: "Write the textfile instead of printing.") var write = false

    func runBlocking() throws {
        try options.run {
            let configuration = try options.loadConfiguration()
            let ledger = try options.openLedger(configuration, readOnly: !write)
            if write {
                try MetricsFile.write(configuration: configuration, ledger: ledger)
                print("wrote \(configuration.monitoring.metricsTextfile ?? "nothing: [monitoring] metrics_textfile is not set")")
            } else {
                print(try MetricsFile.text(configuration: configuration, ledger: ledger), terminator: "")
            }
        }
    }
}

struct PurgeCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge", abstract: "Delete spool copies of files verified in the store more than [spool] keep_verified_days ago.")
    @OptionGroup var options: GlobalOptions
    @Flag(help: "Only say what would be deleted.") var dryRun = false

    func runBlocking() throws {
        try options.run {
            let configuration = try options.loadConfiguration()
            let result = try SpoolPurger(configuration: configuration, ledger: try options.openLedger(configuration)).purge(dryRun: dryRun)
            print("\(dryRun ? "would delete" : "deleted") \(result.files) verified spool cop\(result.files == 1 ? "y" : "ies") (\(ByteCount.format(result.bytes)))")
        }
    }
}

struct PrioritizeCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "prioritize", abstract: "Move files ahead of the upload queue (higher priority goes first).")
    @OptionGroup var options: GlobalOptions
    @OptionGroup var selection: FileSelection
    @Option(help: "The priority (default 10; 0 is normal).") var priority = 10

    func validate() throws {
        if selection.isEmpty { throw ValidationError("name files, --device or --user") }
    }

    func runBlocking() throws {
        try options.run {
            let ledger = try options.openLedger(try options.loadConfiguration())
            let files = try selection.resolve(ledger).filter { $0.state != .verified }
            try ledger.prioritize(files.map(\.id), priority: priority)
            print("priority \(priority) for \(files.count) file\(files.count == 1 ? "" : "s") not yet verified")
        }
    }
}

struct CancelCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel", abstract: "Stop uploading files: aborts their multipart uploads on the store, keeps the spool copies.")
    @OptionGroup var options: GlobalOptions
    @OptionGroup var selection: FileSelection

    func validate() throws {
        if selection.isEmpty { throw ValidationError("name files or --device") }
    }

    func runBlocking() throws {
        try options.run {
            let configuration = try options.loadConfiguration()
            let ledger = try options.openLedger(configuration)
            let cancelled = try UploadCancellation.cancel(try selection.resolve(ledger), configuration: configuration, ledger: ledger) { id, reason in
                print("#\(id) not cancelled: \(DisplayText.terminalSafe(reason))")
            }
            print("cancelled \(cancelled) file\(cancelled == 1 ? "" : "s"); their spool copies are kept")
        }
    }
}

struct RetryCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry", abstract: "Queue failed (or cancelled) files again, without waiting for their backoff.")
    @OptionGroup var options: GlobalOptions
    @OptionGroup var selection: FileSelection
    @Flag(help: "Every failed file.") var allFailed = false

    func validate() throws {
        if selection.isEmpty == !allFailed { throw ValidationError("name files, --device, --user, or --all-failed") }
    }

    func runBlocking() throws {
        try options.run {
            let ledger = try options.openLedger(try options.loadConfiguration())
            let ids = allFailed ? try ledger.failedFileIDs() : try selection.resolve(ledger).map(\.id)
            let changed = try ledger.retryNow(ids)
            print("queued \(changed.count) file\(changed.count == 1 ? "" : "s") again; they go up on the next upload run (or `uploader upload --now`)")
        }
    }
}

struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store", abstract: "Check the evidence store.", subcommands: [Check.self, CreateBucket.self])

    struct Check: BlockingCommand {
        static let configuration = CommandConfiguration(abstract: "Sign a request with the configured credentials and report what the store says.")
        @OptionGroup var options: GlobalOptions

        func runBlocking() throws {
            try options.run {
                let configuration = try options.loadConfiguration()
                let client = S3Client(configuration: configuration, credentials: try Credentials.load(configuration.store.credentials))
                let check = try StoreCheck.run(configuration: configuration, client: client)
                print("\(configuration.store.endpoint) bucket \(configuration.store.bucket): reachable, credentials accepted")
                switch check.versioning {
                case "Enabled": print("versioning: enabled (an overwritten or deleted object keeps its earlier versions)")
                case "Suspended": print("versioning: suspended (an overwrite or delete replaces the object for good)")
                default: print("versioning: off (an overwrite or delete replaces the object for good)")
                }
                if check.checksums.enforced {
                    print("checksums: enforced (an upload whose bytes do not match its SHA-256 is refused by the store)")
                } else {
                    print("checksums: NOT enforced (the store accepted a scratch upload with a wrong SHA-256): every upload is read back and hashed before it counts as verified")
                }
                if let leftover = check.checksums.leftover { print("note: the probe's scratch object \(leftover) could not be deleted; delete it in the store") }
                let locking = check.lockingCategories
                if check.objectLock {
                    print("Object Lock: enabled (custody checkpoints are locked in governance mode for \(configuration.custody.checkpointRetentionDays) days)")
                    if !locking.isEmpty { print("categories the store locks: \(locking.joined(separator: ", "))") }
                } else {
                    print("Object Lock: off (custody checkpoints are write-once for this agent only; a bucket admin could delete them: use a bucket created with Object Lock)")
                    if !locking.isEmpty {
                        print("REFUSED: categories \(locking.joined(separator: ", ")) lock their files, which this bucket cannot enforce: their files are not uploaded (and `uploader tag` refuses them) until the bucket has Object Lock or the categories have lock = \"none\"")
                    }
                }
            }
        }
    }

    struct CreateBucket: BlockingCommand {
        static let configuration = CommandConfiguration(commandName: "create-bucket", abstract: "Create the configured bucket (for a new or local store).", shouldDisplay: false)
        @OptionGroup var options: GlobalOptions
        @Flag(help: "Create it with Object Lock (and so versioning) enabled.") var objectLock = false

        func runBlocking() throws {
            try options.run {
                let configuration = try options.loadConfiguration()
                let client = S3Client(configuration: configuration, credentials: try Credentials.load(configuration.store.credentials))
                if objectLock { try client.createLockedBucket() } else { try client.createBucket() }
                print("bucket \(configuration.store.bucket) ready\(objectLock ? " (Object Lock enabled)" : "")")
            }
        }
    }
}

struct SimulateCameraCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate-camera",
        abstract: "Write a camera volume with generated MP4 recordings (for demos and tests).",
        shouldDisplay: false)
    @Argument(help: "Folder to create.") var folder: String
    @Option(help: "Number of recordings.") var files = 3
    @Option(help: "Payload bytes per recording (e.g. 8MiB).") var size = "2MiB"
    @Option(help: "Recording time of the first file (ISO 8601); the rest follow 10 minutes apart.") var start = "2026-11-23T21:00:00Z"
    @Option(help: "Seed for the generated bytes.") var seed: UInt64 = 1

    func validate() throws {
        guard ConfigurationLoader.parseByteSize(size) != nil else { throw ValidationError("--size \(size) is not a size") }
        _ = try TypedTime.absolute(start, option: "start")
    }

    func runBlocking() throws {
        let payload = ConfigurationLoader.parseByteSize(size)!
        let first = try TypedTime.absolute(start, option: "start")!
        let media = folder + "/DCIM/100BWC"
        try FileManager.default.createDirectory(atPath: media, withIntermediateDirectories: true)
        for index in 0..<files {
            let recorded = first.addingTimeInterval(Double(index) * 600)
            let path = media + String(format: "/VID%04d.MP4", index + 1)
            let fd = try FileDescriptor.open(FilePath(path), .writeOnly, options: [.create, .truncate], permissions: [.ownerReadWrite, .groupRead, .otherRead])
            try fd.closeAfter {
                try MP4Writer.write(to: fd, recordedAt: recorded, payloadSize: payload, seed: seed &+ UInt64(index))
            }
            // Cameras stamp the file when recording ends; keep the file time near the recording.
            try? Syscall.setTimes(path, to: recorded.addingTimeInterval(300))
            print(path)
        }
    }
}

struct HousekeepingCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "housekeeping",
        abstract: "One housekeeping pass, as the daemon runs every minute: purge, alerts, metrics textfile.")
    @OptionGroup var options: GlobalOptions

    func runBlocking() throws {
        try options.run {
            let configuration = try options.loadConfiguration()
            Housekeeping.run(configuration: configuration, ledger: try options.openLedger(configuration),
                             logger: Logger(label: "uploader.housekeeping"))
        }
    }
}
