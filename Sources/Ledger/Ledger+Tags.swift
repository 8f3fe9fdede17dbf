import Foundation
import GRDB
import UploaderCore

/// What `uploader tag` sets; nil fields are left as they are.
public struct FileTags: Sendable, Equatable {
    public var caseID: String?
    public var incident: String?
    public var category: String?
    public var note: String?

    public init(caseID: String? = nil, incident: String? = nil, category: String? = nil, note: String? = nil) {
        self.caseID = caseID
        self.incident = incident
        self.category = category
        self.note = note
    }

    public var isEmpty: Bool { caseID == nil && incident == nil && category == nil && note == nil }

    /// The tags a file carries now.
    public init(of file: MediaFile) {
        self.init(caseID: file.caseID, incident: file.incident, category: file.category, note: file.tagNote)
    }

    public var summary: String {
        [caseID.map { "case \($0)" }, incident.map { "incident \($0)" }, category.map { "category \($0)" }, note.map { "note \"\($0)\"" }]
            .compactMap { $0 }.joined(separator: ", ")
    }

    /// The longest note kept (it stays in the ledger; it is not an object tag).
    public static let maximumNoteLength = 1024

    /// What is wrong with these tags, naming the option that gave it; nil if
    /// nothing is. Case and incident become object tags, so they follow the
    /// store's rules: a value the store refuses would be refused after upload,
    /// when nobody is there to correct it.
    public var problem: String? {
        for (option, value) in [("--case", caseID), ("--incident", incident)] {
            guard let value else { continue }
            if value.isEmpty { return "\(option) must not be empty" }
            if let problem = StoreTagRules.problem(value: value) { return "\(option) \(StoreTagRules.quoted(value)) \(problem)" }
            if value.first!.isWhitespace || value.last!.isWhitespace { return "\(option) \(StoreTagRules.quoted(value)) starts or ends with a space" }
        }
        if let note {
            if DisplayText.terminalSafe(note) != note { return "--note \(StoreTagRules.quoted(note)) contains control or invisible characters" }
            if note.count > Self.maximumNoteLength { return "--note is longer than \(Self.maximumNoteLength) characters" }
        }
        return nil
    }
}

/// S3's rules for object tags: what the store refuses (and with it the
/// whole tag set) is refused before it is sent.
public enum StoreTagRules {
    public static let maximumTags = 10
    public static let maximumKeyLength = 128
    public static let maximumValueLength = 256

    /// Why the store would refuse `value` as a tag value; nil if it takes it.
    public static func problem(value: String) -> String? {
        problem(value, maximumLength: maximumValueLength)
    }

    /// Why the store would refuse a whole tag set; nil if it takes it.
    public static func problem(tags: [String: String]) -> String? {
        if tags.count > maximumTags { return "has \(tags.count) tags, more than the store's \(maximumTags)" }
        for (key, value) in tags.sorted(by: { $0.key < $1.key }) {
            if key.isEmpty { return "has a tag without a name" }
            if let problem = problem(key, maximumLength: maximumKeyLength) { return "tag name \(quoted(key)) \(problem)" }
            if let problem = problem(value: value) { return "tag \(key) \(quoted(value)) \(problem)" }
        }
        return nil
    }

    /// Letters, numbers and spaces of any script, and + - = . _ : / @ (S3's `[\p{L}\p{Z}\p{N}_.:/=+\-@]`).
    static func problem(_ text: String, maximumLength: Int) -> String? {
        if text.unicodeScalars.count > maximumLength { return "is longer than the store's \(maximumLength) characters for a tag" }
        for scalar in text.unicodeScalars where !isAllowed(scalar) {
            let shown = DisplayText.escaped(String(scalar))
            return "contains \(shown == String(scalar) ? "\"\(shown)\"" : shown), which the store refuses in a tag: use letters, digits, spaces and + - = . _ : / @"
        }
        return nil
    }

    /// A value for a one-line message: quoted, escaped, and cut after 40 characters.
    static func quoted(_ value: String) -> String {
        "\"" + DisplayText.escaped(value.count > 40 ? String(value.prefix(40)) + "…" : value) + "\""
    }

    static func isAllowed(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
             .decimalNumber, .letterNumber, .otherNumber, .spaceSeparator:
            return true
        default:
            return "+-=._:/@".unicodeScalars.contains(scalar)
        }
    }
}

/// What the store was made to enforce for an object.
public struct StoreLock: Sendable, Equatable {
    public var retainUntil: Date?
    public var mode: String?
    public var legalHold: Bool

    public init(retainUntil: Date?, mode: String?, legalHold: Bool) {
        self.retainUntil = retainUntil
        self.mode = mode
        self.legalHold = legalHold
    }
}

