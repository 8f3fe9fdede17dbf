import Foundation
import GRDB
import UploaderCore

/// What ingest learned about a copied file, recorded by `markSpooled`.
public struct SpooledCopy: Sendable {
    public var sha256: String
    public var spoolName: String
    public var partSize: Int64
    public var partHashes: [String]
    public var recordedAt: Date
    public var recordedAtSource: RecordingTimeSource

    public init(sha256: String, spoolName: String, partSize: Int64, partHashes: [String], recordedAt: Date, recordedAtSource: RecordingTimeSource) {
        self.sha256 = sha256
        self.spoolName = spoolName
        self.partSize = partSize
        self.partHashes = partHashes
        self.recordedAt = recordedAt
        self.recordedAtSource = recordedAtSource
    }
}

extension Ledger {
    // MARK: - Ingest

    /// Finds the row for this camera file, creating it the first time it is
    /// seen. The identity (serial, path, size, mtime) is UNIQUE in the schema.
    public func discover(serial: String, sourcePath: String, size: Int64, modifiedNanoseconds: Int64) throws -> (file: MediaFile, isNew: Bool) {
        try write("record a discovered file") { db in
            let identity: StatementArguments = [serial, sourcePath, size, modifiedNanoseconds]
            let select = "SELECT * FROM media_file WHERE serial = ? AND source_path = ? AND source_size = ? AND source_mtime_ns = ?"
            if let row = try Row.fetchOne(db, sql: select, arguments: identity) {
                return (MediaFile(row: row), false)
            }
            let now = Date()
            try db.execute(sql: """
                INSERT INTO media_file (serial, source_path, source_size, source_mtime_ns, state, discovered_at, updated_at)
                VALUES (?, ?, ?, ?, 'discovered', ?, ?)
                """, arguments: [serial, sourcePath, size, modifiedNanoseconds, now, now])
            let id = db.lastInsertedRowID
            try Ledger.append(EventDraft(.info, "file.discovered", fileID: id, serial: serial,
                                         "found \(sourcePath) (\(size) bytes) on camera \(serial)"), in: db)
            return (MediaFile(row: try Row.fetchOne(db, sql: select, arguments: identity)!), true)
        }
    }

    public func markCopying(_ id: Int64) throws {
        try transition(id, to: .copying, kind: "file.copying", level: .debug, message: "copying into the spool")
    }

    /// The copy is fsynced, re-read from disk, verified and renamed. The file
    /// is held when its camera is not registered.
    public func markSpooled(_ id: Int64, copy: SpooledCopy) throws -> MediaFile {
        try write("record a spooled file") { db in
            guard let current = try Ledger.file(id, in: db) else {
                throw UploaderError(.ledger, "file #\(id) vanished from the ledger")
            }
            if let firstHash = current.sha256, firstHash != copy.sha256 {
                // The same camera file (path, size, mtime) now reads differently from
                // its first read: never replace the first hash, hold it for a person.
                let message = "camera file \(current.sourcePath) no longer matches its first read (was \(firstHash), now \(copy.sha256)); hold it for review"
                try Ledger.setState(id, .quarantined, hold: .cameraFileChanged, error: message, in: db)
                try Ledger.append(EventDraft(.error, "file.mismatch", fileID: id, serial: current.serial, message), in: db)
                throw UploaderError(.verification, message)
            }
            let user = try Ledger.attributedUser(serial: current.serial, recordedAt: copy.recordedAt, in: db)
            let state: FileState = user == nil ? .quarantined : .spooled
            try db.execute(sql: """
                UPDATE media_file SET state = ?, hold_reason = ?, sha256 = ?, spool_name = ?, part_size = ?,
                    recorded_at = ?, recorded_at_source = ?, user_id = ?, last_error = NULL, next_attempt_at = NULL,
                    spooled_at = ?, updated_at = ?
                WHERE id = ?
                """, arguments: [state.rawValue, user == nil ? HoldReason.unknownDevice.rawValue : nil, copy.sha256,
                                 copy.spoolName, copy.partSize, copy.recordedAt, copy.recordedAtSource.rawValue, user,
                                 Date(), Date(), id])
            try db.execute(sql: "DELETE FROM file_part WHERE file_id = ?", arguments: [id])
            var offset: Int64 = 0
            for (index, hash) in copy.partHashes.enumerated() {
                let size = min(copy.partSize, current.sourceSize - offset)
                try db.execute(sql: "INSERT INTO file_part (file_id, part_number, offset, size, sha256) VALUES (?, ?, ?, ?, ?)",
                               arguments: [id, index + 1, offset, size, hash])
                offset += size
            }
            try Ledger.append(EventDraft(.info, "file.spooled", fileID: id, serial: current.serial, user: user,
                                         "copied and verified: sha256 \(copy.sha256), recorded \(Timestamps.iso(copy.recordedAt)) (from \(copy.recordedAtSource.rawValue))"), in: db)
            if user == nil {
                try Ledger.append(EventDraft(.warning, "file.held", fileID: id, serial: current.serial,
                                             "held: camera \(current.serial) is not registered; run `uploader device add \(current.serial) --user ID` to release it"), in: db)
            }
            return try Ledger.file(id, in: db)!
        }
    }

