import Crypto
import Foundation
import GRDB
import UploaderCore

/// The rows as they stood when the log moved to framed hashes (schema v12):
/// one framed digest per file in `custody_baseline`, and their count and
/// combined digest in the `custody.format` event, which the chain and the
/// next signed checkpoint protect. A file whose last vouching event is older
/// than that event is checked against its baseline digest.
final class CustodyBaseline {
    private let hasher = SHA256Hasher()
    private(set) var count = 0

    func add(fileID: Int64, digest: String) {
        hasher.update(Array("\(fileID):\(digest)\n".utf8))
        count += 1
    }

    func finalize() -> String { hasher.finalize().hex }

    static func message(rows: Int, digest: String, rowDigestsSince: Int64?) -> String {
        "custody log upgraded to framed hashes (format 2): every field of this and every later event is length-prefixed in its hash, "
            + "and every event about a file carries its row digest; the file rows as they stand now are fixed in the custody baseline "
            + "[baseline rows=\(rows) digest=\(digest) row-digests-since=\(rowDigestsSince ?? 0)]"
    }

    /// What a `custody.format` event's message fixes.
    struct Fixed: Equatable {
        var rows: Int
        var digest: String
        /// The v7 upgrade event: from it on, legacy events about a file carry a row digest (0: none).
        var rowDigestsSince: Int64
    }

    static func parse(_ message: String) -> Fixed? {
        guard let open = message.range(of: "[baseline ", options: .backwards), message.hasSuffix("]") else { return nil }
        var values: [String: String] = [:]
        for pair in message[open.upperBound..<message.index(before: message.endIndex)].split(separator: " ") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        guard let rows = values["rows"].flatMap(Int.init), let digest = values["digest"], digest.count == 64,
              let since = values["row-digests-since"].flatMap(Int64.init) else { return nil }
        return Fixed(rows: rows, digest: digest, rowDigestsSince: since)
    }
}
