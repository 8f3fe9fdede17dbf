import Crypto
import Foundation
import GRDB
import UploaderCore

/// What the copy engine proved and `markSpooled` records: the copy is in the
/// spool under its final name, fsynced, and read back from disk equal to the
/// camera read. One type from the copy engine to the ledger, its digests typed.
public struct SpooledCopy: Sendable {
    public var sha256: SHA256Digest
    public var spoolName: String
    public var partSize: Int64
    /// One per upload part; a file of one part has one: the whole file's.
    public var partHashes: [SHA256Digest]
    public var recordedAt: Date
    public var recordedAtSource: RecordingTimeSource
    /// The key that sealed the copy; nil: written in the clear.
    public var spoolKeyID: String?
    /// The camera clock's time, when `recordedAt` was corrected for its drift.
    public var cameraRecordedAt: Date?

    public init(sha256: SHA256Digest, spoolName: String, partSize: Int64, partHashes: [SHA256Digest], recordedAt: Date,
                recordedAtSource: RecordingTimeSource, spoolKeyID: String? = nil, cameraRecordedAt: Date? = nil) {
        self.spoolKeyID = spoolKeyID
        self.cameraRecordedAt = cameraRecordedAt
        self.sha256 = sha256
        self.spoolName = spoolName
        self.partSize = partSize
        self.partHashes = partHashes
        self.recordedAt = recordedAt
        self.recordedAtSource = recordedAtSource
    }
}

extension MediaFile {
    /// Whether a dock copies this file (again): never copied, interrupted,
    /// failed before it was secured, or held for a reason a new copy fixes.
    public var needsCopy: Bool {
        switch state {
        case .discovered, .copying: return true
        case .failed: return spoolName == nil
        case .quarantined:
            guard let holdReason else { return false }
            return holdReason.copiedAgainOnDock || (holdReason == .unknownDevice && spoolName == nil)
        case .spooled, .uploading, .uploaded, .verified, .cancelled: return false
        }
    }
}

extension Ledger {
    /// How long a claim lasts without a ledger write from its holder. Only
    /// matters for a holder on another host: a holder on this host is checked
    /// directly, and a dead one loses its claims at once.
    static let claimLease: TimeInterval = 3600

    // MARK: - The one way a file's state changes

    /// Changes a file's state with `UPDATE … WHERE id = ? AND state IN (from)`
    /// and checks that exactly one row changed: a state this caller did not
    /// expect is never overwritten. `from` must be allowed by the domain's
    /// transition table. With `claim`, the row must be claimed by that owner
    /// (and `releasing` drops the claim in the same statement).
    @discardableResult
    static func change(_ id: Int64, to state: FileState, from sources: Set<FileState>? = nil,
                       set assignments: [String] = [], _ arguments: StatementArguments = [],
                       claim: ClaimOwner? = nil, releasing: Bool = false, releaseAnyClaim: Bool = false,
                       in db: Database) throws -> MediaFile {
        try apply(id, to: state, from: sources, set: assignments, arguments, claim: claim, releasing: releasing,
                  releaseAnyClaim: releaseAnyClaim, in: db)
        guard let file = try file(id, in: db) else { throw try refusal(id, to: state, in: db) }
        return file
    }

    /// `change` without reading the row back (the bulk simulation's hot loop).
    package static func apply(_ id: Int64, to state: FileState, from sources: Set<FileState>? = nil,
                      set assignments: [String] = [], _ arguments: StatementArguments = [],
                      claim: ClaimOwner? = nil, releasing: Bool = false, releaseAnyClaim: Bool = false,
                      in db: Database) throws {
        let sources = sources ?? state.allowedSources
        precondition(sources.isSubset(of: state.allowedSources), "\(sources) → \(state) is not in the transition table")
        var sets = ["state = ?", "updated_at = ?"] + assignments
        if releasing || releaseAnyClaim { sets += ["claim_owner = NULL", "claim_until = NULL"] }
        var sql = "UPDATE media_file SET \(sets.joined(separator: ", ")) WHERE id = ? AND state IN (\(sources.map { "'\($0.rawValue)'" }.sorted().joined(separator: ",")))"
        var all: StatementArguments = [state, Date()]
        all += arguments
        all += [id]
        if let claim {
            sql += " AND claim_owner = ?"
            all += [claim.token]
        }
        try db.cachedStatement(sql: sql).execute(arguments: all)
        guard db.changesCount == 1 else { throw try refusal(id, to: state, in: db) }
    }

