import Crypto
import Foundation
import Ingest
import Ledger
import Logging
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
    static let chunkSize = 1 << 20

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
        try spool.prepare()
        // One ingest of a camera at a time, whatever process runs it: a second
        // one waits, then finds the files secured.
        let cameraLock = try spool.lockCamera(serial, stop: { stop?.isRequested == true })
        defer { try? cameraLock.close() }
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
            guard file.needsCopy else {
                progress.finishedFile(size: entry.size, copied: false)
                if file.state == .quarantined, file.holdReason == .unknownDevice { report.held += 1 } else { report.alreadySecured += 1 }
                continue
            }
            jobs.append(file)
        }
        if report.stoppedBecause == nil, !jobs.isEmpty {
            report = copyAll(jobs, from: rootFD, profile: profile, stop: stop, serial: serial, report: report)
        }
        report.peakMemoryBytes = ProcessMemory.peakResidentBytes()
        let summary = "ingest of \(volume) finished: \(report.copied) copied (\(report.bytesCopied) bytes), \(report.alreadySecured) already secured, \(report.held) held, \(report.quarantined) quarantined, \(report.failed) failed; peak memory \(ByteCount.format(report.peakMemoryBytes ?? 0))"
        try ledger.log(EventDraft(report.stoppedBecause == nil ? .notice : .error, .ingestFinished, serial: serial,
                                  summary + (report.stoppedBecause.map { "; stopped: \($0)" } ?? "")))
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
    func copyAll(_ jobs: [MediaFile], from root: FileDescriptor, profile: IngestProfile, stop: StopFlag?,
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
                    let outcome = copyOne(file, from: root, profile: profile, stop: stop, serial: serial)
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
    func copyOne(_ file: MediaFile, from root: FileDescriptor, profile: IngestProfile, stop: StopFlag?,
                 serial: String) -> (inout IngestReport) -> Void {
        do {
            guard let spooled = try copy(file, from: root, profile: profile, stop: stop) else {
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
            case .verification:
                return { $0.quarantined += 1 }
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

    /// The single pass: read the camera once, write the spool copy, hash both
    /// the whole file and each upload part; then fsync, re-read from disk to
    /// verify, and rename into place. Nil when the file needs no copy any more.
    func copy(_ file: MediaFile, from root: FileDescriptor, profile: IngestProfile, stop: StopFlag? = nil) throws -> MediaFile? {
        guard try ledger.markCopying(file.id) != nil else { return nil }
        try ensureSpace(for: file.sourceSize)
        let source = try openBeneath(root, file.sourcePath)
        defer { try? source.close() }
        let before = try Syscall.fstat(source)
        guard before.st_mode & S_IFMT == S_IFREG, Int64(before.st_size) == file.sourceSize else {
            throw UploaderError(.sourceChanged, "\(file.sourcePath) changed on the camera before it could be copied; its new version will be copied on the next run")
        }
        Syscall.adviseSequential(source)
        let recorded = recordingTime(of: source, file: file, info: before, profile: profile)
        let partSize = Self.partSize(forFileOfSize: file.sourceSize, configured: configuration.upload.partSize)

        let temporaryName = "\(file.id).partial"
        let temporaryDirectory = try FileDescriptor.open(FilePath(spool.temporaryDirectory), .readOnly, options: [.directory, .closeOnExec])
        defer { try? temporaryDirectory.close() }
        let objectsDirectory = try FileDescriptor.open(FilePath(spool.objectsDirectory), .readOnly, options: [.directory, .closeOnExec])
        defer { try? objectsDirectory.close() }
        let output = try spool.createTemporaryFile(temporaryName, in: temporaryDirectory)
        var renamed = false
        defer {
            // Unlinked while still locked: nobody else can have taken the name meanwhile.
            if !renamed { try? Syscall.unlinkAt(temporaryDirectory, temporaryName) }
            try? output.close()
        }

        let whole = SHA256Hasher()
        // A file of one part has one hash: the whole file's. Larger files get their
        // part hashes from a second thread while this one hashes the whole and writes.
        let parts = file.sourceSize > partSize ? PartHasher(partSize: partSize) : nil
        var total: Int64 = 0
        // Two buffers: the next chunk is read while the part hasher finishes the last one.
        let buffers = [UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkSize, alignment: 4096),
                       UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkSize, alignment: 4096)]
        defer {
            _ = parts?.finish()
            buffers.forEach { $0.deallocate() }
        }
        var index = 0
        while true {
            let buffer = buffers[index % 2]
            index += 1
            let count: Int
            do {
                count = try source.read(into: buffer)
            } catch let error as Errno {
                throw UploaderError(.sourceVanished, "reading \(file.sourcePath) from camera \(file.serial) failed: the camera was probably removed; dock it again to resume",
                                    cause: error.summary)
            }
            if count == 0 { break }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
            parts?.submit(chunk)
            whole.update(chunk)
            do {
                _ = try output.writeAll(chunk)
            } catch let error as Errno {
                throw spoolWriteError(error, file: file)
            }
            total += Int64(count)
            progress.add(bytes: Int64(count))
            FailPoints.hit("ingest.chunk-written")
            if stop?.isRequested == true {
                throw UploaderError(.sourceVanished, "copying \(file.sourcePath) was stopped (camera unplugged or agent stopping); the next dock copies it again")
            }
            // The next chunk goes to the other buffer: this one may still be with the part hasher.
        }
        let after = try Syscall.fstat(source)
        guard total == file.sourceSize, after.st_size == before.st_size,
              after.st_mtim.tv_sec == before.st_mtim.tv_sec, after.st_mtim.tv_nsec == before.st_mtim.tv_nsec else {
            throw UploaderError(.sourceChanged, "\(file.sourcePath) changed while it was being copied (is the camera still writing it?); its new version will be copied on the next run")
        }
        let digest = whole.finalize()
        let partHashes = parts?.finish() ?? [digest.hex]
        do {
            try Syscall.fsync(output)
        } catch {
            throw spoolWriteError(error, file: file)
        }
        FailPoints.hit("ingest.copy-synced")
        try verifyFromDisk(expected: digest, partHashes: partHashes, partSize: partSize, file: file)
        let spoolName = Spool.spoolName(fileID: file.id, sourcePath: file.sourcePath)
        try Syscall.renameAt(temporaryDirectory, temporaryName, objectsDirectory, spoolName)
        renamed = true
        try Syscall.fsync(objectsDirectory)
        FailPoints.hit("ingest.renamed")
        let spooled = try ledger.markSpooled(file.id, copy: SpooledCopy(
            sha256: digest.hex, spoolName: spoolName, partSize: partSize, partHashes: partHashes,
            recordedAt: recorded.date, recordedAtSource: recorded.source))
        logger.info("spooled", metadata: ["file": "\(file.sourcePath)", "device": "\(file.serial)", "sha256": "\(digest.hex)"])
        return spooled
    }

    /// Re-reads the fsynced copy after dropping its cached pages, so the bytes
    /// come from the disk, and compares them with the camera read: part by
    /// part on two threads for a multipart file (every byte is in one part),
    /// or by the whole-file hash for a file of one part.
    func verifyFromDisk(expected: SHA256Digest, partHashes: [String], partSize: Int64, file: MediaFile) throws {
        let reader = try FileDescriptor.open(FilePath(spool.temporaryDirectory + "/\(file.id).partial"), .readOnly, options: [.closeOnExec])
        defer { try? reader.close() }
        try Syscall.dropCachedPages(reader)
        Syscall.adviseSequential(reader)

        /// Hashes the byte ranges of `parts` (by index) and returns the indexes that differ.
        @Sendable func check(_ indexes: [Int]) -> [Int] {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkSize, alignment: 4096)
            defer { buffer.deallocate() }
            var mismatched: [Int] = []
            for index in indexes {
                let hasher = SHA256Hasher()
                var offset = Int64(index) * partSize
                let end = min(file.sourceSize, offset + partSize)
                while offset < end {
                    let want = Int(min(Int64(buffer.count), end - offset))
                    guard let got = try? Syscall.pread(reader, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]), at: offset), got > 0 else { break }
                    hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
                    offset += Int64(got)
                }
                let expectedHex = partHashes.count == 1 ? expected.hex : partHashes[index]
                if offset != end || hasher.finalize().hex != expectedHex { mismatched.append(index) }
            }
            return mismatched
        }

        let all = Array(0..<partHashes.count)
        var mismatched: [Int]
        if all.count > 1 {
            let odd = all.filter { $0 % 2 == 1 }
            let helperResult = Mutex<[Int]>([])
            let helperDone = DispatchSemaphore(value: 0)
            let helper = Thread {
                helperResult.withLock { $0 = check(odd) }
                helperDone.signal()
            }
            helper.name = "uploader.ingest.verify"
            helper.start()
            mismatched = check(all.filter { $0 % 2 == 0 })
            helperDone.wait()
            mismatched += helperResult.withLock { $0 }
        } else {
            mismatched = check(all)
        }
        guard mismatched.isEmpty else {
            throw UploaderError(.io, "the spool copy of \(file.sourcePath) read back differently from the camera (disk fault?); it will be copied again on the next run",
                                cause: "parts \(mismatched.sorted().map { String($0 + 1) }.joined(separator: ", ")) differ")
        }
        // The verified copy need not stay in the page cache.
        try? Syscall.dropCachedPages(reader)
    }

    func recordingTime(of source: FileDescriptor, file: MediaFile, info: stat, profile: IngestProfile) -> (date: Date, source: RecordingTimeSource) {
        let ext = file.name.split(separator: ".").last.map { $0.lowercased() } ?? ""
        switch profile.recordingTime {
        case .container:
            if ["mp4", "mov", "m4v", "m4a", "3gp"].contains(ext),
               let created = try? MP4RecordingTime.creationTime(of: source, fileSize: file.sourceSize) {
                let date = profile.cameraClock == .local ? Timestamps.localClockToUTC(created) : created
                return (date, .containerMetadata)
            }
        case .fileName(let pattern):
            let zone = profile.cameraClock == .local ? TimeZone.current : TimeZone(identifier: "UTC")!
            if let date = FileNameTime.date(in: file.name, pattern: pattern, timeZone: zone) {
                return (date, .fileName)
            }
        case .fileTime:
            break
        }
        let seconds = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        return (Date(timeIntervalSince1970: seconds), .fileModificationTime)
    }

    func ensureSpace(for size: Int64) throws {
        guard let space = spool.space() else { return }
        let needed = size + configuration.ingest.spoolReserveBytes
        if space.available < needed {
            throw UploaderError(.diskFull, "the spool disk is full (\(ByteCount.format(space.available)) free, \(ByteCount.format(needed)) needed): upload or purge verified files, then dock again; the rest stays safely on the camera")
        }
    }

    func spoolWriteError(_ error: Errno, file: MediaFile) -> UploaderError {
        if error == .noSpace || error == .diskQuotaExceeded {
            return UploaderError(.diskFull, "the spool disk filled up while copying \(file.sourcePath): free space, then dock again; nothing half-written was kept",
                                 cause: error.summary)
        }
        return UploaderError(.io, "writing the spool copy of \(file.sourcePath) failed: check the spool disk", cause: error.summary)
    }

    /// Opens a camera file through the one safe walk, with what each refusal means for the file.
    func openBeneath(_ root: FileDescriptor, _ relativePath: String) throws -> FileDescriptor {
        switch Result(catching: { () throws(Errno) -> FileDescriptor in try Syscall.openBeneath(root, relativePath) }) {
        case .success(let fd):
            return fd
        case .failure(.improperLink):
            throw UploaderError(.hostileEntry, "refusing the path \(DisplayText.escaped(relativePath)): it leaves the camera volume")
        case .failure(let error):
            switch error {
            case .tooManySymbolicLinkLevels, .notDirectory:
                throw UploaderError(.hostileEntry, "\(DisplayText.escaped(relativePath)) was replaced by a symbolic link after it was listed; links are never followed",
                                    cause: error.summary, underlying: .errno(error.rawValue))
            case .noSuchFileOrDirectory:
                throw UploaderError(.sourceChanged, "\(DisplayText.escaped(relativePath)) disappeared from the camera before it could be copied",
                                    cause: error.summary, underlying: .errno(error.rawValue))
            case .permissionDenied, .notPermitted:
                throw UploaderError(.unreadable, "\(DisplayText.escaped(relativePath)) cannot be read (permission denied); check how the camera is mounted",
                                    cause: error.summary, underlying: .errno(error.rawValue))
            default:
                throw UploaderError(.sourceVanished, "cannot open \(DisplayText.escaped(relativePath)) on the camera: the camera was probably removed; dock it again to resume",
                                    cause: error.summary, underlying: .errno(error.rawValue))
            }
        }
    }

    /// The configured part size, grown when needed so a file never needs
    /// more than S3's 10,000 parts.
    public static func partSize(forFileOfSize size: Int64, configured: Int64) -> Int64 {
        let mebibyte: Int64 = 1 << 20
        let smallest = (size + 9_999) / 10_000
        let rounded = (smallest + mebibyte - 1) / mebibyte * mebibyte
        return max(configured, rounded)
    }
}
