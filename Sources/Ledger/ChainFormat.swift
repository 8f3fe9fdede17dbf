import Crypto
import Foundation

/// How an event's fields (and a file row's fields) become the bytes a hash
/// covers. The format is part of the hashed bytes, and which format an event
/// uses follows from its place in the log, never from a column an insider
/// could edit: events before the ledger's `custody.format` event are legacy,
/// that event and every later one are framed.
public enum ChainFormat: Int, Codable, Sendable, Comparable {
    /// Before schema v12: fields joined by U+001F, the row digest and actor
    /// appended when either is set. Ambiguous when a field holds U+001F (text
    /// can move between fields, or a row digest into the message, without
    /// changing the hash), so `verify` refuses such events.
    case legacy = 1
    /// From schema v12: a tag naming the format, then each field with a
    /// presence byte (absent differs from empty) and its byte length.
    case framed = 2

    public static func < (lhs: ChainFormat, rhs: ChainFormat) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The separator legacy hashes joined fields with.
    public static let legacySeparator: Character = "\u{1F}"

    /// The framed bytes of `fields` under `tag`: unambiguous for any content.
    public static func framedDigest(tag: String, _ fields: [String?]) -> String {
        let hasher = SHA256Hasher()
        hasher.update(Array(tag.utf8) + [0])
        for field in fields {
            guard let field else {
                hasher.update([0])
                continue
            }
            let bytes = Array(field.utf8)
            var length = UInt64(bytes.count).bigEndian
            var header: [UInt8] = [1]
            withUnsafeBytes(of: &length) { header += $0 }
            hasher.update(header)
            hasher.update(bytes)
        }
        return hasher.finalize().hex
    }

    /// Whether legacy-joined `fields` could be split another way: a field that
    /// holds the separator lets text move between fields under the same hash.
    public static func isAmbiguousLegacy(_ fields: [String?]) -> Bool {
        // Bytes, not Characters: this runs for every legacy event of a long log.
        fields.contains { $0?.utf8.contains(0x1F) == true }
    }
}
