import Foundation
import Ledger
import Synchronization
import Transport
import UploaderCore

/// What the store must do for a file's object: its tags (case, incident,
/// category) and, from its retention category, the Object Lock retention and
/// legal hold. The one place a file's effective category is decided.
public struct ObjectRules: Sendable {
    let configuration: Configuration
    let ledger: Ledger
    /// Each registered camera's model's default category (read once).
    let modelCategories: [String: String]

    public init(configuration: Configuration, ledger: Ledger) {
        self.configuration = configuration
        self.ledger = ledger
        var byModel: [String: String] = [:]
        if let text = try? String(contentsOfFile: configuration.docking.modelsPath, encoding: .utf8),
           let models = try? CameraModels.parse(text, path: configuration.docking.modelsPath) {
            for model in models.models { if let category = model.category { byModel[model.id] = category } }
        }
        modelCategories = byModel
    }

    /// The file's category: its tag, else the user's, the model's or the site's default.
    public func category(for file: MediaFile) -> (category: RetentionCategory, source: String)? {
        let model = (try? ledger.device(serial: file.serial))??.model
        return configuration.categories.resolve(tagged: file.category, user: file.user, modelDefault: model.flatMap { modelCategories[$0] })
    }

    /// A file's object settings, with the tags and category they came from.
    public struct Resolved: Sendable, CustomStringConvertible {
        public var settings: ObjectSettings
        /// The file's tags these settings were made from: what the store holds once they are applied.
        public var tags: FileTags
        public var category: (category: RetentionCategory, source: String)?
        /// Why the store would refuse the file's tags (a value written behind
        /// `uploader tag`); those tags are left out, never the lock.
        public var tagProblem: String?

        /// Whether the object carries anything beyond its bytes and metadata.
        public var isEmpty: Bool { settings.tags.isEmpty && settings.lockMode == nil && !settings.legalHold }

        /// What was applied, for the custody log.
        public var description: String {
            var parts: [String] = []
            if !settings.tags.isEmpty { parts.append("tags " + settings.tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")) }
            if let mode = settings.lockMode, let until = settings.retainUntil { parts.append("\(mode) retention until \(Timestamps.iso(until))") }
            if settings.legalHold { parts.append("legal hold") }
            if let category { parts.append("category \(category.category.name) (\(category.source))") }
            return parts.joined(separator: "; ")
        }
    }

    /// The file's tags, category, retention and legal hold, decided once.
    public func resolve(_ file: MediaFile) -> Resolved {
        var tags: [String: String] = [:]
        tags["case"] = file.caseID
        tags["incident"] = file.incident
        let resolved = category(for: file)
        tags["category"] = resolved?.category.name
        // A tag the store refuses would take the whole request with it: it stays out.
        let tagProblem = StoreTagRules.problem(tags: tags).map { "the file's \($0)" }
        var settings = ObjectSettings(tags: tags.filter { StoreTagRules.problem(value: $0.value) == nil })
        if let category = resolved?.category {
            let until = category.retainUntil(recordedAt: file.recordedAt ?? file.spooledAt ?? file.discoveredAt)
            settings.lockMode = until == nil ? nil : category.lockMode?.rawValue
            settings.retainUntil = until
            settings.legalHold = category.holdsLegally
        }
        return Resolved(settings: settings, tags: FileTags(of: file), category: resolved, tagProblem: tagProblem)
    }

    /// Refuses settings the bucket cannot enforce: a lock mode or legal hold needs Object Lock on the bucket.
    public func check(_ resolved: Resolved, bucketLocks: () throws -> Bool) throws {
        guard resolved.settings.lockMode != nil || resolved.settings.legalHold else { return }
        guard try bucketLocks() else {
            let name = resolved.category?.category.name ?? "?"
            throw UploaderError(.config, "category \(name) asks the store to lock its files, but bucket \(configuration.store.bucket) has no Object Lock: use a bucket created with Object Lock (see `uploader store check`), or set lock = \"none\" in [categories.\(name)]")
        }
    }
}

/// Tags given after upload, applied to the stored object: tags replaced,
/// retention only ever extended (or made COMPLIANCE), legal hold set.
public enum StoreTagging {
    public struct Outcome: Sendable {
        public var applied = 0
        public var failed: [String] = []
    }

