import Crypto
import Foundation
import Platform
import Spool
import Synchronization
import SystemPackage
import UploaderCore

/// The proof that a fsynced spool copy on disk is the camera read: every
/// byte is read back from the disk, never the page cache (O_DIRECT; where
/// the file system has none, after dropping the file's cached pages), in
/// large aligned reads on two threads. A sealed copy is proved by AES-GCM:
/// its header must be the one written, and each chunk's tag authenticates
/// its bytes on disk as exactly those sealed from the buffer the copy pass
/// hashed, so no second SHA-256 is needed. A copy in the clear is hashed
/// again part by part (its one part: the whole file) and compared with the
/// camera read's hashes.
struct RereadProof {
    let plaintextSize: Int64
    let partSize: Int64
    let partHashes: [SHA256Digest]
    /// The key and header a sealed copy was written with; nil: in the clear.
    let sealing: (key: SpoolKey, header: SealedHeader)?

    /// Sealed chunks authenticated per read (about 1 MiB), and the read size
    /// in the clear: each read with its alignment fits one 2 MiB huge page
    /// (`IOBuffer`), in which a direct read of 1 MiB ran as fast as larger
    /// ones; memory stays flat (two threads, one buffer each).
    static let chunksPerRead = 1
    static let clearReadSize = 1 << 20

    /// Reads the copy at `path` back from the disk; returns the indexes of the parts that differ.
    func mismatchedParts(path: String) throws -> [Int] {
        let uncached = try Syscall.openUncached(path)
        let reader = try uncached ?? FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec, .noFollow])
        defer { try? reader.close() }
        if uncached == nil {
            try Syscall.dropCachedPages(reader)
            Syscall.adviseSequential(reader)
        }
        FailPoints.hit("ingest.before-reread", file: reader)
        let units = sealing.map { Int(($0.header.chunkCount + Int64(Self.chunksPerRead) - 1) / Int64(Self.chunksPerRead)) } ?? partHashes.count
        let mismatched: [Int]
        if units > 1 {
            let helperResult = Mutex<[Int]>([])
            let helperDone = DispatchSemaphore(value: 0)
            let helper = Thread {
                helperResult.withLock { $0 = check(units: stride(from: 1, to: units, by: 2), reader: reader) }
                helperDone.signal()
            }
            helper.name = "uploader.ingest.verify"
            helper.start()
            let own = check(units: stride(from: 0, to: units, by: 2), reader: reader)
            helperDone.wait()
            mismatched = own + helperResult.withLock { $0 }
        } else {
            mismatched = check(units: stride(from: 0, to: units, by: 1), reader: reader)
        }
        // The verified copy need not stay in the page cache (its pages from the write).
        try? Syscall.dropCachedPages(reader)
        return Array(Set(mismatched)).sorted()
    }

    /// Proves the given units (sealed: groups of chunks; clear: parts) and returns the parts that differ.
    private func check(units: StrideTo<Int>, reader: FileDescriptor) -> [Int] {
        let alignment = Syscall.uncachedAlignment
        let chunkRead = sealing.map { Self.chunksPerRead * $0.header.sealedChunkSize } ?? 0
        let capacity = ((sealing == nil ? Self.clearReadSize : chunkRead) + 2 * alignment + alignment - 1) / alignment * alignment
        let buffer = IOBuffer.allocate(byteCount: capacity)
        defer { buffer.deallocate() }
        var mismatched: [Int] = []
        if let sealing {
            // One cipher per thread: an OpenSSL context is not shared.
            let cipher = ChunkCipher(key: sealing.key, header: sealing.header)
            let header = sealing.header
            for unit in units {
                let first = Int64(unit * Self.chunksPerRead)
                let last = min(header.chunkCount, first + Int64(Self.chunksPerRead)) - 1
                let end = header.sealedRange(ofChunk: last)
                let start = first == 0 ? 0 : header.sealedRange(ofChunk: first).offset
                var good = false
                if let base = read(reader, from: start, to: end.offset + Int64(end.length), into: buffer) {
                    good = first > 0 || Array(UnsafeRawBufferPointer(rebasing: buffer[base..<base + SealedHeader.size])) == header.encoded
                    for index in first...last where good {
                        let range = header.sealedRange(ofChunk: index)
                        let at = base + Int(range.offset - start)
                        // Opened in place: only the tag's verdict is wanted, not the plaintext.
                        let sealed = UnsafeMutableRawBufferPointer(rebasing: buffer[at..<at + range.length])
                        good = cipher.open(chunk: index, UnsafeRawBufferPointer(sealed), into: sealed) != nil
                    }
                }
                if !good {
                    let chunkSize = Int64(header.chunkSize)
                    let from = first * chunkSize, to = max(from + 1, min(plaintextSize, (last + 1) * chunkSize))
                    mismatched += Array(Int(from / partSize)...Int((to - 1) / partSize)).filter { $0 < partHashes.count }
                }
            }
            return mismatched
        }
        for part in units {
            let start = Int64(part) * partSize
            let end = min(plaintextSize, start + partSize)
            let hasher = SHA256Hasher()
            var offset = start
            while offset < end {
                let want = min(Int64(Self.clearReadSize), end - offset)
                guard let base = read(reader, from: offset, to: offset + want, into: buffer) else { break }
                hasher.update(UnsafeRawBufferPointer(rebasing: buffer[base..<base + Int(want)]))
                offset += want
            }
            if offset != end || hasher.finalize() != partHashes[part] { mismatched.append(part) }
        }
        return mismatched
    }

    /// Reads the file's bytes `start..<end` by their aligned cover (what
    /// O_DIRECT needs); returns where `start` landed in `buffer`, or nil
    /// when the file ends early or cannot be read.
    private func read(_ fd: FileDescriptor, from start: Int64, to end: Int64, into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        let alignment = Int64(Syscall.uncachedAlignment)
        let coverStart = start / alignment * alignment
        let coverEnd = (end + alignment - 1) / alignment * alignment
        let needed = Int(end - coverStart)
        var filled = 0
        while filled < needed {
            guard let got = try? Syscall.pread(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<Int(coverEnd - coverStart)]),
                                               at: coverStart + Int64(filled)), got > 0 else { return nil }
            filled += got
        }
        return Int(start - coverStart)
    }
}
