import Crypto
import Foundation
import Ledger
import Platform
import Spool
import Synchronization
import SystemPackage
import UploaderCore

/// The one-pass copy engine: camera → spool with SHA-256 of the whole file and
/// of each upload part, fsync, a re-read from disk (not the page cache), and an
/// atomic rename. It writes no ledger (it hands the ingest workflow the
/// `SpooledCopy` to record): the workflow decides what each outcome means for
/// the file. Blocking.
public struct CopyEngine: Sendable {
    public let spool: Spool
    public let configuredPartSize: Int64
    public let spoolReserveBytes: Int64
    /// Copies are sealed with its current key; nil: written in the clear.
    public let keyring: SpoolKeyring?
    static let chunkSize = 1 << 20
    /// Chunks read ahead of the copy loop (with the one it works on): 4 MiB, two huge pages.
    static let readAheadSlots = 4

    public init(spool: Spool, configuredPartSize: Int64, spoolReserveBytes: Int64, keyring: SpoolKeyring? = nil) {
        self.spool = spool
        self.configuredPartSize = configuredPartSize
        self.spoolReserveBytes = spoolReserveBytes
        self.keyring = keyring
    }

    /// The single pass: read the camera once, write the spool copy (sealed
    /// chunk by chunk when there is a keyring), hash both the whole file and
    /// each upload part; then fsync, re-read from disk to verify, and rename
    /// into place. `onBytes` hears of every chunk copied.
    public func secure(_ file: CameraFile, from root: FileDescriptor, profile: IngestProfile, stop: StopFlag? = nil,
                       onBytes: (Int) -> Void = { _ in }) throws -> SpooledCopy {
        try ensureSpace(for: file.sourceSize)
        let source = try openBeneath(root, file.sourcePath)
        defer { try? source.close() }
        let before = try Syscall.fstat(source)
        guard before.st_mode & S_IFMT == S_IFREG, Int64(before.st_size) == file.sourceSize else {
            throw UploaderError(.sourceChanged, "\(file.sourcePath) changed on the camera before it could be copied; its new version will be copied on the next run")
        }
        Syscall.adviseSequential(source)
        let recorded = recordingTime(of: source, file: file, info: before, profile: profile)
        let partSize = Self.partSize(forFileOfSize: file.sourceSize, configured: configuredPartSize)

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

        let writer: SpoolCopyWriter
        do {
            writer = try SpoolCopyWriter(fd: output, plaintextSize: file.sourceSize, key: keyring?.current)
        } catch let error as Errno {
            throw spoolWriteError(error, file: file)
        }
        // A second thread hashes while this one reads, seals and writes: the part
        // hashes of a larger file (this thread hashes the whole), or the whole
        // file's hash for a file of one part (its one part hash).
        let multipart = file.sourceSize > partSize
        let whole = multipart ? SHA256Hasher() : nil
        let parts = PartHasher(partSize: multipart ? partSize : Int64.max)
        var total: Int64 = 0
        let reader = ReadAhead(source: source, chunkSize: Self.chunkSize, slots: Self.readAheadSlots)
        defer {
            _ = parts.finish()
            reader.close()
        }
        var first = true
        while true {
            let chunk: UnsafeRawBufferPointer
            do {
                chunk = try reader.next()
            } catch {
                throw UploaderError(.sourceVanished, "reading \(file.sourcePath) from camera \(file.serial) failed: the camera was probably removed; dock it again to resume",
                                    cause: error.summary)
            }
            let count = chunk.count
            if count == 0 { break }
            guard total + Int64(count) <= file.sourceSize else {
                throw UploaderError(.sourceChanged, "\(file.sourcePath) grew while it was being copied (is the camera still writing it?); its new version will be copied on the next run")
            }
            // Returns once the part hasher is done with the chunk before, which this thread is done with too.
            parts.submit(chunk)
            if !first { reader.release() }
            first = false
            whole?.update(chunk)
            do {
                try writer.write(chunk)
            } catch let error as Errno {
                throw spoolWriteError(error, file: file)
            }
            total += Int64(count)
            onBytes(count)
            FailPoints.hit("ingest.chunk-written")
            if stop?.isRequested == true {
                throw UploaderError(.sourceVanished, "copying \(file.sourcePath) was stopped (camera unplugged or agent stopping); the next dock copies it again")
            }
        }
        let after = try Syscall.fstat(source)
        guard total == file.sourceSize, after.st_size == before.st_size,
              after.st_mtim.tv_sec == before.st_mtim.tv_sec, after.st_mtim.tv_nsec == before.st_mtim.tv_nsec else {
            throw UploaderError(.sourceChanged, "\(file.sourcePath) changed while it was being copied (is the camera still writing it?); its new version will be copied on the next run")
        }
        let partHashes = parts.finish()
        let digest = whole?.finalize() ?? partHashes[0]
        do {
            try writer.finish()
            try Syscall.fsync(output)
        } catch let error as Errno {
            throw spoolWriteError(error, file: file)
        }
        FailPoints.hit("ingest.copy-synced")
        try verifyFromDisk(partHashes: partHashes, partSize: partSize, file: file, header: writer.header)
        let spoolName = Spool.spoolName(fileID: file.id, sourcePath: file.sourcePath)
        try Syscall.renameAt(temporaryDirectory, temporaryName, objectsDirectory, spoolName)
        renamed = true
        try Syscall.fsync(objectsDirectory)
        FailPoints.hit("ingest.renamed")
        // Every source of a recording time is the camera's clock: a drift measured at this dock corrects it.
        let corrected = profile.clockDrift == 0 ? recorded.date : recorded.date.addingTimeInterval(-profile.clockDrift)
        return SpooledCopy(sha256: digest, spoolName: spoolName, partSize: partSize, partHashes: partHashes,
                           recordedAt: corrected, recordedAtSource: recorded.source, spoolKeyID: keyring?.current.id,
                           cameraRecordedAt: profile.clockDrift == 0 ? nil : recorded.date)
    }

    /// Re-reads the fsynced copy from the disk and proves it equal to the
    /// camera read (see `RereadProof`).
    func verifyFromDisk(partHashes: [SHA256Digest], partSize: Int64, file: CameraFile, header: SealedHeader?) throws {
        let sealing = header.flatMap { header in keyring.map { (key: $0.current, header: header) } }
        let proof = RereadProof(plaintextSize: file.sourceSize, partSize: partSize, partHashes: partHashes, sealing: sealing)
        let mismatched = try proof.mismatchedParts(path: spool.temporaryDirectory + "/\(file.id).partial")
        guard mismatched.isEmpty else {
            throw UploaderError(.io, "the spool copy of \(file.sourcePath) read back differently from the camera (disk fault?); it will be copied again on the next run",
                                cause: "parts \(mismatched.map { String($0 + 1) }.joined(separator: ", ")) differ")
        }
    }

    func recordingTime(of source: FileDescriptor, file: CameraFile, info: stat, profile: IngestProfile) -> (date: Date, source: RecordingTimeSource) {
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
        let needed = size + spoolReserveBytes
        if space.available < needed {
            throw UploaderError(.diskFull, "the spool disk is full (\(ByteCount.format(space.available)) free, \(ByteCount.format(needed)) needed): upload or purge verified files, then dock again; the rest stays safely on the camera")
        }
    }

    func spoolWriteError(_ error: Errno, file: CameraFile) -> UploaderError {
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
