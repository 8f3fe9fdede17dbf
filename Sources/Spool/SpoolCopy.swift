import Crypto
import Foundation
import Platform
import SystemPackage
import UploaderCore

/// Writes a spool copy in the copy engine's single pass: sealed chunk by
/// chunk when it has a key, as it came otherwise. Not Sendable: one per copy.
public final class SpoolCopyWriter {
    let fd: FileDescriptor
    let cipher: ChunkCipher?
    /// Plaintext waiting for a whole chunk, and the chunk's sealed bytes.
    let pending: UnsafeMutableRawBufferPointer
    let sealed: UnsafeMutableRawBufferPointer
    var pendingCount = 0
    var chunkIndex: Int64 = 0
    public private(set) var plaintextWritten: Int64 = 0
    /// Bytes written to the file, and how far its writeback has been started:
    /// the disk takes the copy as it is made, so the fsync at the end has little left to do.
    var fileBytes: Int64 = 0
    var writebackStarted: Int64 = 0
    static let writebackStep: Int64 = 8 << 20
    /// The header of a sealed copy (its chunks' associated data); nil in the clear.
    public var header: SealedHeader? { cipher?.header }

    /// Writes the header at once. `key` nil: the copy is written in the clear.
    public init(fd: FileDescriptor, plaintextSize: Int64, key: SpoolKey?) throws {
        self.fd = fd
        if let key {
            let header = try SealedHeader.fresh(plaintextSize: plaintextSize, key: key)
            cipher = ChunkCipher(key: key, header: header)
            pending = .allocate(byteCount: header.chunkSize, alignment: 4096)
            sealed = .allocate(byteCount: header.sealedChunkSize, alignment: 4096)
            _ = try fd.writeAll(header.encoded)
            fileBytes = Int64(SealedHeader.size)
        } else {
            cipher = nil
            pending = .allocate(byteCount: 0, alignment: 1)
            sealed = .allocate(byteCount: 0, alignment: 1)
        }
    }

    deinit {
        pending.deallocate()
        sealed.deallocate()
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        plaintextWritten += Int64(bytes.count)
        guard let cipher else {
            try append(bytes)
            return
        }
        precondition(plaintextWritten <= cipher.header.plaintextSize, "more bytes than the header announced")
        var rest = bytes
        while !rest.isEmpty {
            // A whole chunk in hand is sealed where it is, not copied to `pending` first.
            if pendingCount == 0, rest.count >= pending.count {
                try seal(UnsafeRawBufferPointer(rebasing: rest.prefix(pending.count)))
                rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst(pending.count))
                continue
            }
            let take = min(rest.count, pending.count - pendingCount)
            UnsafeMutableRawBufferPointer(rebasing: pending[pendingCount..<pendingCount + take]).copyMemory(from: UnsafeRawBufferPointer(rebasing: rest.prefix(take)))
            pendingCount += take
            rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst(take))
            if pendingCount == pending.count { try sealPending() }
        }
    }

    /// Seals the last chunk (possibly short, possibly empty). The bytes
    /// written must be the size the header announced.
    public func finish() throws {
        guard let cipher else { return }
        precondition(plaintextWritten == cipher.header.plaintextSize, "fewer bytes than the header announced")
        if pendingCount > 0 || chunkIndex < cipher.header.chunkCount { try sealPending() }
    }

    private func sealPending() throws {
        try seal(UnsafeRawBufferPointer(rebasing: pending[0..<pendingCount]))
        pendingCount = 0
    }

    private func seal(_ plaintext: UnsafeRawBufferPointer) throws {
        let count = cipher!.seal(chunk: chunkIndex, plaintext, into: sealed)
        try append(UnsafeRawBufferPointer(rebasing: sealed[0..<count]))
        chunkIndex += 1
    }

    private func append(_ bytes: UnsafeRawBufferPointer) throws {
        _ = try fd.writeAll(bytes)
        fileBytes += Int64(bytes.count)
        if fileBytes - writebackStarted >= Self.writebackStep {
            Syscall.startWriteback(fd, offset: writebackStarted, length: fileBytes - writebackStarted)
            writebackStarted = fileBytes
        }
    }
}

/// Reads a spool copy by position, opening sealed chunks as it goes (one
/// chunk decrypted at a time: memory does not grow with the file). Every
/// byte it returns has passed authentication. Not Sendable: one per reader.
public final class SpoolCopyReader: PositionalReader {
    let fd: FileDescriptor
    let name: String
    public let plaintextSize: Int64
    let cipher: ChunkCipher?
    let sealed: UnsafeMutableRawBufferPointer
    let plain: UnsafeMutableRawBufferPointer
    var cachedChunk: Int64 = -1
    var cachedCount = 0

