import Foundation
import GRDB
import UploaderCore

/// A signed checkpoint kept in the ledger until (and after) it is in the store.
public struct CheckpointRecord: Sendable, Equatable, Codable, FetchableRecord, ColumnNamed {
    public static let databaseTableName = "checkpoint"
    static let columnNames = ["eventID": "event_id", "chainHead": "chain_head", "createdAt": "created_at",
                              "objectKey": "object_key", "storedAt": "stored_at"]
    public var eventID: Int64
    public var chainHead: String
    /// The `SignedCheckpoint` JSON exactly as it goes to the store.
    public var body: String
    public var createdAt: Date
    public var objectKey: String?
    public var storedAt: Date?
}

extension Ledger {
    /// Signs a checkpoint of the log as it is now, unless the newest event is
    /// covered already. `sign` turns the payload into the stored checkpoint.
    @discardableResult
    public func signCheckpoint(dock: String, keyFingerprint: String, sign: (CheckpointPayload) throws -> SignedCheckpoint) throws -> CheckpointRecord? {
        try write("sign a custody checkpoint") { db in
            guard let head = try Row.fetchOne(db, sql: "SELECT id, hash FROM event ORDER BY id DESC LIMIT 1") else { return nil }
            let eventID: Int64 = head["id"]
            // Nothing new since the last checkpoint but the records of storing
            // checkpoints: signing again would only chase its own tail.
            let covered = try Int64.fetchOne(db, sql: "SELECT max(event_id) FROM checkpoint") ?? 0
            guard try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM event WHERE id > ? AND kind != ?)",
                                    arguments: [covered, EventKind.custodyCheckpoint.rawValue]) == true else { return nil }
            let events = try Int64.fetchOne(db, sql: "SELECT coalesce(sum(events), 0) FROM event_count") ?? 0
            let files = try Int64.fetchOne(db, sql: "SELECT coalesce(sum(files), 0) FROM file_count WHERE state != '~spool'") ?? 0
            let payload = CheckpointPayload(dock: dock, key: keyFingerprint, lastEventID: eventID, chainHead: head["hash"],
                                            events: events, files: files, at: Timestamps.iso(Date()))
            let signed = try sign(payload)
            let record = CheckpointRecord(eventID: eventID, chainHead: payload.chainHead, body: String(decoding: signed.encoded(), as: UTF8.self),
                                          createdAt: Date(), objectKey: nil, storedAt: nil)
            try db.execute(sql: "INSERT INTO checkpoint (event_id, chain_head, body, created_at) VALUES (?, ?, ?, ?)",
                           arguments: [record.eventID, record.chainHead, record.body, record.createdAt])
            return record
        }
    }

    /// Checkpoints not yet in the store, oldest first.
    public func pendingCheckpoints() throws -> [CheckpointRecord] {
        try read { db in try CheckpointRecord.fetchAll(db, sql: "SELECT * FROM checkpoint WHERE stored_at IS NULL ORDER BY event_id LIMIT 1000") }
    }

    /// How many checkpoints wait for the store, and since when the oldest does.
    public func unpublishedCheckpoints() throws -> UnpublishedCheckpoints {
        try read { db in
            let row = try Row.fetchOne(db, sql: "SELECT count(*) AS n, min(created_at) AS oldest, min(event_id) AS event FROM checkpoint WHERE stored_at IS NULL")
            return UnpublishedCheckpoints(count: row?["n"] ?? 0, oldestSignedAt: row?["oldest"], oldestEventID: row?["event"])
        }
    }

    public func markCheckpointStored(eventID: Int64, objectKey: String) throws {
        try write("record a stored checkpoint") { db in
            try db.execute(sql: "UPDATE checkpoint SET stored_at = ?, object_key = ? WHERE event_id = ? AND stored_at IS NULL",
                           arguments: [Date(), objectKey, eventID])
            guard db.changesCount == 1 else { return }
            try Ledger.append(EventDraft(.info, .custodyCheckpoint, "signed checkpoint of the custody log up to event \(eventID) stored as \(objectKey)"), in: db)
        }
    }

    /// Every checkpoint, in event order, a page per read (so `body` may read the ledger).
    public func forEachCheckpoint(_ body: (CheckpointRecord) throws -> Void) throws {
        var after: Int64 = -1
        while true {
            let page = try read { db in
                try CheckpointRecord.fetchAll(db, sql: "SELECT * FROM checkpoint WHERE event_id > ? ORDER BY event_id LIMIT 500", arguments: [after])
            }
            for record in page { try body(record) }
            guard page.count == 500, let last = page.last else { return }
            after = last.eventID
        }
    }

    /// The stored hash of one event; nil if there is no such event.
    public func eventHash(id: Int64) throws -> String? {
        try read { db in try String.fetchOne(db, sql: "SELECT hash FROM event WHERE id = ?", arguments: [id]) }
    }
}

/// Signed checkpoints not yet in the store (`uploader status`, alerts).
public struct UnpublishedCheckpoints: Sendable, Codable, Equatable {
    public var count: Int
    public var oldestSignedAt: Date?
    /// The event the oldest of them covers.
    public var oldestEventID: Int64?
}

extension Alert {
    /// An alert about the dock as a whole (no file, no camera).
    public init(key: String, message: String) {
        self.init(key: key, message: message, fileID: nil, serial: nil)
    }
}