    /// The typed error for a change the row's current state does not allow.
    static func refusal(_ id: Int64, to state: FileState, in db: Database) throws -> UploaderError {
        guard let current = try file(id, in: db) else {
            return UploaderError(.notFound, "file #\(id) is not in the ledger", underlying: .transition(from: nil, to: state))
        }
        let holder = current.claimOwner.flatMap(ClaimOwner.init(token:)).map { ", claimed by \($0)" } ?? ""
        return UploaderError(.transitionRefused,
                             "file #\(id) is \(current.state.rawValue)\(holder), so it cannot become \(state.rawValue): another process or an admin changed it first",
                             underlying: .transition(from: current.state, to: state))
    }

    /// A write that changes no state but belongs to the claim holder (upload
    /// ids, parts, keys): refused once the file was cancelled or taken over.
    static func updateClaimed(_ id: Int64, owner: ClaimOwner, in state: FileState, set assignments: [String],
                              _ arguments: StatementArguments, in db: Database) throws {
        var all = arguments
        all += [Date().addingTimeInterval(claimLease), Date(), id, state, owner.token]
        try db.execute(sql: """
            UPDATE media_file SET \((assignments + ["claim_until = ?", "updated_at = ?"]).joined(separator: ", "))
            WHERE id = ? AND state = ? AND claim_owner = ?
            """, arguments: all)
        guard db.changesCount == 1 else { throw try refusal(id, to: state, in: db) }
    }

    static func fileEvent(_ file: MediaFile, _ level: LedgerEvent.Level, _ kind: EventKind, _ message: String) -> EventDraft {
        EventDraft(level, kind, fileID: file.id, serial: file.serial, user: file.user, message)
    }

    // MARK: - Ingest

    /// Finds the row for this camera file, creating it the first time it is
    /// seen. The identity (serial, path, size, mtime) is UNIQUE in the schema.
    public func discover(serial: String, sourcePath: String, size: Int64, modifiedNanoseconds: Int64) throws -> (file: MediaFile, isNew: Bool) {
        try write("record a discovered file") { db in
            let identity: StatementArguments = [serial, sourcePath, size, modifiedNanoseconds]
            let select = HotSQL.identity
            if let existing = try MediaFile.fetchOne(db, sql: select, arguments: identity) {
                return (existing, false)
            }
            let now = Date()
            try db.execute(sql: """
                INSERT INTO media_file (serial, source_path, source_size, source_mtime_ns, state, discovered_at, updated_at)
                VALUES (?, ?, ?, ?, 'discovered', ?, ?)
                """, arguments: [serial, sourcePath, size, modifiedNanoseconds, now, now])
            let id = db.lastInsertedRowID
            try Ledger.append(EventDraft(.info, .fileDiscovered, fileID: id, serial: serial,
                                         "found \(DisplayText.escaped(sourcePath)) (\(size) bytes) on camera \(serial)"), in: db)
            return (try MediaFile.fetchOne(db, sql: select, arguments: identity)!, true)
        }
    }

    /// Takes the file for copying, if it still needs a copy. Returns nil when
    /// another process secured it since it was listed.
    public func markCopying(_ id: Int64) throws -> MediaFile? {
        try write("record a copy starting") { db in
            guard let current = try Ledger.file(id, in: db), current.needsCopy else { return nil }
            let file = try Ledger.change(id, to: .copying, from: [current.state], in: db)
            try Ledger.append(Ledger.fileEvent(file, .debug, .fileCopying, "copying into the spool"), in: db)
            return file
        }
    }