extension Ledger {
    /// Tags files; each change is a custody event naming who tagged. A file
    /// whose object may already be in the store is marked for the store's
    /// copy to be tagged too (by this command at once if it can, else by the next upload run).
    public func tag(_ ids: [Int64], with tags: FileTags) throws -> [MediaFile] {
        if let problem = tags.problem { throw UploaderError(.usage, problem + ": nothing was tagged") }
        return try write("tag files") { db in
            var tagged: [MediaFile] = []
            for id in ids {
                guard let before = try Ledger.file(id, in: db) else { continue }
                var merged = FileTags(of: before)
                if let value = tags.caseID { merged.caseID = value }
                if let value = tags.incident { merged.incident = value }
                if let value = tags.category { merged.category = value }
                if let value = tags.note { merged.note = value }
                guard merged != FileTags(of: before) else { tagged.append(before); continue }
                let inStore = [FileState.uploading, .uploaded, .verified].contains(before.state)
                try db.execute(sql: """
                    UPDATE media_file SET case_id = ?, incident = ?, category = ?, tag_note = ?,
                        store_tags_pending = CASE WHEN ? THEN 1 ELSE store_tags_pending END, updated_at = ?
                    WHERE id = ?
                    """, arguments: [merged.caseID, merged.incident, merged.category, merged.note, inStore, Date(), id])
                let file = try Ledger.file(id, in: db)!
                try Ledger.append(Ledger.fileEvent(file, .notice, .fileTagged,
                                                   "tagged: \(tags.summary)\(inStore ? " (the stored object follows)" : " (goes with the upload)")"), in: db)
                tagged.append(file)
            }
            return tagged
        }
    }

    /// Files whose stored object still needs the tags given after upload (verified ones first).
    public func filesWithPendingStoreTags(limit: Int = 500) throws -> [MediaFile] {
        try read { db in
            try MediaFile.fetchAll(db, sql: "SELECT * FROM media_file INDEXED BY media_file_tags_pending WHERE store_tags_pending = 1 AND state = 'verified' ORDER BY id LIMIT ?",
                                   arguments: [limit])
        }
    }

    /// Records what the store now enforces for the file's object. The pending
    /// mark is cleared only if the tags are still the ones applied: a tag given
    /// meanwhile stays pending for the next pass (no write overwrites a state it did not expect).
    public func recordStoreTags(_ id: Int64, applied tags: FileTags, lock: StoreLock, message: String) throws {
        try write("record the stored object's tags") { db in
            try db.execute(sql: """
                UPDATE media_file SET retain_until = ?, lock_mode = ?, legal_hold = ?, updated_at = ?,
                    store_tags_pending = CASE WHEN case_id IS ? AND incident IS ? AND category IS ? AND tag_note IS ? THEN 0 ELSE store_tags_pending END
                WHERE id = ?
                """, arguments: [lock.retainUntil, lock.mode, lock.legalHold, Date(), tags.caseID, tags.incident, tags.category, tags.note, id])
            guard let file = try Ledger.file(id, in: db) else { return }
            try Ledger.append(Ledger.fileEvent(file, .notice, .uploadTagged, message), in: db)
        }
    }

    /// Records the lock the store now enforces for the file's object when its
    /// tags could not go with it: the tags stay pending, with the reason.
    public func recordStoreLock(_ id: Int64, lock: StoreLock, tagsNotApplied reason: String, message: String) throws {
        try write("record the stored object's lock") { db in
            try db.execute(sql: "UPDATE media_file SET retain_until = ?, lock_mode = ?, legal_hold = ?, store_tags_pending = 1, updated_at = ? WHERE id = ?",
                           arguments: [lock.retainUntil, lock.mode, lock.legalHold, Date(), id])
            guard let file = try Ledger.file(id, in: db) else { return }
            try Ledger.append(Ledger.fileEvent(file, .warning, .uploadTagged, "\(message); tags not applied to the stored object yet (retried by the next upload run): \(reason)"), in: db)
        }
    }

    /// The stored object's tags are to be (re)applied by the next upload run.
    public func markStoreTagsPending(_ id: Int64, reason: String) throws {
        try write("mark a file's tags for the store") { db in
            try db.execute(sql: "UPDATE media_file SET store_tags_pending = 1, updated_at = ? WHERE id = ?", arguments: [Date(), id])
            guard let file = try Ledger.file(id, in: db) else { return }
            try Ledger.append(Ledger.fileEvent(file, .warning, .uploadTagged, "tags not applied to the stored object yet (retried by the next upload run): \(reason)"), in: db)
        }
    }

    /// Every file of a case.
    public func files(inCase caseID: String) throws -> [MediaFile] {
        try read { db in try MediaFile.fetchAll(db, sql: "SELECT * FROM media_file INDEXED BY media_file_case WHERE case_id = ? ORDER BY id", arguments: [caseID]) }
    }
}

/// What `uploader status` says of cases and tags.
public struct TagSummary: Sendable, Codable, Equatable {
    public var cases: Int
    public var taggedFiles: Int
    public var pendingInStore: Int
}

extension Ledger {
    /// Through the partial indexes: cases and pending tags are few, however large the ledger.
    public func tagSummary() throws -> TagSummary {
        try read { db in
            let cases = try Row.fetchOne(db, sql: "SELECT COUNT(DISTINCT case_id) AS c, COUNT(*) AS f FROM media_file INDEXED BY media_file_case WHERE case_id IS NOT NULL")
            let pending = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM media_file INDEXED BY media_file_tags_pending WHERE store_tags_pending = 1") ?? 0
            return TagSummary(cases: cases?["c"] ?? 0, taggedFiles: cases?["f"] ?? 0, pendingInStore: pending)
        }
    }
}
