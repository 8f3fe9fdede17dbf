import Crypto
import Foundation
import Ingest
import Ledger
import Logging
import Spool
import Synchronization
import SystemPackage
import UploaderCore
import Platform

public struct IngestReport: Sendable, Codable, Equatable {
    public var found = 0
    public var copied = 0
    public var bytesCopied: Int64 = 0
    public var alreadySecured = 0
    public var held = 0
    public var quarantined = 0
    public var failed = 0
    public var waitingToSettle = 0
    /// Set when the run stopped early (camera removed, spool full).
    public var stoppedBecause: String?
    /// Files left on the camera because the spool is above its watermark.
    public var leftOnCamera = 0
    /// The process's peak resident memory at the end of the run.
    public var peakMemoryBytes: Int64?

    public init() {}
}

/// What an ingest has done so far, for `uploader ingest`'s progress line.
public final class IngestProgress: Sendable {
    private let state = Mutex<(files: Int, totalFiles: Int, bytes: Int64, totalBytes: Int64, started: Date)>((0, 0, 0, 0, Date()))

    func begin(files: Int, bytes: Int64) { state.withLock { $0 = (0, files, 0, bytes, Date()) } }
    func add(bytes: Int64) { state.withLock { $0.bytes += bytes } }
    /// A file done; one that needed no copy leaves the total.
    func finishedFile(size: Int64, copied: Bool) {
        state.withLock { state in
            state.files += 1
            if !copied { state.totalBytes -= size }
        }
    }

    /// "12/40 files, 1.2 GiB of 9.8 GiB at 180.0 MiB/s, ETA 49s"
    public var line: String {
        state.withLock { state in
            let elapsed = Date().timeIntervalSince(state.started)
            let rate = elapsed > 0 ? Double(state.bytes) / elapsed : 0
            let eta = rate > 0 ? ", ETA \(Int(Double(max(0, state.totalBytes - state.bytes)) / rate))s" : ""
            return "\(state.files)/\(state.totalFiles) files, \(ByteCount.format(state.bytes)) copied at \(ByteCount.format(Int64(rate)))/s\(eta)"
        }
    }
}

/// Copies a camera volume's media into the spool: one streaming pass that
/// copies and hashes (whole file and each planned upload part), fsync, a
/// verifying re-read from disk, then an atomic rename, and a ledger entry at
/// every step. `@unchecked Sendable`: its copy threads share only Sendable
/// state (configuration, ledger, spool, logger, progress); `pressure` is set
/// before a run starts and read only during it.
public final class Ingestor: @unchecked Sendable {
    let configuration: Configuration
    let ledger: Ledger
    let spool: Spool
    let logger: Logger
    /// Replaced in tests to play a filling disk.
    public var pressure: SpoolPressure
    /// Live counters for a progress display (read from another thread).
    public let progress = IngestProgress()

    public init(configuration: Configuration, ledger: Ledger, logger: Logger) {
        self.configuration = configuration
        self.ledger = ledger
        self.spool = Spool(root: configuration.spoolDirectory)
        self.logger = logger
        self.pressure = SpoolPressure(spool: Spool(root: configuration.spoolDirectory), highPercent: configuration.ingest.highWatermarkPercent,
                                      lowPercent: configuration.ingest.lowWatermarkPercent)
    }

