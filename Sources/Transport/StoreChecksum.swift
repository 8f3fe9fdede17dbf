import Crypto
import Foundation

/// The one comparison of a store's `x-amz-checksum-sha256` with the file the
/// agent sent (the upload's verification, `verify`'s store check and camera
/// clearing all use it). Stores write the same proof in several forms:
/// `BASE64` for a single PUT, `BASE64-N` for a multipart object (the SHA-256
/// of the N parts' digests), the composite value without `-N`, and any of
/// them with or without `x-amz-checksum-type: COMPOSITE / FULL_OBJECT`.
/// What they share is the 32-byte value and, where given, the part count.
public enum StoreChecksum {
    /// What the agent knows the object must hash to.
    public struct Expected: Sendable, Equatable {
        /// SHA-256 of the whole file (a single PUT, or a store's FULL_OBJECT form).
        public var wholeFile: SHA256Digest
        /// The composite value of a multipart upload and its part count
        /// (nil count: a recorded proof that did not say).
        public var composite: SHA256Digest?
        public var parts: Int?

        public init(wholeFile: SHA256Digest, composite: SHA256Digest? = nil, parts: Int? = nil) {
            self.wholeFile = wholeFile
            self.composite = composite
            self.parts = parts
        }

        /// A file uploaded in `parts` (one part: a single PUT).
        public init(wholeFile: SHA256Digest, partDigests: [SHA256Digest]) {
            self.wholeFile = wholeFile
            if partDigests.count > 1 {
                let hasher = SHA256Hasher()
                for part in partDigests { hasher.update(part.bytes) }
                composite = hasher.finalize()
                parts = partDigests.count
            }
        }

        /// From a proof recorded at upload (`BASE64[-N]`); nil for a read-back
        /// proof (`sha256:<hex>`) or a form that cannot be read.
        public init?(wholeFile: SHA256Digest, recorded: String) {
            guard let parsed = Parsed(recorded) else { return nil }
            self.wholeFile = wholeFile
            if parsed.digest != wholeFile {
                composite = parsed.digest
                parts = parsed.parts
            }
        }
    }

    public enum Verdict: Sendable, Equatable {
        case matches
        /// A well-formed checksum of other bytes: the object is not the file.
        case differs
        /// A form the agent cannot read: only reading the object back can tell.
        case unreadable
    }

    /// A checksum header split into its value and optional part count.
    struct Parsed: Equatable {
        var digest: SHA256Digest
        var parts: Int?

        init?(_ header: String) {
            var value = Substring(header.trimmingCharacters(in: .whitespaces))
            if let dash = value.lastIndex(of: "-") {
                guard let count = Int(value[value.index(after: dash)...]), count > 0 else { return nil }
                parts = count
                value = value[..<dash]
            }
            guard let bytes = Data(base64Encoded: String(value)), bytes.count == 32 else { return nil }
            digest = SHA256Digest(bytes: Array(bytes))
        }
    }

    /// Compares the store's checksum (`header`, and `x-amz-checksum-type` when sent) with `expected`.
    public static func compare(_ header: String, type: String?, with expected: Expected) -> Verdict {
        guard let stored = Parsed(header) else { return .unreadable }
        switch type?.uppercased() {
        case "FULL_OBJECT":
            return stored.digest == expected.wholeFile && (stored.parts ?? 1) == 1 ? .matches : .differs
        case "COMPOSITE":
            guard let composite = expected.composite else {
                // A single PUT the store calls composite: its own value, without parts.
                return stored.digest == expected.wholeFile && (stored.parts ?? 1) == 1 ? .matches : .differs
            }
            return stored.digest == composite && partCountsAgree(stored.parts, expected.parts) ? .matches : .differs
        case nil, "":
            if stored.parts == nil || stored.parts == 1, stored.digest == expected.wholeFile { return .matches }
            if let composite = expected.composite, stored.digest == composite, partCountsAgree(stored.parts, expected.parts) { return .matches }
            return .differs
        default:
            return .unreadable
        }
    }

    /// The composite value already binds every part digest; a count, where both sides give one, must agree too.
    static func partCountsAgree(_ stored: Int?, _ expected: Int?) -> Bool {
        guard let stored, let expected else { return true }
        return stored == expected
    }
}