    /// The copy is fsynced, re-read from disk, verified and renamed. The file
    /// is held when its camera is not registered.
    public func markSpooled(_ id: Int64, copy spooled: SpooledCopy) throws -> MediaFile {
        try write("record a spooled file") { db in
            guard let current = try Ledger.file(id, in: db) else {
                throw UploaderError(.notFound, "file #\(id) vanished from the ledger")
            }
            var copy = spooled
            // A sidecar is dated (and so attributed) by its recording, once that is spooled.
            if let recordingID = current.sidecarOf, let recording = try Ledger.file(recordingID, in: db), let recorded = recording.recordedAt {
                copy.recordedAt = recorded
                copy.recordedAtSource = .recording
                copy.cameraRecordedAt = nil
            }
            if let firstHash = current.sha256, firstHash != copy.sha256.hex {
                // The same camera file (path, size, mtime) now reads differently from
                // its first read: never replace the first hash, hold it for a person.
                let message = "camera file \(DisplayText.escaped(current.sourcePath)) no longer matches its first read (was \(firstHash), now \(copy.sha256.hex)); hold it for review"
                let held = try Ledger.change(id, to: .quarantined, from: [.copying],
                                             set: ["hold_reason = ?", "last_error = ?"], [HoldReason.cameraFileChanged, message], in: db)
                try Ledger.append(Ledger.fileEvent(held, .error, .fileMismatch, message), in: db)
                return held
            }
            let user = try Ledger.attributedUser(serial: current.serial, recordedAt: copy.recordedAt, in: db)
            let file = try Ledger.change(id, to: user == nil ? .quarantined : .spooled, from: [.copying], set: [
                "hold_reason = ?", "sha256 = ?", "spool_name = ?", "part_size = ?", "recorded_at = ?", "recorded_at_source = ?",
                "user_id = ?", "last_error = NULL", "next_attempt_at = NULL", "spooled_at = ?", "spool_key_id = ?", "recorded_at_camera = ?",
            ], [user == nil ? HoldReason.unknownDevice : nil, copy.sha256.hex, copy.spoolName, copy.partSize,
                copy.recordedAt, copy.recordedAtSource, user, Date(), copy.spoolKeyID, copy.cameraRecordedAt], in: db)
            try db.execute(sql: "DELETE FROM file_part WHERE file_id = ?", arguments: [id])
            var offset: Int64 = 0
            for (index, hash) in copy.partHashes.enumerated() {
                let size = min(copy.partSize, current.sourceSize - offset)
                try db.execute(sql: "INSERT INTO file_part (file_id, part_number, offset, size, sha256) VALUES (?, ?, ?, ?, ?)",
                               arguments: [id, index + 1, offset, size, hash.hex])
                offset += size
            }
            try Ledger.append(Ledger.fileEvent(file, .info, .fileSpooled,
                                               "copied and verified: sha256 \(copy.sha256.hex), recorded \(Timestamps.iso(copy.recordedAt)) (from \(copy.recordedAtSource.rawValue)"
                                                   + (copy.cameraRecordedAt.map { "; the camera's clock said \(Timestamps.iso($0)), corrected for its measured drift" } ?? "") + ")"), in: db)
            if user == nil {
                try Ledger.append(Ledger.fileEvent(file, .warning, .fileHeld,
                                                   "held: camera \(current.serial) is not registered; run `uploader device add \(current.serial) --user ID` to release it"), in: db)
            }
            // Sidecars spooled before their recording now take its time and officer.
            if current.sidecarOf == nil {
                for sidecar in try MediaFile.fetchAll(db, sql: """
                    SELECT * FROM media_file INDEXED BY media_file_sidecars WHERE sidecar_of = ? AND state IN ('spooled', 'quarantined') AND recorded_at_source != 'recording'
                    """, arguments: [id]) {
                    try db.execute(sql: "UPDATE media_file SET recorded_at = ?, recorded_at_source = 'recording', recorded_at_camera = NULL, user_id = ?, updated_at = ? WHERE id = ?",
                                   arguments: [copy.recordedAt, file.user, Date(), sidecar.id])
                    let updated = try Ledger.file(sidecar.id, in: db)!
                    try Ledger.append(Ledger.fileEvent(updated, .info, .fileAttributed,
                                                       "takes the recording time (\(Timestamps.iso(copy.recordedAt))) and officer (\(file.user ?? "none")) of its recording #\(id)"), in: db)
                }
            }
            return file
        }
    }