    /// A problem with the file itself (hostile name, unreadable): held for a person.
    public func quarantine(_ id: Int64, reason: HoldReason, message: String) throws {
        try write("quarantine a file") { db in
            try Ledger.setState(id, .quarantined, hold: reason, error: message, in: db)
            let file = try Ledger.file(id, in: db)
            try Ledger.append(EventDraft(.error, "file.quarantined", fileID: id, serial: file?.serial, user: file?.user,
                                         "quarantined (\(reason.rawValue)): \(message)"), in: db)
        }
    }

    /// A failed file: with `retryAt` the upload queue takes it again after that
    /// time; without, it waits for the next dock (not yet spooled) or an admin's `retry`.
    public func markFailed(_ id: Int64, error: String, retryAt: Date?, level: LedgerEvent.Level = .error) throws {
        try write("record a failure") { db in
            try db.execute(sql: "UPDATE media_file SET state = 'failed', last_error = ?, next_attempt_at = ?, updated_at = ? WHERE id = ?",
                           arguments: [error, retryAt, Date(), id])
            let file = try Ledger.file(id, in: db)
            try Ledger.append(EventDraft(level, "file.failed", fileID: id, serial: file?.serial, user: file?.user,
                                         error + (retryAt.map { "; next attempt after \(Timestamps.iso($0))" } ?? "")), in: db)
        }
    }

    /// The upload could not start for a reason outside the file (credentials,
    /// bucket): back to `spooled`, with the reason shown in `status`.
    public func markWaiting(_ id: Int64, reason: String) throws {
        try write("record a refused upload") { db in
            try db.execute(sql: """
                UPDATE media_file SET state = 'spooled', last_error = ?, attempts = MAX(attempts - 1, 0), updated_at = ?
                WHERE id = ? AND state = 'uploading'
                """, arguments: [reason, Date(), id])
            let file = try Ledger.file(id, in: db)
            try Ledger.append(EventDraft(.error, "upload.refused", fileID: id, serial: file?.serial, user: file?.user, reason), in: db)
        }
    }

    /// The camera file changed or vanished after it was listed: this row's
    /// identity (path, size, time) is gone; the new version gets a row of its own.
    public func markSuperseded(_ id: Int64, reason: String) throws {
        try write("record a superseded file") { db in
            try Ledger.setState(id, .cancelled, error: reason, in: db)
            let file = try Ledger.file(id, in: db)
            try Ledger.append(EventDraft(.warning, "file.superseded", fileID: id, serial: file?.serial, user: file?.user, reason), in: db)
        }
    }

