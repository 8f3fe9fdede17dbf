import Crypto
import Foundation
import Ledger
import Platform
import Spool
import SystemPackage
import Transport
import UploaderCore

/// What `uploader verify` concludes about one file.
public struct FileVerdict: Sendable, Codable {
    public var id: Int64
    public var serial: String
    public var sourcePath: String
    public var state: String
    public var objectKey: String?
    /// What is wrong, each with the event since which it is wrong where known.
    public var problems: [String]
    /// What could not be checked, and why (not a failure).
    public var notes: [String]
    /// The store could not be asked about this file's object.
    public var storeUnreachable = false
    public var ok: Bool { problems.isEmpty }
}

/// Checks one file against everything that vouches for it: the event that
/// last recorded its row, the custody registry, the spool copy and the
/// object in the store. Blocking (files, network): on a thread of its own.
public struct CustodyVerifier {
    let configuration: Configuration
    let spool: Spool
    /// What each file's category requires of its object (nil: not checked).
    let rules: ObjectRules?

    public init(configuration: Configuration, rules: ObjectRules? = nil) {
        self.configuration = configuration
        spool = Spool(root: configuration.spoolDirectory)
        self.rules = rules
    }

    public func check(_ record: FileCustodyRecord, store: S3Client?) -> FileVerdict {
        let file = record.file
        var verdict = FileVerdict(id: file.id, serial: file.serial, sourcePath: DisplayText.terminalSafe(file.sourcePath), state: file.state.rawValue,
                                  objectKey: file.objectKey, problems: [], notes: [])
        if let digest = record.lastEventDigest {
            if digest != record.currentDigest {
                verdict.problems.append("the ledger row (state, hash, size, user, key or recording time) was changed after event \(record.lastEventID ?? 0) without an event: it is not what the custody log recorded")
            }
        } else {
            verdict.problems.append("no event vouches for this row, and it is not in the custody baseline fixed at the upgrade to framed hashes (event \(record.lastEventID ?? 0)): it was added behind the ledger's back")
        }
        if let user = file.user, let custodyUser = record.custodyUser, user != custodyUser, file.holdReason == nil {
            verdict.problems.append("filed under \(user), but the custody registry says \(custodyUser) held camera \(file.serial) at the recording time")
        }
        if let name = file.spoolName, file.spoolPurgedAt == nil, let expected = file.sha256 {
            switch hashSpoolCopy(name, keyID: file.spoolKeyID) {
            case .success(let digest) where digest == expected: break
            case .success(let digest): verdict.problems.append("the spool copy \(name) has SHA-256 \(digest), not the camera's \(expected)")
            case .failure(let error): verdict.problems.append("the spool copy \(name) cannot be read: \(error.message)")
            }
        }
        if file.state == .verified, let key = file.objectKey {
            if let store {
                checkObject(file, key: key, store: store, into: &verdict)
            } else {
                verdict.notes.append("store not checked (--offline or no credentials)")
            }
        }
        return verdict
    }