    /// Applies one verified file's tags to its object; returns what was done. Blocking.
    public static func apply(_ file: MediaFile, rules: ObjectRules, client: S3Client, bucketLocks: () throws -> Bool) throws -> String {
        guard let key = file.objectKey else { throw UploaderError(.notFound, "file #\(file.id) has no object in the store yet") }
        let resolved = rules.resolve(file)
        try rules.check(resolved, bucketLocks: bucketLocks)
        let wanted = resolved.settings
        // The lock first: tags the store refuses must never leave the object unlocked.
        var notes: [String] = []
        var lock = StoreLock(retainUntil: file.retainUntil, mode: file.lockMode, legalHold: file.legalHold)
        if let mode = wanted.lockMode, let until = wanted.retainUntil {
            let head = try client.headObject(key: key)
            let current = (mode: head?.lockMode, until: head?.retainUntil)
            let stricter = current.mode == "GOVERNANCE" && mode == "COMPLIANCE"
            if let currentUntil = current.until, currentUntil >= until, !stricter {
                notes.append("retention kept until \(Timestamps.iso(currentUntil)) (\(current.mode ?? "?")): a retention is only ever extended")
                lock.retainUntil = currentUntil
                lock.mode = current.mode
            } else if current.mode == "COMPLIANCE" && mode == "GOVERNANCE" {
                notes.append("retention kept COMPLIANCE: a lock is never weakened")
            } else {
                let newUntil = max(until, current.until ?? until)
                try client.putObjectRetention(key: key, mode: mode, until: newUntil, bypassGovernance: stricter)
                notes.append("\(mode) retention until \(Timestamps.iso(newUntil))")
                lock.retainUntil = newUntil
                lock.mode = mode
            }
        }
        if wanted.legalHold && !file.legalHold {
            try client.putObjectLegalHold(key: key, on: true)
            lock.legalHold = true
            notes.append("legal hold on")
        } else if file.legalHold && !wanted.legalHold {
            // Lifting a hold is a decision for the store's admin, never a side effect of a tag.
            notes.append("legal hold stays on (lift it in the store if the case allows)")
        }
        do {
            if let problem = resolved.tagProblem { throw UploaderError(.usage, problem + ": correct it with `uploader tag`") }
            try client.putObjectTagging(key: key, tags: wanted.tags)
        } catch {
            let reason = (error as? UploaderError)?.message ?? "\(error)"
            if lock != StoreLock(retainUntil: file.retainUntil, mode: file.lockMode, legalHold: file.legalHold) {
                try rules.ledger.recordStoreLock(file.id, lock: lock, tagsNotApplied: reason, message: "stored object \(key) locked: " + notes.joined(separator: "; "))
            }
            throw error
        }
        let message = "stored object \(key) tagged: " + ([wanted.tags.isEmpty ? "no tags" : wanted.tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")] + notes).joined(separator: "; ")
        try rules.ledger.recordStoreTags(file.id, applied: resolved.tags, lock: lock, message: message)
        return message
    }

    /// Every verified file whose tags changed after upload. Blocking.
    public static func applyPending(rules: ObjectRules, client: S3Client) -> Outcome {
        var outcome = Outcome()
        let locks = StoreAnswerCache(client: client)
        guard let files = try? rules.ledger.filesWithPendingStoreTags() else { return outcome }
        for file in files {
            do {
                _ = try apply(file, rules: rules, client: client, bucketLocks: locks.get)
                outcome.applied += 1
            } catch {
                let message = (error as? UploaderError)?.message ?? "\(error)"
                outcome.failed.append("#\(file.id): \(message)")
                try? rules.ledger.markStoreTagsPending(file.id, reason: message)
            }
        }
        return outcome
    }
}

/// A yes/no the store answers once per run (does the bucket lock objects?
/// does the store check upload checksums?): asked the first time it is
/// needed, then kept.
public final class StoreAnswerCache: Sendable {
    let answer = Mutex<Bool?>(nil)
    let ask: @Sendable () throws -> Bool

    public init(client: S3Client) {
        nonisolated(unsafe) let client = client
        ask = { try client.objectLockEnabled() }
    }

    public init(_ ask: @escaping @Sendable () throws -> Bool) { self.ask = ask }

    /// Asks once: concurrent callers wait for the first answer (a run's
    /// uploads start together). A thrown error is not remembered.
    public func get() throws -> Bool {
        try answer.withLock { known throws -> Bool in
            if let known { return known }
            let value = try ask()
            known = value
            return value
        }
    }
}
