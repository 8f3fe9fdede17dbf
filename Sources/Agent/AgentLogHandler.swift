import Foundation
import Logging
import Platform
import Synchronization
import SystemPackage
import UploaderCore

/// The agent's log lines on stderr. Under systemd (`JOURNAL_STREAM` names
/// this stderr) each line starts with its sd-daemon(3) priority, `<5>` for
/// a notice, which journald reads as the entry's level; at a terminal a
/// timestamp and the level's name lead instead. Metadata follows the message
/// as `key=value`. One line per message: line breaks in a message are escaped
/// (`DisplayText`), so no text from a camera can forge a second entry.
public struct AgentLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    /// Set on this logger only; otherwise the process's level (`AgentLogging`).
    private var ownLevel: Logger.Level?
    let label: String
    let journal: Bool
    let levels: LogLevels
    let write: @Sendable (String) -> Void

    public init(label: String, journal: Bool, levels: LogLevels, write: @escaping @Sendable (String) -> Void = AgentLogHandler.standardError) {
        self.label = label
        self.journal = journal
        self.levels = levels
        self.write = write
    }

    public var logLevel: Logger.Level {
        get { ownLevel ?? levels.current }
        set { ownLevel = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let given = event.metadata { merged.merge(given) { $1 } }
        write(Self.line(level: event.level, label: label, message: event.message.description, metadata: merged, journal: journal, now: Date()))
    }

    /// One log line, newline included.
    public static func line(level: Logger.Level, label: String, message: String, metadata: Logger.Metadata, journal: Bool, now: Date) -> String {
        var line = journal ? "<\(priority(level))>" : "\(Timestamps.iso(now)) \(level.rawValue) "
        line += "\(label): \(DisplayText.terminalSafe(message))"
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            line += " \(DisplayText.terminalSafe(key))=\(quoted(DisplayText.terminalSafe("\(value)")))"
        }
        return line + "\n"
    }

    /// The sd-daemon(3) priority (syslog's): 2 crit, 3 err, 4 warning, 5 notice, 6 info, 7 debug.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// A value with a space, a quote or an `=` is quoted, so `key=value` pairs split unambiguously.
    static func quoted(_ value: String) -> String {
        guard value.isEmpty || value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// One write(2) per line, so lines of concurrent threads never interleave.
    public static let standardError: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// Whether stderr is the journal's stream: `JOURNAL_STREAM` holds the
    /// device and inode of the stream systemd connected, and they must be
    /// stderr's own (a child whose stderr was redirected inherits the variable).
    public static func stderrIsJournal(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        guard let stream = environment["JOURNAL_STREAM"] else { return false }
        let parts = stream.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        guard let info = try? Syscall.fstat(.standardError) else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }
}

/// The process's log level, decided in this order: `--verbose` (debug);
/// `UPLOADER_LOG_LEVEL`; `[agent] log_level` of the configuration, once it
/// is loaded; else notice under systemd (run summaries and "listening for
/// docked cameras" reach the journal) and warning at a terminal.
public final class LogLevels: Sendable {
    private struct Settings {
        var verbose = false
        var environment: Logger.Level?
        var configured: Logger.Level?
        var fallback: Logger.Level
    }
    private let settings: Mutex<Settings>

    public init(verbose: Bool, environment: [String: String], journal: Bool) {
        settings = Mutex(Settings(verbose: verbose, environment: environment["UPLOADER_LOG_LEVEL"].flatMap(Self.level(named:)),
                                  fallback: journal ? .notice : .warning))
    }

    public var current: Logger.Level {
        settings.withLock { $0.verbose ? .debug : $0.environment ?? $0.configured ?? $0.fallback }
    }

    /// The configuration's `log_level` (nil: not set).
    public func configure(_ name: String?) {
        settings.withLock { $0.configured = name.flatMap(Self.level(named:)) }
    }

    /// "notice", "warning"…: swift-log's names, which `[agent] log_level` accepts.
    public static func level(named name: String) -> Logger.Level? {
        Logger.Level(rawValue: name.trimmingCharacters(in: .whitespaces).lowercased())
    }
}

/// The logging of an `uploader` process: bootstrapped once, at the start of a command.
public enum AgentLogging {
    private static let installed = Mutex<LogLevels?>(nil)

    /// Installs `AgentLogHandler` for every logger of the process.
    public static func bootstrap(verbose: Bool, environment: [String: String] = ProcessInfo.processInfo.environment) {
        let journal = AgentLogHandler.stderrIsJournal(environment: environment)
        let levels = LogLevels(verbose: verbose, environment: environment, journal: journal)
        installed.withLock { $0 = levels }
        LoggingSystem.bootstrap { label in AgentLogHandler(label: label, journal: journal, levels: levels) }
    }

    /// Applies the configuration's `[agent] log_level` (when bootstrapped).
    public static func configure(_ configuration: Configuration) {
        installed.withLock { $0?.configure(configuration.logLevel) }
    }
}