    /// Ingests every media file under `volume` for the camera `serial`.
    /// Blocking: call it from a thread of its own, never the cooperative pool.
    /// `stop`: checked between files and after every chunk; a stop request
    /// ends the run like a removed camera (nothing half-written is kept).
    public func ingest(volume: String, serial: String, profile: IngestProfile? = nil, stop: StopFlag? = nil,
                       now: Date = Date()) throws -> IngestReport {
        BlockingCallCheck.assertNotInTask("ingest of \(volume)")
        let profile = profile ?? IngestProfile(configuration)
        // A camera registered at another dock of the fleet is known before its files are attributed (a short wait at most).
        FleetLink.syncQuietly(configuration: configuration, ledger: ledger, logger: logger, quick: true)
        try spool.prepare()
        // One ingest of a camera at a time, whatever process runs it: a second
        // one waits, then finds the files secured.
        let cameraLock = try spool.lockCamera(serial, stop: { stop?.isRequested == true })
        defer { try? cameraLock.close() }
        let engine = try copyEngine()
        // Held until every copy of this run is in the ledger: its key cannot be retired meanwhile.
        let sealing = try engine.keyring?.holdForSealing()
        defer { try? sealing?.close() }
        let abandoned = try spool.discardAbandonedTemporaryFiles()
        if !abandoned.isEmpty {
            try ledger.log(EventDraft(.warning, .spoolCleanup, "discarded \(abandoned.count) unfinished copies left by an interrupted run"))
        }
        var report = IngestReport()
        let entries = try VolumeScanner(profile: profile).scan(root: volume)
        progress.begin(files: entries.count, bytes: entries.reduce(0) { $0 + $1.size })
        report.found = entries.count
        try ledger.log(EventDraft(.notice, .ingestStarted, serial: serial, "ingest of \(DisplayText.escaped(volume)) started: \(entries.count) entries"))

        let rootFD = try FileDescriptor.open(FilePath(volume), .readOnly, options: [.directory, .closeOnExec])
        defer { try? rootFD.close() }

        // First, in order: what each entry is, one ledger row each, and what needs a copy.
        var jobs: [MediaFile] = []
        var rows: [MediaFile] = []
        for entry in entries {
            if stop?.isRequested == true {
                report.stoppedBecause = "stop requested (camera unplugged or agent stopping); the next dock resumes"
                break
            }
            if case .hostile(let why) = entry.kind {
                let (file, isNew) = try ledger.discover(serial: serial, sourcePath: entry.relativePath, size: entry.size,
                                                        modifiedNanoseconds: entry.modifiedNanoseconds)
                if isNew || [.discovered, .copying, .failed].contains(file.state) {
                    try ledger.quarantine(file.id, reason: .hostileEntry, message: "\(DisplayText.escaped(entry.relativePath)) is \(why)")
                }
                report.quarantined += 1
                continue
            }
            let age = now.timeIntervalSince1970 - Double(entry.modifiedNanoseconds) / 1e9
            // A time in the future says the camera's clock is wrong, not that the file is
            // being written: copy it (the size/time check around the copy still guards it).
            if age >= 0, age < configuration.ingest.settleSeconds {
                report.waitingToSettle += 1
                logger.info("still being written, will copy on the next run", metadata: ["file": "\(entry.relativePath)"])
                continue
            }
            let (file, _) = try ledger.discover(serial: serial, sourcePath: entry.relativePath, size: entry.size,
                                                modifiedNanoseconds: entry.modifiedNanoseconds)
            rows.append(file)
            guard file.needsCopy else {
                progress.finishedFile(size: entry.size, copied: false)
                if file.state == .quarantined, file.holdReason == .unknownDevice { report.held += 1 } else { report.alreadySecured += 1 }
                continue
            }
            jobs.append(file)
        }
        try ledger.linkSidecars(Self.sidecarLinks(rows, extensions: Set(configuration.ingest.sidecarExtensions)))
        rows = []
        if report.stoppedBecause == nil, !jobs.isEmpty {
            report = copyAll(jobs, engine: engine, from: rootFD, profile: profile, stop: stop, serial: serial, report: report)
        }
        report.peakMemoryBytes = ProcessMemory.peakResidentBytes()
        let summary = "ingest of \(volume) finished: \(report.copied) copied (\(report.bytesCopied) bytes), \(report.alreadySecured) already secured, \(report.held) held, \(report.quarantined) quarantined, \(report.failed) failed; peak memory \(ByteCount.format(report.peakMemoryBytes ?? 0))"
        try ledger.log(EventDraft(report.stoppedBecause == nil ? .notice : .error, .ingestFinished, serial: serial,
                                  summary + (report.stoppedBecause.map { "; stopped: \($0)" } ?? "")))
        if let pattern = profile.fileNumber {
            do { try ledger.recordFileNumberGaps(serial: serial, pattern: pattern) } catch {
                logger.error("gap check of camera \(serial): \(error)")
            }
        }
        // Signed here (a dock has no network); the next upload run stores it.
        do { try CustodyCheckpoints.sign(configuration: configuration, ledger: ledger) } catch {
            _ = try? ledger.log(EventDraft(.error, .custodyProblem, "cannot sign a custody checkpoint: \((error as? UploaderError)?.message ?? "\(error)")"))
        }
        return report
    }