    func checkObject(_ file: MediaFile, key: String, store: S3Client, into verdict: inout FileVerdict) {
        let head: ObjectHead?
        do {
            head = try store.headObject(key: key)
        } catch {
            verdict.notes.append("store not reachable for \(key): \(error)")
            verdict.storeUnreachable = true
            return
        }
        guard let head else {
            verdict.problems.append(deletedObjectProblem(file, key: key, store: store))
            return
        }
        if let verified = file.storeVersionID, let latest = head.versionID, latest != verified {
            // Overwritten (a bucket without Object Lock): the verified version may still be there.
            let held = (try? store.headObject(key: key, versionID: verified)).flatMap { $0 }
            let still = held.map { Self.versionHoldsFile(file, key: key, head: $0, store: store) } ?? false
            verdict.problems.append("the object \(key) was overwritten: its latest version is \(latest), not \(verified) verified at upload, "
                                    + (still ? "which still holds the file (export uses it)" : "which is gone"))
        }
        // What the store was made to enforce must still hold.
        if let recorded = file.retainUntil, (head.retainUntil ?? .distantPast) < recorded.addingTimeInterval(-1) {
            verdict.problems.append("the store's retention of \(key) is \(head.retainUntil.map(Timestamps.iso) ?? "gone"), not \(Timestamps.iso(recorded)) (\(file.lockMode ?? "?")) as applied: it was shortened or removed")
        }
        if file.legalHold, !head.legalHold {
            verdict.problems.append("the legal hold on \(key) was lifted in the store, not by this agent")
        }
        checkRequiredLock(file, key: key, head: head, into: &verdict)
        if head.size != file.sourceSize {
            verdict.problems.append("the store holds \(key) with \(head.size) bytes, not \(file.sourceSize)")
        }
        if let checksum = head.checksumSHA256, let recorded = file.storeChecksum, let digest = file.sha256.flatMap({ SHA256Digest(hex: $0) }),
           let expected = StoreChecksum.Expected(wholeFile: digest, recorded: recorded),
           StoreChecksum.compare(checksum, type: head.checksumType, with: expected) == .differs {
            verdict.problems.append("the store's checksum of \(key) is \(checksum), not the \(recorded) verified at upload: the object was replaced")
        }
        let expected = UploadRunner.metadata(for: file, hostName: configuration.hostName)
        for name in ["sha256", "device-serial", "user", "recorded-at", "source-path"] where head.metadata[name] != expected[name] {
            verdict.problems.append("the object's \(name) metadata is \(head.metadata[name].map { "\"\($0)\"" } ?? "missing"), not \"\(expected[name] ?? "")\": the object was replaced")
        }
    }

    /// The lock the file's category requires must be on the object, whatever
    /// the ledger recorded as applied: tags the store refused, or a category
    /// changed in the ledger, must not leave evidence unlocked unnoticed.
    func checkRequiredLock(_ file: MediaFile, key: String, head: ObjectHead, into verdict: inout FileVerdict) {
        guard let rules else { return }
        let required = rules.resolve(file)
        guard let name = required.category?.category.name else { return }
        let pending = file.storeTagsPending ? " (its tags have not reached the stored object: see `uploader log --file #\(file.id) --level warning`)" : ""
        // A retention already over is not asked of the store any more.
        if let mode = required.settings.lockMode, let until = required.settings.retainUntil, until > Date() {
            let held = head.retainUntil.map { "\(head.lockMode ?? "?") retention until \(Timestamps.iso($0))" } ?? "none"
            if (head.retainUntil ?? .distantPast) <= Date() {
                verdict.problems.append("category \(name) requires \(mode) retention until \(Timestamps.iso(until)) of \(key); the store has none\(pending)")
            } else if head.retainUntil! < until.addingTimeInterval(-1) || (mode == "COMPLIANCE" && head.lockMode != "COMPLIANCE") {
                // Locked, but less than the category asks now: its rule changed since, or a tag waits for the store.
                verdict.notes.append("category \(name) now asks for \(mode) retention until \(Timestamps.iso(until)) of \(key); the store has \(held)\(pending)")
            }
        }
        if required.settings.legalHold, !head.legalHold {
            verdict.problems.append("category \(name) requires a legal hold on \(key); the store has none\(pending)")
        }
    }

    /// Why HEAD found no object: a plain DELETE on a versioned bucket only adds
    /// a delete marker, and the version beneath may still prove the file.
    func deletedObjectProblem(_ file: MediaFile, key: String, store: S3Client) -> String {
        guard let versions = try? store.versions(of: key), let marker = versions.first(where: { $0.isDeleteMarker && $0.isLatest }) else {
            return "the object \(key) is gone from the store"
        }
        // The version verified at upload first, then any other that holds the same bytes.
        var candidates = versions.filter { !$0.isDeleteMarker }.sorted { ($0.versionID == file.storeVersionID ? 0 : 1) < ($1.versionID == file.storeVersionID ? 0 : 1) }
        let readBack = file.storeChecksum.map { $0.hasPrefix("sha256:") } ?? true
        if readBack, let verified = file.storeVersionID {
            // Proven by reading it back: the store's checksum proves nothing, and each other version would be read in full.
            candidates = candidates.filter { $0.versionID == verified }
        }
        for version in candidates {
            guard let head = try? store.headObject(key: key, versionID: version.versionID),
                  Self.versionHoldsFile(file, key: key, head: head, store: store) else { continue }
            let lock = head.retainUntil.map { ", \(head.lockMode ?? "") retention until \(Timestamps.iso($0))" } ?? ""
            let how = readBack ? "size and SHA-256 of the bytes read back match" : "size and SHA-256 checksum match"
            return "the object \(key) was deleted: a delete marker (version \(marker.versionID)) hides it; version \(version.versionID) still holds the file (\(how)\(lock)\(head.legalHold ? ", legal hold" : "")): remove the delete marker to restore it"
        }
        return "the object \(key) was deleted (a delete marker, version \(marker.versionID), hides it) and no earlier version holds the file"
    }

    /// Whether `head`, a version of `key`, holds the file: its size, and the
    /// store's checksum compared as the upload compared it, or (a file proven
    /// by reading it back, or a checksum form the agent cannot read) its bytes
    /// read back and hashed.
    static func versionHoldsFile(_ file: MediaFile, key: String, head: ObjectHead, store: S3Client) -> Bool {
        guard head.size == file.sourceSize, let digest = file.sha256.flatMap({ SHA256Digest(hex: $0) }) else { return false }
        if let checksum = head.checksumSHA256, let recorded = file.storeChecksum,
           let expected = StoreChecksum.Expected(wholeFile: digest, recorded: recorded) {
            switch StoreChecksum.compare(checksum, type: head.checksumType, with: expected) {
            case .matches: return true
            case .differs: return false
            case .unreadable: break
            }
        }
        guard let read = try? store.hashObject(key: key, versionID: head.versionID) else { return false }
        return read.size == file.sourceSize && read.sha256 == digest
    }

    /// The SHA-256 of the camera bytes in the spool copy (a sealed copy is opened chunk by chunk).
    func hashSpoolCopy(_ name: String, keyID: String?) -> Result<String, UploaderError> {
        Result {
            let keyring = keyID == nil ? nil : try SpoolKeyring.existing(path: configuration.ingest.spoolKeyring)
            let (reader, fd) = try SpoolCopyReader.open(spool.objectPath(name), keyID: keyID, keyring: keyring)
            defer { try? fd.close() }
            return try FileHashes.of(reader, sha512: false).sha256
        }
        .mapError { ($0 as? UploaderError) ?? UploaderError(.io, "it is missing or not a regular file", cause: "\($0)") }
    }
}

