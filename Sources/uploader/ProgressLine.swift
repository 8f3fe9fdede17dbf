import Foundation
import Ledger
import Platform
import UploaderCore

/// A live progress line for a person at a terminal: files, bytes, rate,
/// ETA, redrawn twice a second from the ledger by a thread of its own.
/// Written to stderr, so stdout stays the command's answer; off when stderr
/// is not a terminal or `TERM=dumb` (then the log lines are the record).
final class ProgressLine: @unchecked Sendable {
    private let ledger: Ledger?
    private let sample: (@Sendable () -> String)?
    private let enabled: Bool
    private let stopped = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private var thread: Thread?
    private let started = Date()

    init(ledger: Ledger, enabled: Bool) {
        self.ledger = ledger
        self.sample = nil
        self.enabled = enabled && Self.terminalCanDrawIt()
    }

    /// A line from any source (the ingest's counters).
    init(enabled: Bool, sample: @escaping @Sendable () -> String) {
        self.ledger = nil
        self.sample = sample
        self.enabled = enabled && Self.terminalCanDrawIt()
    }

    /// A terminal that understands `\r` and erase-line: not a pipe, a file, the journal or `TERM=dumb`.
    static func terminalCanDrawIt(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        Syscall.isTerminal(STDERR_FILENO) && environment["TERM"] != "dumb"
    }

    func start() {
        guard enabled else { return }
        if let sample {
            let thread = Thread { [self] in
                while stopped.wait(timeout: .now() + 0.5) == .timedOut {
                    FileHandle.standardError.write(Data("\r\u{1B}[K\(sample())".utf8))
                }
                FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
                finished.signal()
            }
            thread.name = "uploader.progress"
            self.thread = thread
            thread.start()
            return
        }
        guard let ledger else { return }
        let initial = (try? ledger.summary()).map { ($0.states.of(.verified).count, $0.states.of(.verified).bytes) } ?? (0, 0)
        let thread = Thread { [self] in
            while stopped.wait(timeout: .now() + 0.5) == .timedOut {
                guard let summary = try? ledger.summary() else { continue }
                let verified = summary.states.of(.verified).count - initial.0
                let inFlight = summary.uploading.reduce(Int64(0)) { $0 + $1.bytesSent }
                let done = summary.states.of(.verified).bytes - initial.1 + inFlight
                let waiting = summary.states.waiting.bytes
                let elapsed = Date().timeIntervalSince(started)
                let rate = elapsed > 0 ? Double(done) / elapsed : 0
                let remaining = max(0, waiting - inFlight)
                let eta = rate > 0 ? " ETA \(Int(Double(remaining) / rate))s" : ""
                let line = "\r\u{1B}[K\(verified) verified, \(summary.uploading.count) uploading, \(ByteCount.format(done)) sent at \(ByteCount.format(Int64(rate)))/s,\(eta) \(ByteCount.format(remaining)) to go"
                FileHandle.standardError.write(Data(line.utf8))
            }
            FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
            finished.signal()
        }
        thread.name = "uploader.progress"
        self.thread = thread
        thread.start()
    }

    func stop() {
        guard thread != nil else { return }
        stopped.signal()
        // The thread clears the line before the summary prints.
        finished.wait()
    }
}