    /// Verified files whose spool copy is older than the retention period.
    public func purgeCandidates(verifiedBefore cutoff: Date) throws -> [MediaFile] {
        try read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM media_file WHERE state = 'verified' AND spool_name IS NOT NULL AND spool_purged_at IS NULL
                  AND verified_at <= ? ORDER BY verified_at
                """, arguments: [cutoff]).map(MediaFile.init(row:))
        }
    }

    /// The spool copy is gone; the store holds the verified original.
    public func markPurged(_ id: Int64) throws {
        try write("record a purged spool copy") { db in
            try db.execute(sql: "UPDATE media_file SET spool_purged_at = ?, updated_at = ? WHERE id = ? AND state = 'verified'", arguments: [Date(), Date(), id])
            guard db.changesCount == 1 else { throw UploaderError(.ledger, "file #\(id) is not verified: its spool copy is kept") }
            let file = try Ledger.file(id, in: db)
            try Ledger.append(EventDraft(.info, "spool.purged", fileID: id, serial: file?.serial, user: file?.user,
                                         "spool copy deleted per retention policy; verified in the store as \(file?.objectKey ?? "?")"), in: db)
        }
    }

    /// An event about a file that is not a state change (for example a retry).
    public func note(_ id: Int64, level: LedgerEvent.Level, kind: String, _ message: String) throws {
        try write("write to the custody log") { db in
            let file = try Ledger.file(id, in: db)
            try Ledger.append(EventDraft(level, kind, fileID: id, serial: file?.serial, user: file?.user, message), in: db)
        }
    }

    // MARK: - Upload

    /// Files named by an admin: `#12` or `12` (ledger id), else a part of the
    /// camera path or object key; with a serial or user, all of theirs.
    public func select(files: [String] = [], serial: String? = nil, user: String? = nil) throws -> [MediaFile] {
        try read { db in
            var rows: [Row] = []
            for item in files {
                if let id = Int64(item.trimmingCharacters(in: CharacterSet(charactersIn: "#"))) {
                    rows += try Row.fetchAll(db, sql: "SELECT * FROM media_file WHERE id = ?", arguments: [id])
                } else {
                    rows += try Row.fetchAll(db, sql: "SELECT * FROM media_file WHERE instr(source_path, ?) > 0 OR instr(object_key, ?) > 0",
                                             arguments: [item, item])
                }
            }
            if let serial { rows += try Row.fetchAll(db, sql: "SELECT * FROM media_file WHERE serial = ?", arguments: [serial]) }
            if let user { rows += try Row.fetchAll(db, sql: "SELECT * FROM media_file WHERE user_id = ?", arguments: [user]) }
            var seen: Set<Int64> = []
            return rows.map(MediaFile.init(row:)).filter { seen.insert($0.id).inserted }.sorted { $0.id < $1.id }
        }
    }

    /// Moves files ahead of (or behind) the rest of the queue.
    public func prioritize(_ ids: [Int64], priority: Int) throws {
        try write("set priorities") { db in
            for id in ids {
                try db.execute(sql: "UPDATE media_file SET priority = ?, updated_at = ? WHERE id = ?", arguments: [priority, Date(), id])
                let file = try Ledger.file(id, in: db)
                try Ledger.append(EventDraft(.notice, "file.prioritized", fileID: id, serial: file?.serial, user: file?.user,
                                             "priority set to \(priority)"), in: db)
            }
        }
    }

    /// Cancelled files are never uploaded (until retried); the spool copy stays.
    public func markCancelled(_ id: Int64, reason: String) throws {
        try write("cancel a file") { db in
            try db.execute(sql: "UPDATE media_file SET state = 'cancelled', upload_id = NULL, last_error = ?, updated_at = ? WHERE id = ?",
                           arguments: [reason, Date(), id])
            try db.execute(sql: "UPDATE file_part SET etag = NULL, uploaded_at = NULL WHERE file_id = ?", arguments: [id])
            let file = try Ledger.file(id, in: db)
            try Ledger.append(EventDraft(.notice, "file.cancelled", fileID: id, serial: file?.serial, user: file?.user, reason), in: db)
        }
    }

    /// Makes failed (or cancelled) files due now. Returns the ids it changed.
    @discardableResult
    public func retryNow(_ ids: [Int64]) throws -> [Int64] {
        try write("retry files") { db in
            var changed: [Int64] = []
            for id in ids {
                guard let file = try Ledger.file(id, in: db), file.state == .failed || file.state == .cancelled else { continue }
                let state: FileState = file.spoolName == nil ? .failed : (file.state == .cancelled ? .spooled : .failed)
                try db.execute(sql: "UPDATE media_file SET state = ?, next_attempt_at = ?, updated_at = ? WHERE id = ?",
                               arguments: [state.rawValue, Date(), Date(), id])
                try Ledger.append(EventDraft(.notice, "file.retry", fileID: id, serial: file.serial, user: file.user,
                                             "queued again by an admin (was \(file.state.rawValue))"), in: db)
                changed.append(id)
            }
            return changed
        }
    }

    public func failedFileIDs() throws -> [Int64] {
        try read { db in try Int64.fetchAll(db, sql: "SELECT id FROM media_file WHERE state = 'failed' ORDER BY id") }
    }

    /// Upload ids the ledger still needs (files mid-upload), so stale-upload cleanup spares them.
    public func activeUploadIDs() throws -> Set<String> {
        try read { db in Set(try String.fetchAll(db, sql: "SELECT upload_id FROM media_file WHERE upload_id IS NOT NULL AND state != 'cancelled'")) }
    }

    public func recordRun(startedAt: Date, finishedAt: Date, bytesSent: Int64, filesVerified: Int, forced: Bool) throws {
        try write("record an upload run") { db in
            try db.execute(sql: "INSERT INTO upload_run (started_at, finished_at, bytes_sent, files_verified, forced) VALUES (?, ?, ?, ?, ?)",
                           arguments: [startedAt, finishedAt, bytesSent, filesVerified, forced])
        }
    }

    /// The upload rate of recent runs that sent something (bytes per second), for the forecast.
    public func measuredUploadRate(runs: Int = 20) throws -> Double? {
        try read { db in
            let row = try Row.fetchOne(db, sql: """
                SELECT SUM(bytes_sent) AS bytes, SUM((julianday(finished_at) - julianday(started_at)) * 86400.0) AS seconds
                FROM (SELECT * FROM upload_run WHERE bytes_sent > 0 ORDER BY id DESC LIMIT ?)
                """, arguments: [runs])
            guard let bytes = row?["bytes"] as Int64?, let seconds = row?["seconds"] as Double?, seconds > 0 else { return nil }
            return Double(bytes) / seconds
        }
    }

    /// Files to upload now: spooled ones, interrupted ones, and failed ones whose
    /// wait is over. A failed file with no retry time waits for an admin.
    public func uploadQueue(now: Date = Date(), ids: [Int64]? = nil) throws -> [MediaFile] {
        try read { db in
            var sql = """
                SELECT * FROM media_file
                WHERE spool_name IS NOT NULL AND user_id IS NOT NULL
                  AND (state IN ('spooled','uploading','uploaded')
                       OR (state = 'failed' AND next_attempt_at <= ?))
                """
            var arguments: StatementArguments = [now]
            if let ids {
                sql += " AND id IN (\(ids.map { _ in "?" }.joined(separator: ",")))"
                arguments += StatementArguments(ids)
            }
            sql += " ORDER BY priority DESC, recorded_at, id"
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map(MediaFile.init(row:))
        }
    }

    /// Fixes the object key (once) and counts an attempt.
    public func beginUpload(_ id: Int64, objectKey: String) throws -> MediaFile {
        try write("start an upload") { db in
            try db.execute(sql: """
                UPDATE media_file SET state = 'uploading', object_key = ?, attempts = attempts + 1,
                    upload_started_at = COALESCE(upload_started_at, ?), next_attempt_at = NULL, updated_at = ?
                WHERE id = ?
                """, arguments: [objectKey, Date(), Date(), id])
            let file = try Ledger.file(id, in: db)!
            try Ledger.append(EventDraft(.info, "upload.started", fileID: id, serial: file.serial, user: file.user,
                                         "upload attempt \(file.attempts) to \(objectKey)"), in: db)
            return file
        }
    }

    public func recordUploadID(_ id: Int64, uploadID: String?) throws {
        try write("record a multipart upload id") { db in
            try db.execute(sql: "UPDATE media_file SET upload_id = ?, updated_at = ? WHERE id = ?", arguments: [uploadID, Date(), id])
            if uploadID == nil {
                try db.execute(sql: "UPDATE file_part SET etag = NULL, uploaded_at = NULL WHERE file_id = ?", arguments: [id])
                try db.execute(sql: "UPDATE media_file SET bytes_sent = 0 WHERE id = ?", arguments: [id])
            }
            let file = try Ledger.file(id, in: db)
            let message = uploadID.map { "multipart upload \($0) created" } ?? "multipart upload discarded; parts will be sent again"
            try Ledger.append(EventDraft(.debug, "upload.multipart", fileID: id, serial: file?.serial, user: file?.user, message), in: db)
        }
    }

    public func parts(of id: Int64) throws -> [FilePart] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM file_part WHERE file_id = ? ORDER BY part_number", arguments: [id]).map(FilePart.init(row:))
        }
    }

    /// A part the store accepted (with its checksum verified): never sent again.
    public func recordPart(_ id: Int64, number: Int, etag: String) throws {
        try write("record an uploaded part") { db in
            try db.execute(sql: "UPDATE file_part SET etag = ?, uploaded_at = ? WHERE file_id = ? AND part_number = ?",
                           arguments: [etag, Date(), id, number])
            try db.execute(sql: """
                UPDATE media_file SET bytes_sent = (SELECT COALESCE(SUM(size), 0) FROM file_part WHERE file_id = ? AND etag IS NOT NULL),
                    updated_at = ? WHERE id = ?
                """, arguments: [id, Date(), id])
        }
    }

    public func changeObjectKey(_ id: Int64, to key: String, reason: String) throws {
        try write("change an object key") { db in
            try db.execute(sql: "UPDATE media_file SET object_key = ?, upload_id = NULL, updated_at = ? WHERE id = ?", arguments: [key, Date(), id])
            try db.execute(sql: "UPDATE file_part SET etag = NULL, uploaded_at = NULL WHERE file_id = ?", arguments: [id])
            let file = try Ledger.file(id, in: db)
            try Ledger.append(EventDraft(.warning, "upload.rekeyed", fileID: id, serial: file?.serial, user: file?.user,
                                         "object key changed to \(key): \(reason)"), in: db)
        }
    }

    public func markUploaded(_ id: Int64) throws {
        try transition(id, to: .uploaded, kind: "upload.completed", level: .info, message: "the store accepted every byte; verifying") { db in
            try db.execute(sql: "UPDATE media_file SET bytes_sent = source_size WHERE id = ?", arguments: [id])
        }
    }

    /// The store confirmed an object with the size and SHA-256 from the first read.
    public func markVerified(_ id: Int64, storeChecksum: String) throws {
        try write("record a verified upload") { db in
            try db.execute(sql: """
                UPDATE media_file SET state = 'verified', store_checksum = ?, upload_id = NULL, last_error = NULL,
                    verified_at = ?, updated_at = ? WHERE id = ?
                """, arguments: [storeChecksum, Date(), Date(), id])
            let file = try Ledger.file(id, in: db)!
            try Ledger.append(EventDraft(.notice, "upload.verified", fileID: id, serial: file.serial, user: file.user,
                                         "verified in the store as \(file.objectKey ?? "?"): size \(file.sourceSize), checksum \(storeChecksum) matches sha256 \(file.sha256 ?? "?")"), in: db)
        }
    }

    public func file(_ id: Int64) throws -> MediaFile? {
        try read { db in try Ledger.file(id, in: db) }
    }

    static func file(_ id: Int64, in db: Database) throws -> MediaFile? {
        try Row.fetchOne(db, sql: "SELECT * FROM media_file WHERE id = ?", arguments: [id]).map(MediaFile.init(row:))
    }

    static func setState(_ id: Int64, _ state: FileState, hold: HoldReason? = nil, error: String? = nil, in db: Database) throws {
        try db.execute(sql: "UPDATE media_file SET state = ?, hold_reason = ?, last_error = ?, updated_at = ? WHERE id = ?",
                       arguments: [state.rawValue, hold?.rawValue, error, Date(), id])
    }

    func transition(_ id: Int64, to state: FileState, kind: String, level: LedgerEvent.Level, message: String,
                    also extra: ((Database) throws -> Void)? = nil) throws {
        try write("record state \(state.rawValue)") { db in
            try Ledger.setState(id, state, in: db)
            try extra?(db)
            let file = try Ledger.file(id, in: db)
            try Ledger.append(EventDraft(level, kind, fileID: id, serial: file?.serial, user: file?.user, message), in: db)
        }
    }
}
