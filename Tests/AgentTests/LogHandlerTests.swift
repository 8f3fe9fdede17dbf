import Foundation
import Logging
import Synchronization
import Testing
@testable import Agent

/// The agent's log lines: journald priorities under systemd, `key=value`
/// metadata, one line per message, and the level from flag, environment and configuration.
struct LogHandlerTests {
    final class Lines: Sendable {
        let all = Mutex<[String]>([])
        func add(_ line: String) { all.withLock { $0.append(line) } }
        var lines: [String] { all.withLock { $0 } }
    }

    func logger(journal: Bool, levels: LogLevels, into lines: Lines) -> Logger {
        Logger(label: "uploader.daemon") { label in AgentLogHandler(label: label, journal: journal, levels: levels) { lines.add($0) } }
    }

    @Test func underTheJournalEachLineStartsWithItsSdDaemonPriority() {
        let lines = Lines()
        let log = logger(journal: true, levels: LogLevels(verbose: true, environment: [:], journal: true), into: lines)
        log.debug("d")
        log.info("i")
        log.notice("listening for docked cameras")
        log.warning("w")
        log.error("e")
        log.critical("c")
        #expect(lines.lines == ["<7>uploader.daemon: d\n", "<6>uploader.daemon: i\n", "<5>uploader.daemon: listening for docked cameras\n",
                                "<4>uploader.daemon: w\n", "<3>uploader.daemon: e\n", "<2>uploader.daemon: c\n"])
    }

    @Test func metadataFollowsAsKeyValueSortedAndQuotedWhereNeeded() {
        let lines = Lines()
        var log = logger(journal: true, levels: LogLevels(verbose: false, environment: [:], journal: true), into: lines)
        log[metadataKey: "serial"] = "BWC0001234"
        log.notice("upload run: 3 verified, 0 failed", metadata: ["verified": "3", "path": "DCIM/A B.MP4", "empty": "", "quote": "say \"hi\""])
        #expect(lines.lines == [#"<5>uploader.daemon: upload run: 3 verified, 0 failed empty="" path="DCIM/A B.MP4" quote="say \"hi\"" serial=BWC0001234 verified=3"# + "\n"])
    }

    @Test func aLineBreakInAMessageCannotForgeASecondJournalEntry() {
        let lines = Lines()
        let log = logger(journal: true, levels: LogLevels(verbose: false, environment: [:], journal: true), into: lines)
        log.error("camera file A.MP4\n<0>forged emergency")
        #expect(lines.lines == [#"<3>uploader.daemon: camera file A.MP4\u{a}<0>forged emergency"# + "\n"])
    }

    @Test func atATerminalATimestampAndTheLevelNameLead() {
        let line = AgentLogHandler.line(level: .warning, label: "uploader.upload", message: "slow", metadata: ["part": "3"], journal: false,
                                        now: Date(timeIntervalSince1970: 0))
        #expect(line == "1970-01-01T00:00:00.000Z warning uploader.upload: slow part=3\n")
    }

    @Test func noticesReachTheJournalWithoutVerboseButNotATerminal() {
        let journal = Lines(), terminal = Lines()
        logger(journal: true, levels: LogLevels(verbose: false, environment: [:], journal: true), into: journal).notice("upload run: 1 verified")
        logger(journal: false, levels: LogLevels(verbose: false, environment: [:], journal: false), into: terminal).notice("upload run: 1 verified")
        logger(journal: true, levels: LogLevels(verbose: false, environment: [:], journal: true), into: journal).info("not by default")
        #expect(journal.lines == ["<5>uploader.daemon: upload run: 1 verified\n"])
        #expect(terminal.lines.isEmpty)
    }

    @Test func theLevelComesFromVerboseThenTheEnvironmentThenTheConfiguration() {
        let configured = LogLevels(verbose: false, environment: [:], journal: true)
        #expect(configured.current == .notice)
        configured.configure("error")
        #expect(configured.current == .error)
        let lines = Lines()
        logger(journal: true, levels: configured, into: lines).warning("filtered by the configuration")
        #expect(lines.lines.isEmpty)

        let environment = LogLevels(verbose: false, environment: ["UPLOADER_LOG_LEVEL": "info"], journal: false)
        environment.configure("error")
        #expect(environment.current == .info)
        let verbose = LogLevels(verbose: true, environment: ["UPLOADER_LOG_LEVEL": "error"], journal: false)
        #expect(verbose.current == .debug)
        #expect(LogLevels(verbose: false, environment: ["UPLOADER_LOG_LEVEL": "loud"], journal: false).current == .warning)
    }

    @Test func journalStreamCountsOnlyWhenItNamesThisStderr() {
        var info = stat()
        #expect(fstat(STDERR_FILENO, &info) == 0)
        #expect(AgentLogHandler.stderrIsJournal(environment: ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino)"]))
        // A child whose stderr went elsewhere inherits the variable: not the journal.
        #expect(!AgentLogHandler.stderrIsJournal(environment: ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino &+ 1)"]))
        #expect(!AgentLogHandler.stderrIsJournal(environment: [:]))
        #expect(!AgentLogHandler.stderrIsJournal(environment: ["JOURNAL_STREAM": "garbage"]))
    }
}
