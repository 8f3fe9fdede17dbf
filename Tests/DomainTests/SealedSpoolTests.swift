import Crypto
import Foundation
import Platform
import Spool
import SystemPackage
import Testing
import TestBasics
import UploaderCore

/// Spool copies at rest: AES-256-GCM in authenticated chunks, read back
/// by position, and every way of changing the bytes on disk refused.
@Suite struct SealedSpoolTests {
    static let chunk = SealedHeader.defaultChunkSize

    /// A sealed file of `size` pseudo-random bytes written in uneven pieces, and those bytes.
    struct Sealed {
        let folder = TemporaryDirectory("uploader-sealed")
        let keyring: SpoolKeyring
        let path: String
        let plaintext: [UInt8]

        init(size: Int, seed: UInt64 = 1) throws {
            keyring = try SpoolKeyring.loadOrCreate(path: folder.sub("spool-keys"))
            path = folder.sub("copy")
            var generator = SplitMix64(seed: seed)
            plaintext = (0..<size).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            let fd = try FileDescriptor.open(FilePath(path), .writeOnly, options: [.create, .exclusiveCreate], permissions: [.ownerReadWrite])
            defer { try? fd.close() }
            let writer = try SpoolCopyWriter(fd: fd, plaintextSize: Int64(size), key: keyring.current)
            var offset = 0
            var piece = 1
            while offset < size {
                // Pieces of 1 byte up to over a chunk: the writer's buffering at every boundary.
                let take = min(size - offset, piece)
                try plaintext[offset..<offset + take].withUnsafeBytes { try writer.write($0) }
                offset += take
                piece = piece * 7 % (SealedSpoolTests.chunk + 333) + 1
            }
            try writer.finish()
        }