/// What `uploader verify` concludes about the signed checkpoints.
public struct CheckpointVerdict: Sendable, Codable {
    public var local: Int = 0
    /// The event id of the newest checkpoint in the store, if one was checked.
    public var storeLatest: Int64?
    public var problems: [String] = []
    public var notes: [String] = []
}

extension CustodyVerifier {
    /// Every local checkpoint's signature and head, and the store's newest
    /// checkpoint against the local chain: a log cut short or re-chained
    /// after that checkpoint was written no longer contains its head.
    public func checkCheckpoints(ledger: Ledger, store: S3Client?) -> CheckpointVerdict {
        var verdict = CheckpointVerdict()
        let key: Ed25519PrivateKey?
        do { key = try DockKey.existing(configuration) } catch {
            verdict.problems.append("the dock key cannot be read: \((error as? UploaderError)?.message ?? "\(error)")")
            return verdict
        }
        let publicKey = key?.publicKey
        checkLocalCheckpoints(ledger: ledger, publicKey: publicKey, into: &verdict)
        if publicKey == nil, verdict.local > 0 {
            // Without the key a checkpoint's signature proves nothing here: never report them as signed and checked.
            verdict.problems.append("the dock key \(DockKey.path(configuration)) is missing: the \(verdict.local) local checkpoints' signatures cannot be checked against it; restore the key from its backup (the store's published key is used instead where the store is reachable)")
        }
        guard let store else {
            verdict.notes.append("the store's checkpoints were not checked")
            return verdict
        }
        let folder = SignedCheckpoint.folder(prefix: configuration.store.prefix, dock: configuration.hostName)
        do {
            guard let latest = try store.listObjectKeys(prefix: folder + "/").filter({ $0.hasSuffix(".json") }).max() else {
                if verdict.local > 0 { verdict.problems.append("the store holds no checkpoint of this dock under \(folder)/, though \(verdict.local) were signed: they were deleted, or never written (see `uploader log --level warning`)") }
                else { verdict.notes.append("no checkpoint yet: one is signed after the next ingest or upload run") }
                return verdict
            }
            guard let body = try store.getSmall(key: latest) else {
                verdict.problems.append("the store's newest checkpoint \(latest) vanished while being read")
                return verdict
            }
            let pem = try store.getSmall(key: SignedCheckpoint.publicKeyObjectKey(prefix: configuration.store.prefix, dock: configuration.hostName))
            guard let published = pem.flatMap({ Ed25519PublicKey(pem: String(decoding: $0, as: UTF8.self)) }) else {
                verdict.problems.append("the store holds no readable public key for this dock at \(SignedCheckpoint.publicKeyObjectKey(prefix: configuration.store.prefix, dock: configuration.hostName))")
                return verdict
            }
            if publicKey == nil, verdict.local > 0 {
                var againstStore = CheckpointVerdict()
                checkLocalCheckpoints(ledger: ledger, publicKey: published, into: &againstStore)
                verdict.problems += againstStore.problems.map { "\($0) (checked with the store's published key)" }
            }
            if let publicKey, published != publicKey {
                verdict.problems.append("the public key in the store is not this dock's key (fingerprint \(published.fingerprint), this dock \(publicKey.fingerprint))")
            }
            if let problem = Self.problem(with: body, publicKey: published, ledger: ledger, expectedEventID: nil) {
                verdict.problems.append("the store's newest checkpoint \(latest): \(problem)")
            }
            verdict.storeLatest = (try? JSONDecoder().decode(SignedCheckpoint.self, from: Data(body)))?.decodedPayload?.lastEventID
        } catch {
            verdict.notes.append("the store's checkpoints could not be read: \(error)")
        }
        return verdict
    }