    /// Holds a file for a person: a problem with the camera file (hostile name,
    /// unreadable) found by ingest, or, with the upload's `owner`, a spool copy
    /// that no longer matches the camera read.
    public func quarantine(_ id: Int64, reason: HoldReason, message: String, owner: ClaimOwner? = nil) throws {
        try write("quarantine a file") { db in
            let sources: Set<FileState> = owner == nil ? [.discovered, .copying, .failed, .quarantined] : [.spooled, .uploading, .uploaded, .failed]
            let file = try Ledger.change(id, to: .quarantined, from: sources, set: ["hold_reason = ?", "last_error = ?"], [reason, message],
                                         claim: owner, releasing: owner != nil, in: db)
            try Ledger.append(Ledger.fileEvent(file, .error, reason == .spoolCorrupted ? .spoolCorrupted : .fileQuarantined,
                                               "quarantined (\(reason.rawValue)): \(message)"), in: db)
        }
    }

    /// A copy that failed: the file waits for the next dock.
    public func markCopyFailed(_ id: Int64, error: String) throws {
        try write("record a failed copy") { db in
            let file = try Ledger.change(id, to: .failed, from: [.copying],
                                         set: ["last_error = ?", "next_attempt_at = NULL"], [error], in: db)
            try Ledger.append(Ledger.fileEvent(file, .error, .fileFailed, error + "; the next dock copies it again"), in: db)
        }
    }

    /// The camera file changed or vanished after it was listed: this row's
    /// identity (path, size, time) is gone; the new version gets a row of its own.
    public func markSuperseded(_ id: Int64, reason: String) throws {
        try write("record a superseded file") { db in
            let file = try Ledger.change(id, to: .cancelled, from: [.discovered, .copying], set: ["last_error = ?"], [reason], in: db)
            try Ledger.append(Ledger.fileEvent(file, .warning, .fileSuperseded, reason), in: db)
        }
    }

    /// An event about a file that is not a state change (for example a retry).
    public func note(_ id: Int64, level: LedgerEvent.Level, kind: EventKind, _ message: String) throws {
        try write("write to the custody log") { db in
            let file = try Ledger.file(id, in: db)
            try Ledger.append(EventDraft(level, kind, fileID: id, serial: file?.serial, user: file?.user, message), in: db)
        }
    }

    // MARK: - Claims

    /// Takes the file for an upload run: atomically, only if it still waits
    /// for an upload (spooled, interrupted, failed and due) and nobody alive
    /// holds it. Returns nil when it is not this run's to upload.
    public func claimForUpload(_ id: Int64, owner: ClaimOwner, now: Date = Date(), force: Bool = false) throws -> MediaFile? {
        try write("claim a file for upload") { db in
            guard let file = try Ledger.file(id, in: db), file.spoolName != nil, file.spoolPurgedAt == nil, file.user != nil,
                  [.spooled, .uploading, .uploaded, .failed].contains(file.state) else { return nil }
            if file.state == .failed, !force, (file.nextAttemptAt.map { $0 > now } ?? true) { return nil }
            guard try takeClaim(file, owner: owner, now: now, in: db) else { return nil }
            return try Ledger.file(id, in: db)
        }
    }

    /// Takes the spool copy of a verified file for the purge.
    public func claimForPurge(_ id: Int64, owner: ClaimOwner, now: Date = Date()) throws -> MediaFile? {
        try write("claim a spool copy for purging") { db in
            guard let file = try Ledger.file(id, in: db), file.state == .verified, file.spoolName != nil, file.spoolPurgedAt == nil else { return nil }
            guard try takeClaim(file, owner: owner, now: now, in: db) else { return nil }
            return try Ledger.file(id, in: db)
        }
    }

