import Foundation
import GRDB
import UploaderCore

/// One event exactly as stored, every field its hash covers as text: what
/// an evidence bag carries so the chain can be recomputed without the ledger.
public struct ChainEvent: Codable, Sendable, Equatable {
    public var id: Int64
    public var at: String
    public var level: String
    public var kind: String
    public var fileID: Int64?
    public var serial: String?
    public var user: String?
    public var message: String
    public var previousHash: String
    public var hash: String
    public var rowDigest: String?
    public var actor: String?
    /// How its hash is computed (nil in bags written before v12: legacy).
    public var format: ChainFormat?

    init(_ row: Row, formatFrom formatStart: Int64?) {
        id = row["id"]
        at = row["at"]
        level = row["level"]
        kind = row["kind"]
        fileID = row["file_id"]
        serial = row["serial"]
        user = row["user_id"]
        message = row["message"]
        previousHash = row["prev_hash"]
        hash = row["hash"]
        rowDigest = row["row_digest"]
        actor = row["actor"]
        format = formatStart.map { id >= $0 } == true ? .framed : .legacy
    }

    public var hashFormat: ChainFormat { format ?? .legacy }

    /// What the event's format promises and this event breaks, or nil.
    /// `rowDigestsSince`: the v7 upgrade event, from which legacy events about
    /// a file carry their row digest (nil: not reached yet).
    public func formatProblem(rowDigestsSince: Int64?) -> String? {
        switch hashFormat {
        case .legacy:
            if ChainFormat.isAmbiguousLegacy(legacyFields) {
                return "event \(id) holds a field separator (U+001F) inside a field: its hash cannot tell which field said what, so its content is not proven"
            }
            if fileID != nil, let since = rowDigestsSince, id > since, rowDigest?.isEmpty ?? true {
                return "event \(id) names file \(fileID!) but carries no row digest, which every such event has since event \(since): its digest was removed"
            }
        case .framed:
            if fileID != nil, rowDigest?.isEmpty ?? true {
                return "event \(id) names file \(fileID!) but carries no row digest: it was removed"
            }
        }
        return nil
    }

    /// The fields as the legacy hash joined them.
    var legacyFields: [String?] { [at, level, kind, serial, user, message, rowDigest, actor] }

    /// The hash this event's fields and its predecessor's hash give.
    public var recomputedHash: String {
        Ledger.eventHash(format: hashFormat, previous: previousHash, at: at, level: level, kind: kind, fileID: fileID, serial: serial, user: user,
                         message: message, rowDigest: rowDigest, actor: actor)
    }
}

/// The fields a row digest covers, in `HotSQL.fileRowDigestFields`'s order.
public enum RowDigestField: Int, CaseIterable, Sendable {
    case id, serial, sourcePath, sourceSize, state, holdReason, sha256, user, objectKey, recordedAt, storeChecksum
    /// From v12 (framed digests only).
    case storeVersionID

    /// How many fields legacy (U+001F-joined) digests covered.
    public static let legacyCount = 11
}

extension Ledger {
    /// Events `from`…`through`, in order, a page per read.
    public func forEachChainEvent(from first: Int64, through last: Int64, _ body: (ChainEvent) throws -> Void) throws {
        var next = first
        while next <= last {
            let page = try read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM event WHERE id >= ? AND id <= ? ORDER BY id LIMIT 1000", arguments: [next, last])
                    .map { ChainEvent($0, formatFrom: formatStart) }
            }
            for event in page { try body(event) }
            guard let tail = page.last, page.count == 1000 else { return }
            next = tail.id + 1
        }
    }

    /// The first and last event about a file.
    public func eventSpan(file id: Int64) throws -> (first: Int64, last: Int64)? {
        try read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT min(id) AS first, max(id) AS last FROM event WHERE file_id = ?", arguments: [id]),
                  let first = row["first"] as Int64?, let last = row["last"] as Int64? else { return nil }
            return (first, last)
        }
    }

    /// The oldest checkpoint that covers event `id`.
    public func firstCheckpoint(covering id: Int64) throws -> CheckpointRecord? {
        try read { db in try CheckpointRecord.fetchOne(db, sql: "SELECT * FROM checkpoint WHERE event_id >= ? ORDER BY event_id LIMIT 1", arguments: [id]) }
    }

    /// The fields a file's row digest covers, as text, in their fixed order.
    public func rowDigestFields(file id: Int64) throws -> [String]? {
        try read { db in try Row.fetchOne(db, sql: HotSQL.fileRowDigestFields, arguments: [id]).map(Ledger.rowDigestFields) }
    }
}