        func read(at offset: Int64, count: Int, keyring: SpoolKeyring? = nil) throws -> [UInt8] {
            let (reader, fd) = try SpoolCopyReader.open(path, keyID: self.keyring.current.id, keyring: keyring ?? self.keyring)
            defer { try? fd.close() }
            var out: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: count)
            var at = offset
            while out.count < count {
                let got = try buffer.withUnsafeMutableBytes { try reader.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<(count - out.count)]), at: at) }
                if got == 0 { break }
                out += buffer[0..<got]
                at += Int64(got)
            }
            return out
        }

        func rawSize() throws -> Int64 { Int64(try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int) }

        func edit(_ change: (inout [UInt8]) -> Void) throws {
            var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            change(&bytes)
            try Data(bytes).write(to: URL(fileURLWithPath: path))
        }
    }

    @Test(arguments: [0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 5])
    func whatIsSealedReadsBackByteForByteFromAnyOffset(size: Int) throws {
        let sealed = try Sealed(size: size)
        #expect(try sealed.rawSize() == SealedHeader.sealedSize(plaintext: Int64(size)))
        #expect(try sealed.read(at: 0, count: size + 10) == sealed.plaintext)
        for offset in [1, Self.chunk - 3, Self.chunk, 2 * Self.chunk + 17] where offset < size {
            #expect(try sealed.read(at: Int64(offset), count: 4000) == Array(sealed.plaintext[offset..<min(size, offset + 4000)]))
        }
        // No plaintext run survives on disk.
        if size >= 64 {
            let raw = Array(try Data(contentsOf: URL(fileURLWithPath: sealed.path)))
            let probe = Array(sealed.plaintext[0..<32])
            #expect(!raw.indices.dropLast(31).contains { Array(raw[$0..<$0 + 32]) == probe })
        }
    }

    @Test func aFlippedBitFailsItsChunkAndOnlyItsChunk() throws {
        let sealed = try Sealed(size: 3 * Self.chunk)
        try sealed.edit { $0[SealedHeader.size + (Self.chunk + 16) + 100] ^= 0x01 }
        #expect(try sealed.read(at: 0, count: Self.chunk) == Array(sealed.plaintext[0..<Self.chunk]))
        #expect {
            _ = try sealed.read(at: Int64(Self.chunk), count: 10)
        } throws: { ($0 as? UploaderError)?.message.contains("fails authentication at chunk 2 of 3") == true }
    }

    @Test func swappedChunksFailAuthentication() throws {
        let sealed = try Sealed(size: 3 * Self.chunk)
        try sealed.edit { bytes in
            let size = Self.chunk + 16, first = SealedHeader.size, second = first + size
            let a = Array(bytes[first..<first + size])
            bytes.replaceSubrange(first..<first + size, with: bytes[second..<second + size])
            bytes.replaceSubrange(second..<second + size, with: a)
        }
        #expect(throws: UploaderError.self) { _ = try sealed.read(at: 0, count: 10) }
        #expect(throws: UploaderError.self) { _ = try sealed.read(at: Int64(Self.chunk), count: 10) }
        #expect(try sealed.read(at: Int64(2 * Self.chunk), count: 10) == Array(sealed.plaintext[2 * Self.chunk..<2 * Self.chunk + 10]))
    }

    @Test func aCutOffOrDroppedChunkIsRefusedAtOpen() throws {
        let sealed = try Sealed(size: 2 * Self.chunk + 10)
        try sealed.edit { $0.removeLast(10 + 16) }
        #expect { _ = try sealed.read(at: 0, count: 1) } throws: { ($0 as? UploaderError)?.message.contains("was cut short or extended") == true }
    }

    @Test func anEditedHeaderSizeFailsEveryChunk() throws {
        // Shrinking the announced size and the file together (dropping the last chunk) is still caught:
        // the header is every chunk's associated data.
        let sealed = try Sealed(size: 2 * Self.chunk)
        try sealed.edit { bytes in
            bytes.removeLast(Self.chunk + 16)
            let size = UInt64(Self.chunk)
            for index in 0..<8 { bytes[16 + index] = UInt8(truncatingIfNeeded: size >> (8 * UInt64(7 - index))) }
        }
        #expect(throws: UploaderError.self) { _ = try sealed.read(at: 0, count: 1) }
    }

    @Test func aCopyWhoseKeyIsGoneSaysWhichKeyAndWhere() throws {
        let sealed = try Sealed(size: 100)
        let other = try SpoolKeyring.loadOrCreate(path: sealed.folder.sub("other-keys"))
        #expect {
            _ = try sealed.read(at: 0, count: 1, keyring: other)
        } throws: {
            ($0 as? UploaderError)?.message.contains("is sealed with key \(sealed.keyring.current.id), which is not in the spool keyring \(other.path)") == true
        }
    }

    @Test func theKeyringIsPrivateAndRefusedWhenOthersCanReadIt() throws {
        let folder = TemporaryDirectory("uploader-keyring")
        let keyring = try SpoolKeyring.loadOrCreate(path: folder.sub("spool-keys"))
        let mode = try FileManager.default.attributesOfItem(atPath: keyring.path)[.posixPermissions] as! Int
        #expect(mode == 0o600)
        // Made once: a second load finds the same key.
        #expect(try SpoolKeyring.loadOrCreate(path: keyring.path).current == keyring.current)
        chmod(keyring.path, 0o640)
        #expect { _ = try SpoolKeyring.loadOrCreate(path: keyring.path) } throws: {
            ($0 as? UploaderError)?.message == "the spool keyring \(keyring.path) is readable by other users: run `chmod 600 \(keyring.path)`"
        }
        chmod(keyring.path, 0o600)
        try "garbage\n".write(toFile: keyring.path, atomically: false, encoding: .utf8)
        #expect { _ = try SpoolKeyring.loadOrCreate(path: keyring.path) } throws: { ($0 as? UploaderError)?.message.contains("is damaged at line 1") == true }
    }

    @Test func rotationKeepsOldKeysAndRetirementDropsOnlyUnusedOnesNobodyIsSealingWith() throws {
        let folder = TemporaryDirectory("uploader-keyring")
        let first = try SpoolKeyring.loadOrCreate(path: folder.sub("spool-keys"))
        let second = try first.rotated()
        #expect(second.entries.map(\.key) == [first.current, second.current] && second.current != first.current)
        let third = try second.rotated()
        // A process sealing copies now: nothing is retired under it.
        let sealing = try #require(try third.holdForSealing())
        #expect(try third.retiring { _ in true }.retired.isEmpty)
        try sealing.close()
        // The first key still seals a copy on disk; the second none: only the second goes, never the current.
        let (after, retired) = try third.retiring { $0 == second.current || $0 == third.current }
        #expect(retired == [second.current])
        #expect(after.entries.map(\.key) == [first.current, third.current])
        #expect(try SpoolKeyring.existing(path: folder.sub("spool-keys"))?.entries.map(\.key) == [first.current, third.current])
    }
}