    /// Inside a write: claims `file` as observed, unless a live holder has it.
    private func takeClaim(_ file: MediaFile, owner: ClaimOwner, now: Date, in db: Database) throws -> Bool {
        if let token = file.claimOwner, token != owner.token {
            let holder = ClaimOwner(token: token)
            let lapsed = (file.claimUntil.map { $0 < now } ?? true)
            let alive = holder.map(isAlive) ?? false
            if alive, !lapsed { return false }
            // A holder that may still run (another host's) lost the file to its lease only.
            let why = alive ? "whose claim ran out" + (file.claimUntil.map { " at \(Timestamps.iso($0))" } ?? "") : "which is gone"
            try Ledger.append(Ledger.fileEvent(file, .warning, .uploadTakenOver,
                                               "taken over from \(holder.map(String.init(describing:)) ?? token), \(why); finished parts are kept"), in: db)
        }
        try db.execute(sql: """
            UPDATE media_file SET claim_owner = ?, claim_until = ? WHERE id = ? AND state = ? AND claim_owner IS ?
            """, arguments: [owner.token, now.addingTimeInterval(Ledger.claimLease), file.id, file.state, file.claimOwner])
        return db.changesCount == 1
    }

    /// Lets go of a file this owner holds (a run that paused or stopped).
    public func releaseClaim(_ id: Int64, owner: ClaimOwner) throws {
        try write("release a claim") { db in
            try db.execute(sql: "UPDATE media_file SET claim_owner = NULL, claim_until = NULL WHERE id = ? AND claim_owner = ?",
                           arguments: [id, owner.token])
        }
    }

    // MARK: - Spool retention

    /// Verified files whose spool copy is older than the retention period, in
    /// pages by id (a million-file ledger is never loaded at once).
    public func forEachPurgeCandidate(verifiedBefore cutoff: Date, _ body: (MediaFile) throws -> Void) throws {
        var after: Int64 = 0
        while true {
            let page = try read { db in
                try MediaFile.fetchAll(db, sql: HotSQL.purgePage, arguments: [cutoff, after])
            }
            for file in page { try body(file) }
            guard let last = page.last else { return }
            after = last.id
        }
    }

    /// The spool copy is gone; the store holds the verified original.
    public func markPurged(_ id: Int64, owner: ClaimOwner) throws {
        try write("record a purged spool copy") { db in
            try db.execute(sql: """
                UPDATE media_file SET spool_purged_at = ?, updated_at = ?, claim_owner = NULL, claim_until = NULL
                WHERE id = ? AND state = 'verified' AND spool_purged_at IS NULL AND claim_owner = ?
                """, arguments: [Date(), Date(), id, owner.token])
            guard db.changesCount == 1, let file = try Ledger.file(id, in: db) else {
                throw UploaderError(.transitionRefused, "the spool copy of file #\(id) is no longer this purge's to record: another process took it or recorded it first")
            }
            try Ledger.append(Ledger.fileEvent(file, .info, .spoolPurged,
                                               "spool copy deleted per retention policy; verified in the store as \(file.objectKey ?? "?")"), in: db)
        }
    }

    // MARK: - Admin queue control

    /// Files named by an admin: `#12` or `12` (ledger id), else a part of the
    /// camera path or object key; with a serial or user, all of theirs.
    public func select(files: [String] = [], serial: String? = nil, user: String? = nil) throws -> [MediaFile] {
        try read { db in
            var found: [MediaFile] = []
            for item in files {
                if let id = Int64(item.trimmingCharacters(in: CharacterSet(charactersIn: "#"))) {
                    found += try MediaFile.fetchAll(db, sql: "SELECT * FROM media_file WHERE id = ?", arguments: [id])
                } else {
                    found += try MediaFile.fetchAll(db, sql: "SELECT * FROM media_file WHERE instr(source_path, ?) > 0 OR instr(object_key, ?) > 0",
                                                    arguments: [item, item])
                }
            }
            if let serial { found += try MediaFile.fetchAll(db, sql: "SELECT * FROM media_file WHERE serial = ?", arguments: [serial]) }
            if let user { found += try MediaFile.fetchAll(db, sql: "SELECT * FROM media_file WHERE user_id = ?", arguments: [user]) }
            var seen: Set<Int64> = []
            return found.filter { seen.insert($0.id).inserted }.sorted { $0.id < $1.id }
        }
    }