    func checkLocalCheckpoints(ledger: Ledger, publicKey: Ed25519PublicKey?, into verdict: inout CheckpointVerdict) {
        do {
            try ledger.forEachCheckpoint { record in
                verdict.local += 1
                if let problem = Self.problem(with: Array(record.body.utf8), publicKey: publicKey, ledger: ledger, expectedEventID: record.eventID) {
                    verdict.problems.append("local checkpoint at event \(record.eventID): \(problem)")
                }
            }
        } catch {
            verdict.problems.append("the checkpoints cannot be read from the ledger: \(error)")
        }
    }

    /// What is wrong with one stored checkpoint, or nil.
    static func problem(with body: [UInt8], publicKey: Ed25519PublicKey?, ledger: Ledger, expectedEventID: Int64?) -> String? {
        guard let signed = try? JSONDecoder().decode(SignedCheckpoint.self, from: Data(body)), let payload = signed.decodedPayload else {
            return "not a readable checkpoint"
        }
        if let expectedEventID, payload.lastEventID != expectedEventID {
            return "it covers event \(payload.lastEventID), not \(expectedEventID)"
        }
        guard let signature = Data(base64Encoded: signed.signature) else { return "its signature is not base64" }
        if let publicKey {
            if payload.key != publicKey.fingerprint { return "signed by key \(payload.key), not this dock's \(publicKey.fingerprint)" }
            if !publicKey.isValidSignature(Array(signature), for: Array(signed.payload.utf8)) { return "its signature does not match its content: it was altered" }
        }
        switch Result(catching: { try ledger.eventHash(id: payload.lastEventID) }) {
        case .success(nil):
            return "event \(payload.lastEventID), which it signed, is missing from the custody log: the log was cut short"
        case .success(let hash?) where hash != payload.chainHead:
            return "the custody log was rewritten: event \(payload.lastEventID) now has hash \(hash.prefix(16))…, the signed head is \(payload.chainHead.prefix(16))…"
        case .success: return nil
        case .failure(let error): return "the custody log cannot be read: \(error)"
        }
    }
}
