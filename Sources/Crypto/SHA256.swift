internal import COpenSSL

/// One EVP message-digest context: what SHA-256 and SHA-512 share.
final class EVPDigest {
    private let context: OpaquePointer
    private let size: Int

    init(_ algorithm: OpaquePointer?, size: Int) {
        OpenSSLLibrary.prepare()
        guard let context = EVP_MD_CTX_new() else {
            fatalError("EVP_MD_CTX_new failed: out of memory")
        }
        guard EVP_DigestInit_ex(context, algorithm, nil) == 1 else {
            fatalError("EVP_DigestInit_ex failed: OpenSSL is unusable")
        }
        self.context = context
        self.size = size
    }

    deinit {
        EVP_MD_CTX_free(context)
    }

    func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        guard EVP_DigestUpdate(context, base, bytes.count) == 1 else {
            fatalError("EVP_DigestUpdate failed")
        }
    }

    func finalize() -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        guard EVP_DigestFinal_ex(context, &output, &length) == 1, Int(length) == size else {
            fatalError("EVP_DigestFinal_ex failed")
        }
        return Array(output.prefix(size))
    }
}

/// A streaming SHA-256 over OpenSSL's EVP interface (the system's
/// FIPS-capable module). Feed it any number of chunks; memory stays constant.
///
/// Not Sendable: one hasher belongs to one copy loop.
public final class SHA256Hasher {
    private let digest = EVPDigest(EVP_sha256(), size: 32)

    public init() {}

    public func update(_ bytes: UnsafeRawBufferPointer) {
        digest.update(bytes)
    }

    public func update<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        let array = Array(bytes)
        array.withUnsafeBytes { update($0) }
    }

    /// Ends the hash. The hasher must not be used afterwards.
    public func finalize() -> SHA256Digest {
        SHA256Digest(bytes: digest.finalize())
    }

    public static func hash<Bytes: Sequence>(_ bytes: Bytes) -> SHA256Digest where Bytes.Element == UInt8 {
        let hasher = SHA256Hasher()
        hasher.update(bytes)
        return hasher.finalize()
    }

    public static func hash(_ string: String) -> SHA256Digest {
        hash(Array(string.utf8))
    }
}

/// Encoded as the lowercase hex the ledger and the custody log show.
extension SHA256Digest: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        guard let digest = SHA256Digest(hex: try container.decode(String.self)) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a SHA-256 in hex")
        }
        self = digest
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}

/// A SHA-256 value: 32 bytes, shown as lowercase hex in the ledger and as
/// base64 in S3's `x-amz-checksum-sha256`.
public struct SHA256Digest: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 32, "a SHA-256 digest is 32 bytes")
        self.bytes = bytes
    }

    public init?(hex: String) {
        guard hex.utf8.count == 64, let bytes = Hex.decode(hex) else { return nil }
        self.bytes = bytes
    }

    public var hex: String { Hex.encode(bytes) }

    public var base64: String { Base64.encode(bytes) }

    public var description: String { hex }

    /// S3's checksum of a multipart object: the SHA-256 of the concatenated
    /// raw part digests, followed by `-` and the part count.
    public static func compositeChecksum(ofParts parts: [SHA256Digest]) -> String {
        let hasher = SHA256Hasher()
        for part in parts { hasher.update(part.bytes) }
        return "\(hasher.finalize().base64)-\(parts.count)"
    }
}

/// Lowercase hex, as digests and keys are written in files, objects and the ledger.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The bytes of an even number of hex digits (either case); nil for anything else.
    public static func decode(_ text: String) -> [UInt8]? {
        guard text.utf8.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count / 2)
        var iterator = text.utf8.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            guard let h = nibble(high), let l = nibble(low) else { return nil }
            bytes.append(h << 4 | l)
        }
        return bytes
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index + 3 <= bytes.count {
            let n = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]]
            index += 3
        }
        let rest = bytes.count - index
        if rest == 1 {
            let n = UInt32(bytes[index]) << 16
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], UInt8(ascii: "="), UInt8(ascii: "=")]
        } else if rest == 2 {
            let n = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], UInt8(ascii: "=")]
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// A streaming SHA-512 (EVP), for BagIt's second manifest.
public final class SHA512Hasher {
    private let digest = EVPDigest(EVP_sha512(), size: 64)

    public init() {}

    public func update(_ bytes: UnsafeRawBufferPointer) {
        digest.update(bytes)
    }

    /// The digest in lowercase hex. The hasher must not be used afterwards.
    public func finalizeHex() -> String {
        Hex.encode(digest.finalize())
    }
}

/// The SHA-256 of each `partSize` part of a stream, as an S3 multipart
/// upload's checksum is made of them: fed chunks of any size, in order.
///
/// Not Sendable: one belongs to one reading loop.
public final class PartDigests {
    public let partSize: Int64
    private var part = SHA256Hasher()
    private var inPart: Int64 = 0
    private var digests: [SHA256Digest] = []

    public init(partSize: Int64) {
        precondition(partSize > 0, "a part size must be positive")
        self.partSize = partSize
    }

    public func update(_ chunk: UnsafeRawBufferPointer) {
        var consumed = 0
        while consumed < chunk.count {
            let take = Int(min(Int64(chunk.count - consumed), partSize - inPart))
            part.update(UnsafeRawBufferPointer(rebasing: chunk[consumed..<(consumed + take)]))
            consumed += take
            inPart += Int64(take)
            if inPart == partSize {
                digests.append(part.finalize())
                part = SHA256Hasher()
                inPart = 0
            }
        }
    }

    /// Ends the last part (an empty stream is one empty part). Call once.
    public func finalize() -> [SHA256Digest] {
        if inPart > 0 || digests.isEmpty { digests.append(part.finalize()) }
        return digests
    }
}