    /// Moves files ahead of (or behind) the rest of the queue.
    public func prioritize(_ ids: [Int64], priority: Int) throws {
        try write("set priorities") { db in
            for id in ids {
                try db.execute(sql: "UPDATE media_file SET priority = ?, updated_at = ? WHERE id = ?", arguments: [priority, Date(), id])
                let file = try Ledger.file(id, in: db)
                try Ledger.append(EventDraft(.notice, .filePrioritized, fileID: id, serial: file?.serial, user: file?.user,
                                             "priority set to \(priority)"), in: db)
            }
        }
    }

    /// Cancelled files are never uploaded (until retried); the spool copy stays.
    /// A run uploading the file loses its claim and stops at its next write.
    /// Returns the file as it was, so the caller can abort its multipart upload.
    public func markCancelled(_ id: Int64, reason: String) throws -> MediaFile {
        try write("cancel a file") { db in
            guard let before = try Ledger.file(id, in: db) else { throw try Ledger.refusal(id, to: .cancelled, in: db) }
            let file = try Ledger.change(id, to: .cancelled, from: [.spooled, .uploading, .failed],
                                         set: ["upload_id = NULL", "last_error = ?"], [reason], releaseAnyClaim: true, in: db)
            try db.execute(sql: "UPDATE file_part SET etag = NULL, uploaded_at = NULL WHERE file_id = ?", arguments: [id])
            try Ledger.append(Ledger.fileEvent(file, .notice, .fileCancelled, reason), in: db)
            return before
        }
    }

