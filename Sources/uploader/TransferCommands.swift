import ArgumentParser
import Foundation
import Ingest
import Logging
import SystemPackage
import Transport
import UploaderCore

struct IngestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest", abstract: "Copy a camera volume's media into the spool with SHA-256 proof.",
        discussion: "Exit status: 0 all secured, 1 some files failed or were quarantined, 3 stopped early (camera removed or spool full).")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "The mounted camera volume (or any folder).") var path: String
    @Option(help: "The camera's serial number.") var serial: String
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        var exitCode: Int32 = 0
        try options.run {
            let configuration = try options.loadConfiguration()
            let ledger = try options.openLedger(configuration)
            let ingestor = Ingestor(configuration: configuration, ledger: ledger, logger: Logger(label: "uploader.ingest"))
            // Ctrl-C or SIGTERM ends the copy cleanly: no half file, the ledger says so.
            TerminationSignals.install()
            let report = try ingestor.ingest(volume: path, serial: serial, stop: TerminationSignals.flag)
            if json {
                try Output.json(report)
            } else {
                print("ingest \(path) (camera \(serial)): \(report.copied) copied (\(ByteCount.format(report.bytesCopied))), \(report.alreadySecured) already secured, \(report.held) held, \(report.quarantined) quarantined, \(report.failed) failed" + (report.waitingToSettle > 0 ? ", \(report.waitingToSettle) still being written" : ""))
                if report.held > 0 {
                    print("camera \(serial) is not registered: its files are secured in the spool and held; run `uploader device add \(serial) --user ID` to release them")
                }
            }
            if let reason = report.stoppedBecause {
                FileHandle.standardError.write(Data("error: \(reason)\n".utf8))
                exitCode = 3
            } else if report.failed > 0 || report.quarantined > 0 {
                exitCode = 1
            }
        }
        if exitCode != 0 { throw ExitCode(exitCode) }
    }
}

struct UploadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upload", abstract: "Upload spooled files to the evidence store and verify them there.",
        discussion: "Exit status: 0 all verified, 1 some files failed, 3 stopped (credentials, bucket).")
    @OptionGroup var options: GlobalOptions
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        var exitCode: Int32 = 0
        try options.run {
            let configuration = try options.loadConfiguration()
            let credentials = try Credentials.load(configuration.store.credentials)
            let ledger = try options.openLedger(configuration)
            let runner = UploadRunner(configuration: configuration, credentials: credentials, ledger: ledger,
                                      logger: Logger(label: "uploader.upload"))
            let report = try runner.run()
            if json {
                try Output.json(report)
            } else {
                print("upload: \(report.verified) verified, \(report.failed) failed, \(ByteCount.format(report.bytesSent)) sent, \(report.retries) retries")
            }
            if let reason = report.stoppedBecause {
                FileHandle.standardError.write(Data("error: \(reason)\n".utf8))
                exitCode = 3
            } else if report.failed > 0 {
                exitCode = 1
            }
        }
        if exitCode != 0 { throw ExitCode(exitCode) }
    }
}

struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store", abstract: "Check the evidence store.", subcommands: [Check.self, CreateBucket.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Sign a request with the configured credentials and report what the store says.")
        @OptionGroup var options: GlobalOptions

        func run() throws {
            try options.run {
                let configuration = try options.loadConfiguration()
                let client = S3Client(configuration: configuration, credentials: try Credentials.load(configuration.store.credentials))
                // A HEAD of a key that cannot exist proves signing and bucket access without touching evidence.
                _ = try client.headObject(key: ".uploader-store-check")
                print("\(configuration.store.endpoint) bucket \(configuration.store.bucket): reachable, credentials accepted")
            }
        }
    }

    struct CreateBucket: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "create-bucket", abstract: "Create the configured bucket (for a new or local store).", shouldDisplay: false)
        @OptionGroup var options: GlobalOptions

        func run() throws {
            try options.run {
                let configuration = try options.loadConfiguration()
                let client = S3Client(configuration: configuration, credentials: try Credentials.load(configuration.store.credentials))
                try client.createBucket()
                print("bucket \(configuration.store.bucket) ready")
            }
        }
    }
}

struct SimulateCameraCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate-camera",
        abstract: "Write a camera volume with generated MP4 recordings (for demos and tests).",
        shouldDisplay: false)
    @Argument(help: "Folder to create.") var folder: String
    @Option(help: "Number of recordings.") var files = 3
    @Option(help: "Payload bytes per recording (e.g. 8MiB).") var size = "2MiB"
    @Option(help: "Recording time of the first file (ISO 8601); the rest follow 10 minutes apart.") var start = "2026-11-23T21:00:00Z"
    @Option(help: "Seed for the generated bytes.") var seed: UInt64 = 1

    func run() throws {
        guard let payload = ConfigurationLoader.parseByteSize(size) else { throw ValidationError("--size \(size) is not a size") }
        guard let first = Timestamps.parse(start) else { throw ValidationError("--start \(start) is not a time") }
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
            var times = [timespec(tv_sec: Int(recorded.timeIntervalSince1970) + 300, tv_nsec: 0),
                         timespec(tv_sec: Int(recorded.timeIntervalSince1970) + 300, tv_nsec: 0)]
            utimensat(AT_FDCWD, path, &times, 0)
            print(path)
        }
    }
}