    /// `keyID` is the ledger's: nil for a copy written in the clear (before
    /// encryption, or with it turned off). `name` names the copy in errors.
    public init(fd: FileDescriptor, name: String, keyID: String?, keyring: SpoolKeyring?) throws {
        self.fd = fd
        self.name = name
        let size = Int64(try Syscall.fstat(fd).st_size)
        guard let keyID else {
            plaintextSize = size
            cipher = nil
            sealed = .allocate(byteCount: 0, alignment: 1)
            plain = .allocate(byteCount: 0, alignment: 1)
            return
        }
        var headerBytes = [UInt8](repeating: 0, count: SealedHeader.size)
        let got = try headerBytes.withUnsafeMutableBytes { try Syscall.pread(fd, into: $0, at: 0) }
        guard got == SealedHeader.size, let header = SealedHeader(decoding: headerBytes), header.keyID == keyID else {
            throw UploaderError(.spoolCorrupted, "the spool copy \(name) has no valid encryption header: it was damaged on disk; dock the camera again to copy it afresh")
        }
        guard let key = keyring?.key(id: keyID) else {
            throw UploaderError(.spoolCorrupted, "the spool copy \(name) is sealed with key \(keyID), which is not in the spool keyring\(keyring.map { " \($0.path)" } ?? ""): restore the keyring from backup")
        }
        guard size == header.sealedSize else {
            throw UploaderError(.spoolCorrupted, "the spool copy \(name) is \(size) bytes, its header says \(header.sealedSize): it was cut short or extended; dock the camera again to copy it afresh")
        }
        plaintextSize = header.plaintextSize
        cipher = ChunkCipher(key: key, header: header)
        sealed = .allocate(byteCount: header.sealedChunkSize, alignment: 4096)
        plain = .allocate(byteCount: header.chunkSize, alignment: 4096)
    }

    deinit {
        sealed.deallocate()
        plain.deallocate()
    }

    /// Opens the copy at `path` (read-only, no links followed).
    public static func open(_ path: String, keyID: String?, keyring: SpoolKeyring?) throws -> (SpoolCopyReader, FileDescriptor) {
        let fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec, .noFollow])
        do {
            return (try SpoolCopyReader(fd: fd, name: (path as NSString).lastPathComponent, keyID: keyID, keyring: keyring), fd)
        } catch {
            try? fd.close()
            throw error
        }
    }

    /// Whether the copy is sealed (each chunk authenticated as it is read), not in the clear.
    public var isSealed: Bool { cipher != nil }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        guard offset < plaintextSize, buffer.count > 0 else { return 0 }
        guard let cipher else { return try Syscall.pread(fd, into: buffer, at: offset) }
        let chunkSize = Int64(cipher.header.chunkSize)
        let index = offset / chunkSize
        // A whole chunk asked for: opened straight into the caller's buffer, not copied from `plain`.
        if offset == index * chunkSize, index != cachedChunk, buffer.count >= cipher.header.sealedRange(ofChunk: index).length - AES256GCM.tagSize {
            return try open(chunk: index, cipher, into: buffer)
        }
        try open(chunk: index, cipher)
        let start = Int(offset - index * chunkSize)
        let take = min(buffer.count, cachedCount - start)
        buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: plain[start..<start + take]))
        return take
    }

    /// Opens (authenticates) every sealed chunk holding a byte of
    /// `start..<end` (an empty copy: its one empty chunk), copying nothing
    /// out; throws at the first that is not what was sealed there.
    public func authenticate(from start: Int64, to end: Int64) throws {
        guard let cipher else { return }
        let chunkSize = Int64(cipher.header.chunkSize)
        let last = min(cipher.header.chunkCount, max(start / chunkSize + 1, (end + chunkSize - 1) / chunkSize))
        for index in (start / chunkSize)..<last { try open(chunk: index, cipher) }
    }

    /// Reads and opens chunk `index` into `plain`, unless it is there already.
    private func open(chunk index: Int64, _ cipher: ChunkCipher) throws {
        guard index != cachedChunk else { return }
        cachedCount = try open(chunk: index, cipher, into: plain)
        cachedChunk = index
    }

    /// Reads and opens chunk `index` into `output`; returns its plaintext length.
    private func open(chunk index: Int64, _ cipher: ChunkCipher, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        let range = cipher.header.sealedRange(ofChunk: index)
        var filled = 0
        while filled < range.length {
            let got = try Syscall.pread(fd, into: UnsafeMutableRawBufferPointer(rebasing: sealed[filled..<range.length]), at: range.offset + Int64(filled))
            if got == 0 { break }
            filled += got
        }
        guard filled == range.length,
              let count = cipher.open(chunk: index, UnsafeRawBufferPointer(rebasing: sealed[0..<range.length]), into: output) else {
            cachedChunk = -1
            throw UploaderError(.spoolCorrupted, "the spool copy \(name) fails authentication at chunk \(index + 1) of \(cipher.header.chunkCount): it was altered or damaged on disk; dock the camera again to copy it afresh")
        }
        return count
    }
}
