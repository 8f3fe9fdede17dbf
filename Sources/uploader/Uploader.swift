import Agent
import ArgumentParser
import Foundation
import Ledger
import Logging
import Platform
import Transport
import UploaderCore

@main
struct Uploader: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uploader",
        abstract: "Body-worn camera ingest agent: camera to spool (SHA-256) to S3 evidence store.",
        discussion: "Configuration: --config, else $UPLOADER_CONFIG, else /etc/uploader/uploader.toml. See uploader.toml(5).",
        version: UploaderVersion.current,
        subcommands: [
            StatusCommand.self, LogCommand.self, IngestCommand.self, UploadCommand.self,
            PrioritizeCommand.self, CancelCommand.self, RetryCommand.self, PurgeCommand.self, AlertsCommand.self, MetricsCommand.self,
            DeviceCommand.self, DockCommand.self, MountCommand.self, UnmountCommand.self, DaemonCommand.self, UdevRulesCommand.self,
            HousekeepingCommand.self, VerifyCommand.self, KeyCommand.self, TagCommand.self, CameraCommand.self, ExportCommand.self, VerifyBagCommand.self, ConfigCommand.self, AccountCommand.self, StoreCommand.self,
            SimulateCameraCommand.self,
            FleetCommand.self,
        ]
    )

    /// argument-parser's own run, but a usage error (a bad argument, a failed
    /// `validate()`) exits 2 (`ExitStatus.usage`) as documented, not EX_USAGE (64).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                // One line, as every other error; what was typed is never raw on a terminal.
                FileHandle.standardError.write(Data("error: \(DisplayText.terminalSafe(message(for: error)))\n".utf8))
                Foundation.exit(ExitStatus.usage.rawValue)
            }
            exit(withError: error)
        }
    }
}

/// Options every command shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Path of uploader.toml.")
    var config: String?

    @Flag(name: .shortAndLong, help: "Show debug logs and the technical cause of errors.")
    var verbose = false

    var configPath: String { Configuration.resolvePath(explicit: config, environment: ProcessInfo.processInfo.environment) }

    func bootstrapLogging() {
        AgentLogging.bootstrap(verbose: verbose)
    }

    func loadConfiguration() throws -> Configuration {
        let configuration = try ConfigurationLoader.load(path: configPath)
        AgentLogging.configure(configuration)
        return configuration
    }

    func openLedger(_ configuration: Configuration, readOnly: Bool = false) throws -> Ledger {
        // Who acted, as the OS knows them, before becoming the agent's user.
        Ledger.actor.withLock { $0 = ProcessIdentity.actorName(environment: ProcessInfo.processInfo.environment) }
        try AgentUser.become(ownerOf: configuration.stateDirectory)
        let ledger = try Ledger(path: configuration.ledgerPath, readOnly: readOnly)
        // Best effort: a dock key that cannot be read now leaves it to the next run's checkpoint.
        if !readOnly { try? CustodyCheckpoints.signFormatUpgrade(configuration: configuration, ledger: ledger) }
        return ledger
    }

    /// Runs a command body and turns every error into one clear line on
    /// stderr (plus the technical chain with --verbose) and an exit code.
    func run(_ body: () throws -> Void) throws {
        bootstrapLogging()
        Syscall.prepareCommandProcess()
        do {
            try body()
        } catch {
            // argument-parser's own exits (usage, --help, an exit status) pass through.
            guard let failure = UploaderError.fromCommand(error) else { throw error }
            // Messages name what was typed or found on a camera: never raw on a terminal.
            let text = verbose ? failure.verboseDescription : failure.message
            // A configuration's problems are one per line (ours); each line is escaped on its own.
            let shown = failure.problems.isEmpty ? DisplayText.terminalSafe(text)
                : text.split(separator: "\n", omittingEmptySubsequences: false).map { DisplayText.terminalSafe(String($0)) }.joined(separator: "\n")
            FileHandle.standardError.write(Data("error: \(shown)\n".utf8))
            throw ExitCode(ExitStatus(for: failure).rawValue)
        }
    }
}

extension UploaderError {
    /// Any error a command ends with, as the one error type; nil for
    /// argument-parser's own (an exit status, a usage error, --help).
    static func fromCommand(_ error: any Error) -> UploaderError? {
        switch error {
        case is ExitCode, is ValidationError, is CleanExit: nil
        case let error as UploaderError: error
        default: UploaderError(.io, "\(error)")
        }
    }
}

/// How a command prints its result: one set of output options for every command.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON instead of text (one object per line where the output is a stream).") var json = false

    /// A progress line only for a person watching text, never into JSON or a file.
    var showsProgress: Bool { !json && Syscall.isTerminal(STDOUT_FILENO) }
}

enum Output {
    static func json<T: Encodable>(_ value: T) throws {
        try json(value, formatting: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }

    /// One compact JSON object on one line (streams of results).
    static func jsonLine<T: Encodable>(_ value: T) throws {
        try json(value, formatting: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// One JSON array written as its elements stream past: memory stays flat however
    /// many there are (`produce` hands each element to the closure it is given).
    static func jsonArray<T: Encodable>(_ produce: ((T) throws -> Void) throws -> Void) throws {
        var first = true
        try produce { element in
            print(first ? "[" : ",", terminator: "")
            first = false
            try jsonLine(element)
        }
        print(first ? "[]" : "]")
    }

    static func json<T: Encodable>(_ value: T, formatting: JSONEncoder.OutputFormatting) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = formatting
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Timestamps.iso(date))
        }
        print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }

    static func relative(_ date: Date, now: Date = Date()) -> String {
        let seconds = Int(now.timeIntervalSince(date))
        if seconds < 0 { return "in the future" }
        if seconds < 90 { return "\(seconds)s ago" }
        if seconds < 5400 { return "\(seconds / 60)m ago" }
        if seconds < 172_800 { return "\(seconds / 3600)h ago" }
        return "\(seconds / 86400)d ago"
    }

    /// "06:00", or "Tue 06:00" when not today.
    static func shortTime(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = Calendar.current.isDateInToday(date) ? "HH:mm" : "EEE HH:mm"
        return formatter.string(from: date)
    }

    static func local(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss zzz"
        return formatter.string(from: date)
    }
}

/// A command whose work blocks (SQLite, files, libcurl, libudev). The root
/// command is async, so `run()` is entered from a Swift task: the body goes to
/// a thread of its own and never holds the cooperative pool (invariant 7).
protocol BlockingCommand: AsyncParsableCommand {
    func runBlocking() throws
}

extension BlockingCommand {
    func run() async throws {
        // A parsed command is plain values; it is only read, on that one thread.
        nonisolated(unsafe) let command = self
        let outcome = await BlockingThread.run(name: "uploader.command") { Result { try command.runBlocking() } }
        try outcome.get()
    }
}