    struct CopyQueue {
        var next = 0
        var inFlightBytes: Int64 = 0
        var report: IngestReport
    }

    /// Copies the files `parallel_copies` at a time (hashing is CPU-bound: one
    /// copy per core). A stop, a removed camera or a full spool ends the run:
    /// copies under way finish or are discarded, no new one starts.
    func copyAll(_ jobs: [MediaFile], engine: CopyEngine, from root: FileDescriptor, profile: IngestProfile, stop: StopFlag?,
                 serial: String, report: IngestReport) -> IngestReport {
        let queue = Mutex(CopyQueue(report: report))
        let work: @Sendable () -> Void = { [self] in
            while true {
                enum Next { case copy(MediaFile), full(String), done }
                let next: Next = queue.withLock { state in
                    guard state.report.stoppedBecause == nil, state.next < jobs.count else { return .done }
                    if stop?.isRequested == true {
                        state.report.stoppedBecause = "stop requested (camera unplugged or agent stopping); the next dock resumes"
                        return .done
                    }
                    let file = jobs[state.next]
                    // Copies under way count as if they had landed, so two at once cannot overshoot.
                    if let reason = pressure.mayCopy(pendingBytes: state.inFlightBytes) {
                        state.report.stoppedBecause = reason
                        state.report.leftOnCamera = jobs.count - state.next
                        return .full(reason)
                    }
                    state.next += 1
                    state.inFlightBytes += file.sourceSize
                    return .copy(file)
                }
                switch next {
                case .done:
                    return
                case .full(let reason):
                    try? ledger.log(EventDraft(.warning, .spoolFull, serial: serial, reason))
                    return
                case .copy(let file):
                    let outcome = copyOne(file, engine: engine, from: root, profile: profile, stop: stop, serial: serial)
                    queue.withLock { state in
                        state.inFlightBytes -= file.sourceSize
                        outcome(&state.report)
                    }
                }
            }
        }
        let helpers = max(0, min(configuration.ingest.parallelCopies, jobs.count) - 1)
        let done = DispatchGroup()
        for index in 0..<helpers {
            done.enter()
            let thread = Thread {
                work()
                done.leave()
            }
            thread.name = "uploader.ingest.copy.\(index + 1)"
            thread.start()
        }
        work()
        done.wait()
        return queue.withLock { $0.report }
    }

    /// One file's copy and what it adds to the report.
    func copyOne(_ file: MediaFile, engine: CopyEngine, from root: FileDescriptor, profile: IngestProfile, stop: StopFlag?,
                 serial: String) -> (inout IngestReport) -> Void {
        do {
            guard let spooled = try copy(file, engine: engine, from: root, profile: profile, stop: stop) else {
                progress.finishedFile(size: file.sourceSize, copied: false)
                return { $0.alreadySecured += 1 }
            }
            progress.finishedFile(size: file.sourceSize, copied: true)
            if spooled.holdReason == .cameraFileChanged { return { $0.quarantined += 1 } }
            return { report in
                report.copied += 1
                report.bytesCopied += file.sourceSize
                if spooled.state == .quarantined { report.held += 1 }
            }
        } catch let error as UploaderError {
            switch error.code {
            case .transitionRefused, .busy:
                // Another process secured or took the file meanwhile: its row says what happened.
                logger.notice("\(error.message)", metadata: ["device": "\(serial)"])
                return { $0.alreadySecured += 1 }
            case .diskFull, .sourceVanished:
                let message = error.code == .diskFull ? error.message : "interrupted: \(error.message)"
                try? ledger.markCopyFailed(file.id, error: message)
                logger.error("ingest stopped: \(error.message)", metadata: ["device": "\(serial)"])
                return { report in
                    report.failed += 1
                    if report.stoppedBecause == nil { report.stoppedBecause = error.message }
                }
            case .sourceChanged:
                try? ledger.markSuperseded(file.id, reason: error.message)
            case .hostileEntry:
                try? ledger.quarantine(file.id, reason: .hostileEntry, message: error.message)
                return { $0.quarantined += 1 }
            case .unreadable:
                try? ledger.quarantine(file.id, reason: .unreadable, message: error.message)
                return { $0.quarantined += 1 }
            default:
                try? ledger.markCopyFailed(file.id, error: error.message)
            }
            return { $0.failed += 1 }
        } catch {
            try? ledger.markCopyFailed(file.id, error: "\(error)")
            return { $0.failed += 1 }
        }
    }