    /// Makes failed (or cancelled) files due now. Returns the ids it changed.
    @discardableResult
    public func retryNow(_ ids: [Int64]) throws -> [Int64] {
        try write("retry files") { db in
            var changed: [Int64] = []
            for id in ids {
                guard let file = try Ledger.file(id, in: db), file.state == .failed || file.state == .cancelled else { continue }
                let state: FileState = file.state == .cancelled && file.spoolName != nil ? .spooled : .failed
                let queued = try Ledger.change(id, to: state, from: [file.state], set: ["next_attempt_at = ?"], [Date()], in: db)
                try Ledger.append(Ledger.fileEvent(queued, .notice, .fileRetry, "queued again by an admin (was \(file.state.rawValue))"), in: db)
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
        try read { db in Set(try String.fetchAll(db, sql: HotSQL.activeUploadIDs)) }
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

    // MARK: - Upload

    /// One file waiting for upload: enough to queue it and size the run.
    public struct QueuedUpload: Sendable, Equatable {
        public var id: Int64
        public var size: Int64
    }

    /// Files to upload now, in queue order: spooled ones, interrupted ones, and
    /// failed ones whose wait is over (a failed file with no retry time waits
    /// for an admin). Each must still be claimed (`claimForUpload`) before it is touched.
    public func uploadQueue(now: Date = Date(), ids: [Int64]? = nil) throws -> [QueuedUpload] {
        try read { db in
            var arguments: StatementArguments = [now]
            if let ids { arguments += StatementArguments(ids) }
            return try Row.fetchAll(db, sql: HotSQL.uploadQueue(ids: ids), arguments: arguments)
                .map { QueuedUpload(id: $0["id"], size: $0["source_size"]) }
        }
    }

    /// Whether anything waits for an upload now (without reading the queue).
    public func hasUploadDue(now: Date = Date()) throws -> Bool {
        try read { db in try Bool.fetchOne(db, sql: HotSQL.uploadDue, arguments: [now]) ?? false }
    }

    /// Fixes the object key (once, unique among the ledger's keys) and counts an attempt.
    public func beginUpload(_ id: Int64, objectKey proposed: String, owner: ClaimOwner) throws -> MediaFile {
        try write("start an upload") { db in
            guard let current = try Ledger.file(id, in: db) else { throw try Ledger.refusal(id, to: .uploading, in: db) }
            var key = current.objectKey ?? proposed
            if current.objectKey == nil {
                var attempt = 0
                // Keys are unique by construction: a key another file already has gets this file's id.
                while try Int.fetchOne(db, sql: "SELECT 1 FROM media_file WHERE object_key = ? AND id != ?", arguments: [key, id]) != nil {
                    attempt += 1
                    key = ObjectKeyTemplate.disambiguated(proposed, fileID: id, attempt: attempt)
                }
            }
            let file = try Ledger.change(id, to: .uploading, from: [.spooled, .uploading, .failed], set: [
                "object_key = ?", "attempts = attempts + 1", "upload_started_at = COALESCE(upload_started_at, ?)",
                "next_attempt_at = NULL", "claim_until = ?",
            ], [key, Date(), Date().addingTimeInterval(Ledger.claimLease)], claim: owner, in: db)
            var message = "upload attempt \(file.attempts) to \(key)"
            if key != proposed, current.objectKey == nil { message += " (\(proposed) belongs to another file)" }
            try Ledger.append(Ledger.fileEvent(file, .info, .uploadStarted, message), in: db)
            return file
        }
    }

    public func recordUploadID(_ id: Int64, uploadID: String?, owner: ClaimOwner) throws {
        try write("record a multipart upload id") { db in
            try Ledger.updateClaimed(id, owner: owner, in: .uploading, set: ["upload_id = ?"], [uploadID], in: db)
            if uploadID == nil {
                try db.execute(sql: "UPDATE file_part SET etag = NULL, uploaded_at = NULL WHERE file_id = ?", arguments: [id])
                try db.execute(sql: "UPDATE media_file SET bytes_sent = 0 WHERE id = ?", arguments: [id])
            }
            let file = try Ledger.file(id, in: db)!
            let message = uploadID.map { "multipart upload \($0) created" } ?? "multipart upload discarded; parts will be sent again"
            try Ledger.append(Ledger.fileEvent(file, .debug, .uploadMultipart, message), in: db)
        }
    }

    public func parts(of id: Int64) throws -> [FilePart] {
        try read { db in
            try FilePart.fetchAll(db, sql: "SELECT * FROM file_part WHERE file_id = ? ORDER BY part_number", arguments: [id])
        }
    }

    /// A part the store accepted (with its checksum verified): never sent again.
    public func recordPart(_ id: Int64, number: Int, etag: String, owner: ClaimOwner) throws {
        try write("record an uploaded part") { db in
            try db.execute(sql: "UPDATE file_part SET etag = ?, uploaded_at = ? WHERE file_id = ? AND part_number = ?",
                           arguments: [etag, Date(), id, number])
            try Ledger.updateClaimed(id, owner: owner, in: .uploading, set: [
                "bytes_sent = (SELECT COALESCE(SUM(size), 0) FROM file_part WHERE file_id = media_file.id AND etag IS NOT NULL)",
            ], [], in: db)
        }
    }

    public func changeObjectKey(_ id: Int64, to key: String, reason: String, owner: ClaimOwner) throws {
        try write("change an object key") { db in
            try Ledger.updateClaimed(id, owner: owner, in: .uploading, set: ["object_key = ?", "upload_id = NULL"], [key], in: db)
            try db.execute(sql: "UPDATE file_part SET etag = NULL, uploaded_at = NULL WHERE file_id = ?", arguments: [id])
            let file = try Ledger.file(id, in: db)!
            try Ledger.append(Ledger.fileEvent(file, .warning, .uploadRekeyed, "object key changed to \(key): \(reason)"), in: db)
        }
    }

    @discardableResult
    public func markUploaded(_ id: Int64, owner: ClaimOwner) throws -> MediaFile {
        try write("record a finished upload") { db in
            let file = try Ledger.change(id, to: .uploaded, set: ["bytes_sent = source_size"], claim: owner, in: db)
            try Ledger.append(Ledger.fileEvent(file, .info, .uploadCompleted, "the store accepted every byte; verifying"), in: db)
            return file
        }
    }

    /// The store does not hold the object it accepted (a HEAD found nothing):
    /// the whole upload starts again.
    public func markUploadLost(_ id: Int64, owner: ClaimOwner) throws {
        try write("record a lost upload") { db in
            let file = try Ledger.change(id, to: .uploading, from: [.uploaded, .uploading],
                                         set: ["upload_id = NULL", "bytes_sent = 0"], claim: owner, in: db)
            try db.execute(sql: "UPDATE file_part SET etag = NULL, uploaded_at = NULL WHERE file_id = ?", arguments: [id])
            try Ledger.append(Ledger.fileEvent(file, .warning, .uploadMultipart, "the store does not hold the uploaded object; it will be sent again"), in: db)
        }
    }

    /// The store confirmed an object with the size and SHA-256 from the first read.
    /// `versionID`: the store's version of the verified object, which verify,
    /// export and clearing address from now on (nil: the store keeps no versions).
    public func markVerified(_ id: Int64, storeChecksum: String, versionID: String? = nil, owner: ClaimOwner) throws {
        try write("record a verified upload") { db in
            let file = try Ledger.change(id, to: .verified, set: [
                "store_checksum = ?", "store_version_id = ?", "upload_id = NULL", "last_error = NULL", "verified_at = ?",
            ], [storeChecksum, versionID, Date()], claim: owner, releasing: true, in: db)
            try Ledger.append(Ledger.fileEvent(file, .notice, .uploadVerified,
                                               "verified in the store as \(file.objectKey ?? "?")\(versionID.map { " version \($0)" } ?? ""): size \(file.sourceSize), checksum \(storeChecksum) matches sha256 \(file.sha256 ?? "?")"), in: db)
        }
    }

    /// An upload that failed: with `retryAt` the queue takes it again after
    /// that time; without, it waits for an admin's `retry`.
    public func markUploadFailed(_ id: Int64, error: String, retryAt: Date?, owner: ClaimOwner,
                                 level: LedgerEvent.Level = .error) throws {
        try write("record a failed upload") { db in
            let file = try Ledger.change(id, to: .failed, from: [.spooled, .uploading, .uploaded, .failed],
                                         set: ["last_error = ?", "next_attempt_at = ?"], [error, retryAt],
                                         claim: owner, releasing: true, in: db)
            try Ledger.append(Ledger.fileEvent(file, level, .fileFailed,
                                               error + (retryAt.map { "; next attempt after \(Timestamps.iso($0))" } ?? "")), in: db)
        }
    }

    /// The upload could not start for a reason outside the file (credentials,
    /// bucket, TLS): back to `spooled`, with the reason shown in `status`.
    public func markWaiting(_ id: Int64, reason: String, owner: ClaimOwner) throws {
        try write("record a refused upload") { db in
            let file = try Ledger.change(id, to: .spooled, from: [.uploading], set: [
                "last_error = ?", "attempts = MAX(attempts - 1, 0)",
            ], [reason], claim: owner, releasing: true, in: db)
            try Ledger.append(Ledger.fileEvent(file, .error, .uploadRefused, reason), in: db)
        }
    }

    public func file(_ id: Int64) throws -> MediaFile? {
        try read { db in try Ledger.file(id, in: db) }
    }

    static func file(_ id: Int64, in db: Database) throws -> MediaFile? {
        try MediaFile.fetchOne(db.cachedStatement(sql: "SELECT * FROM media_file WHERE id = ?"), arguments: [id])
    }
}

extension Ledger {
    /// How many spool copies still on disk each key sealed (nil: copies in the clear).
    public func spoolCopiesByKey() throws -> [String?: Int] {
        try read { db in
            var counts: [String?: Int] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT spool_key_id, COUNT(*) AS n FROM media_file
                WHERE spool_name IS NOT NULL AND spool_purged_at IS NULL GROUP BY spool_key_id
                """) {
                counts[row["spool_key_id"] as String?] = row["n"]
            }
            return counts
        }
    }

    /// Whether any spool copy still on disk was sealed with `keyID` (by the partial index).
    public func spoolKeyInUse(_ keyID: String) throws -> Bool {
        try read { db in
            try Bool.fetchOne(db, sql: HotSQL.spoolKeyInUse, arguments: [keyID]) ?? false
        }
    }
}
