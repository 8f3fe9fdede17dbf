import Foundation

/// A spool encryption key: 32 random bytes, known by an id derived from it,
/// so a file names the key it needs without revealing anything of it.
public struct SpoolKey: Sendable, Equatable {
    public let id: String
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        precondition(bytes.count == AES256GCM.keySize, "a spool key is 32 bytes")
        self.bytes = bytes
        id = String(SHA256Hasher.hash(Array("uploader spool key id\n".utf8) + bytes).hex.prefix(16))
    }

    public static func random() throws -> SpoolKey { SpoolKey(bytes: try SecureRandom.bytes(AES256GCM.keySize)) }
}

/// The at-rest format of a spool copy: a 64-byte header, then the file in
/// fixed-size chunks, each sealed with AES-256-GCM under a key of its own
/// file (HMAC of the spool key and the header's random salt). A chunk's
/// nonce is its index and its associated data the whole header (which holds
/// the plaintext size), so a chunk that is altered, moved, dropped, repeated
/// or cut off, or a header that is edited, fails authentication.
///
///     "UPLSEAL1" | chunk size (u32 BE) | 0 (u32) | plaintext size (u64 BE) | key id (16 ASCII hex) | salt (24)
public struct SealedHeader: Sendable, Equatable {
    public static let size = 64
    static let magic = Array("UPLSEAL1".utf8)
    public static let defaultChunkSize = 1 << 20

    public var chunkSize: Int
    public var plaintextSize: Int64
    public var keyID: String
    public var salt: [UInt8]

    public init(chunkSize: Int = SealedHeader.defaultChunkSize, plaintextSize: Int64, keyID: String, salt: [UInt8]) {
        precondition(salt.count == 24 && keyID.utf8.count == 16 && chunkSize > 0)
        self.chunkSize = chunkSize
        self.plaintextSize = plaintextSize
        self.keyID = keyID
        self.salt = salt
    }

    public static func fresh(plaintextSize: Int64, key: SpoolKey) throws -> SealedHeader {
        SealedHeader(plaintextSize: plaintextSize, keyID: key.id, salt: try SecureRandom.bytes(24))
    }

    public init?(decoding bytes: [UInt8]) {
        guard bytes.count == Self.size, Array(bytes[0..<8]) == Self.magic else { return nil }
        func integer(_ range: Range<Int>) -> UInt64 { bytes[range].reduce(0) { $0 << 8 | UInt64($1) } }
        let chunk = integer(8..<12), size = integer(16..<24)
        guard chunk > 0, chunk <= 64 << 20, integer(12..<16) == 0, size <= UInt64(Int64.max / 2),
              let id = String(bytes: bytes[24..<40], encoding: .ascii), id.allSatisfy(\.isHexDigit) else { return nil }
        chunkSize = Int(chunk)
        plaintextSize = Int64(size)
        keyID = id
        salt = Array(bytes[40..<64])
    }

    public var encoded: [UInt8] {
        func bigEndian(_ value: UInt64, _ count: Int) -> [UInt8] { (0..<count).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) } }
        return Self.magic + bigEndian(UInt64(chunkSize), 4) + bigEndian(0, 4) + bigEndian(UInt64(plaintextSize), 8) + Array(keyID.utf8) + salt
    }

    /// Every file has at least one chunk (an empty file: one empty chunk, so its tag still vouches for it).
    public var chunkCount: Int64 { max(1, (plaintextSize + Int64(chunkSize) - 1) / Int64(chunkSize)) }
    public var sealedChunkSize: Int { chunkSize + AES256GCM.tagSize }
    /// The size of the whole sealed file.
    public var sealedSize: Int64 { Int64(Self.size) + plaintextSize + chunkCount * Int64(AES256GCM.tagSize) }
    /// Where chunk `index` starts in the file, and its sealed length.
    public func sealedRange(ofChunk index: Int64) -> (offset: Int64, length: Int) {
        let plain = Int(min(Int64(chunkSize), plaintextSize - index * Int64(chunkSize)))
        return (Int64(Self.size) + index * Int64(sealedChunkSize), plain + AES256GCM.tagSize)
    }

    /// The sealed size of a file of `plaintextSize` bytes with the default chunk size.
    public static func sealedSize(plaintext plaintextSize: Int64) -> Int64 {
        SealedHeader(plaintextSize: plaintextSize, keyID: String(repeating: "0", count: 16), salt: Array(repeating: 0, count: 24)).sealedSize
    }
}

/// Seals and opens the chunks of one file. Not Sendable: one per stream.
public final class ChunkCipher {
    public let header: SealedHeader
    private let aad: [UInt8]
    private let cipher: AES256GCM

    public init(key: SpoolKey, header: SealedHeader) {
        precondition(key.id == header.keyID, "the key is not the one the header names")
        self.header = header
        aad = header.encoded
        cipher = AES256GCM(key: HMACSHA256.mac(key: key.bytes, data: Array("uploader spool file key v1\n".utf8) + header.salt))
    }

    static func nonce(_ index: Int64) -> [UInt8] {
        [0, 0, 0, 0] + (0..<8).reversed().map { UInt8(truncatingIfNeeded: UInt64(index) >> (8 * UInt64($0))) }
    }

    /// Seals chunk `index` (its plaintext must be the chunk's full length).
    public func seal(chunk index: Int64, _ plaintext: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int {
        precondition(plaintext.count + AES256GCM.tagSize == header.sealedRange(ofChunk: index).length, "a chunk must be sealed whole")
        return cipher.seal(plaintext, nonce: Self.nonce(index), aad: aad, into: output)
    }

    /// Opens chunk `index`; nil when it is not exactly what was sealed there.
    public func open(chunk index: Int64, _ sealed: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) -> Int? {
        guard index >= 0, index < header.chunkCount, sealed.count == header.sealedRange(ofChunk: index).length else { return nil }
        return cipher.open(sealed, nonce: Self.nonce(index), aad: aad, into: output)
    }
}