    /// Sidecars not linked yet, each with the recording of the same stem in
    /// the same folder (`DCIM/VID0001.gps` → `DCIM/VID0001.MP4`). A stem that
    /// more than one recording shares is ambiguous: no link.
    static func sidecarLinks(_ files: [MediaFile], extensions: Set<String>) -> [(sidecar: Int64, recording: Int64)] {
        func split(_ path: String) -> (stem: String, ext: String) {
            guard let dot = path.lastIndex(of: "."), !path[dot...].contains("/") else { return (path, "") }
            return (String(path[..<dot]).lowercased(), String(path[path.index(after: dot)...]).lowercased())
        }
        var recordings: [String: [Int64]] = [:]
        for file in files where !extensions.contains(split(file.sourcePath).ext) {
            recordings[split(file.sourcePath).stem, default: []].append(file.id)
        }
        return files.compactMap { file in
            let (stem, ext) = split(file.sourcePath)
            guard file.sidecarOf == nil, extensions.contains(ext), let candidates = recordings[stem], candidates.count == 1 else { return nil }
            return (file.id, candidates[0])
        }
    }

    /// The single-pass copy, hash, verify and rename (writes no ledger),
    /// sealing with the spool keyring's current key (made at first run)
    /// unless `[spool] encryption` is off.
    func copyEngine() throws -> CopyEngine {
        let path = configuration.ingest.spoolKeyring
        if configuration.ingest.encryptSpool, try SpoolKeyring.existing(path: path) == nil {
            // A keyring gone while copies it sealed wait is lost or misplaced: a fresh one
            // made here would hide that, and a restored backup would then lose the new copies.
            let sealed = try ledger.spoolCopiesByKey().filter { $0.key != nil }.values.reduce(0, +)
            if sealed > 0 {
                throw UploaderError(.insecure, "the spool keyring \(path) is missing, but \(sealed) spool copies are sealed with its keys: restore it from backup; if it is lost for good, `uploader key rotate` starts a new one (copies sealed with the lost keys cannot be sent: dock those cameras again)")
            }
        }
        let keyring = configuration.ingest.encryptSpool ? try SpoolKeyring.loadOrCreate(path: path) : nil
        return CopyEngine(spool: spool, configuredPartSize: configuration.upload.partSize,
                                spoolReserveBytes: configuration.ingest.spoolReserveBytes, keyring: keyring)
    }

    /// One camera file: claimed for copying in the ledger, secured by the copy
    /// engine, recorded as spooled (or held). Nil when it needs no copy any more.
    func copy(_ file: MediaFile, engine: CopyEngine, from root: FileDescriptor, profile: IngestProfile, stop: StopFlag? = nil) throws -> MediaFile? {
        guard try ledger.markCopying(file.id) != nil else { return nil }
        let secured = try engine.secure(file.cameraFile,
                                        from: root, profile: profile, stop: stop) { [progress] in progress.add(bytes: Int64($0)) }
        let spooled = try ledger.markSpooled(file.id, copy: secured)
        logger.info("spooled", metadata: ["file": "\(DisplayText.escaped(file.sourcePath))", "device": "\(file.serial)", "sha256": "\(secured.sha256.hex)"])
        return spooled
    }

    /// The configured part size, grown when needed so a file never needs more than S3's 10,000 parts.
    public static func partSize(forFileOfSize size: Int64, configured: Int64) -> Int64 {
        CopyEngine.partSize(forFileOfSize: size, configured: configured)
    }
}
