import Crypto
import Foundation
import Ledger
import Logging
import Platform
import Transport
import UploaderCore

/// The dock's Ed25519 signing key: `dock-key` in the state folder (hex, mode
/// 0600, made at first use), or systemd's `LoadCredential=dock-key:…`
/// (`$CREDENTIALS_DIRECTORY/dock-key`), which wins when present.
public enum DockKey {
    public static func path(_ configuration: Configuration) -> String { configuration.stateDirectory + "/dock-key" }

    public static func loadOrCreate(_ configuration: Configuration, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Ed25519PrivateKey {
        if let credentials = environment["CREDENTIALS_DIRECTORY"], FileManager.default.fileExists(atPath: credentials + "/dock-key") {
            return try read(credentials + "/dock-key")
        }
        let path = path(configuration)
        if FileManager.default.fileExists(atPath: path) { return try read(path) }
        let key = try Ed25519PrivateKey()
        let text = "# uploader dock signing key (Ed25519, raw private key in hex). Keep it secret; back it up.\n"
            + Hex.encode(key.rawRepresentation) + "\n"
        // Two first runs at once keep one key.
        try SideFile.createOnce(path, contents: Data(text.utf8), mode: 0o600, what: "the dock key")
        return try read(path)
    }

    /// The key if this dock has one; never creates it (for `verify`).
    public static func existing(_ configuration: Configuration, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Ed25519PrivateKey? {
        if let credentials = environment["CREDENTIALS_DIRECTORY"], FileManager.default.fileExists(atPath: credentials + "/dock-key") {
            return try read(credentials + "/dock-key")
        }
        return FileManager.default.fileExists(atPath: path(configuration)) ? try read(path(configuration)) : nil
    }

    static func read(_ path: String) throws -> Ed25519PrivateKey {
        if let info = try? Syscall.status(path), info.st_mode & 0o077 != 0 {
            throw UploaderError(.insecure, "the dock key \(path) is readable by other users: run `chmod 600 \(path)`")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw UploaderError(.io, "cannot read the dock key \(path): it must belong to the agent's user, mode 0600")
        }
        let hex = text.split(separator: "\n").first { !$0.hasPrefix("#") }.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard let bytes = Hex.decode(hex), let key = try? Ed25519PrivateKey(rawRepresentation: bytes) else {
            throw UploaderError(.insecure, "the dock key \(path) is damaged (not 64 hex digits): restore it from backup; a new key would not match the checkpoints already in the store")
        }
        return key
    }
}

/// Signed checkpoints of the custody log: signed locally after every ingest
/// and upload run (a dock has no network), written to the store by upload
/// runs and the daemon, oldest first, each exactly once.
public enum CustodyCheckpoints {
    /// A checkpoint that has waited longer than this for the store is an alert:
    /// until it is there, the dock's log can be rewritten without the store telling.
    public static let publishDeadline: TimeInterval = 3600

    /// The checkpoints waiting for the store, if the oldest waited past the deadline. Blocking.
    public static func overdue(ledger: Ledger, now: Date = Date()) throws -> UnpublishedCheckpoints? {
        let waiting = try ledger.unpublishedCheckpoints()
        guard let oldest = waiting.oldestSignedAt, now.timeIntervalSince(oldest) > publishDeadline else { return nil }
        return waiting
    }

    /// "2 hours": how long the oldest waiting checkpoint has waited.
    static func waited(_ waiting: UnpublishedCheckpoints, now: Date) -> String {
        let hours = Int(now.timeIntervalSince(waiting.oldestSignedAt ?? now) / 3600)
        return hours == 1 ? "an hour" : "\(hours) hours"
    }

    /// The alert for checkpoints overdue in the store, if any. Blocking.
    public static func alert(ledger: Ledger, now: Date = Date()) throws -> Alert? {
        guard let waiting = try overdue(ledger: ledger, now: now) else { return nil }
        return Alert(key: "checkpoint-unpublished",
                     message: "\(waiting.count) signed custody checkpoint\(waiting.count == 1 ? "" : "s") of this dock \(waiting.count == 1 ? "has" : "have") not reached the store for \(waited(waiting, now: now)) (the oldest covers event \(waiting.oldestEventID ?? 0)): until the store holds \(waiting.count == 1 ? "it" : "them"), only this PC vouches for the custody log since; see `uploader store check`")
    }

    /// Signs a checkpoint and writes every pending one to the store. A store
    /// that stays unreachable past the deadline is an error, not a note. Blocking.
    public static func signAndPublish(configuration: Configuration, ledger: Ledger, logger: Logger) {
        do {
            try sign(configuration: configuration, ledger: ledger)
            if try !ledger.pendingCheckpoints().isEmpty {
                let client = S3Client(configuration: configuration, credentials: try Credentials.load(configuration.store.credentials))
                try publish(configuration: configuration, ledger: ledger, client: client, logger: logger)
            }
        } catch let failure as UploaderError where failure.isFromTheStore {
            // Pending checkpoints stay pending and the next run writes them; within
            // the deadline the store's trouble is the upload run's own error already.
            if let waiting = try? overdue(ledger: ledger) {
                logger.error("custody checkpoints have not reached the store for \(waited(waiting, now: Date())) (\(waiting.count) waiting): \(failure.message)")
            } else {
                logger.info("custody checkpoints wait for the next run: \(failure.message)")
            }
        } catch {
            logger.error("custody checkpoint: \((error as? UploaderError)?.message ?? "\(error)")")
        }
    }

    /// Signs a checkpoint of the log as it is now (nothing if no event is new). Blocking.
    @discardableResult
    public static func sign(configuration: Configuration, ledger: Ledger) throws -> CheckpointRecord? {
        let key = try DockKey.loadOrCreate(configuration)
        let fingerprint = key.publicKey.fingerprint
        return try ledger.signCheckpoint(dock: configuration.hostName, keyFingerprint: fingerprint) { payload in
            let bytes = payload.canonicalBytes()
            return SignedCheckpoint(payload: String(decoding: bytes, as: UTF8.self), signature: Data(try key.signature(for: bytes)).base64EncodedString())
        }
    }

    /// Signs a checkpoint at once when the upgrade to framed hashes (the
    /// `custody.format` event, which fixes every row's baseline digest) is not
    /// covered by one yet: the baseline is anchored before anything else can
    /// change, not at the next ingest or upload run. Blocking.
    public static func signFormatUpgrade(configuration: Configuration, ledger: Ledger) throws {
        guard let upgrade = ledger.formatStart, try ledger.firstCheckpoint(covering: upgrade) == nil else { return }
        try sign(configuration: configuration, ledger: ledger)
    }

    /// Publishes the dock's public key (once) and every pending checkpoint.
    /// Returns how many checkpoints were stored. Blocking.
    @discardableResult
    public static func publish(configuration: Configuration, ledger: Ledger, client: S3Client, logger: Logger) throws -> Int {
        let key = try DockKey.loadOrCreate(configuration)
        let prefix = configuration.store.prefix
        let dock = configuration.hostName
        let pem = Array(key.publicKey.pem.utf8)
        let keyObject = SignedCheckpoint.publicKeyObjectKey(prefix: prefix, dock: dock)
        let lockedUntil = try client.objectLockEnabled() ? Date().addingTimeInterval(Double(configuration.custody.checkpointRetentionDays) * 86400) : nil
        // The key is a trust anchor for bags (`verify-bag --store`): written once, locked like the checkpoints it vouches for.
        if try client.putOnce(key: keyObject, bytes: pem, contentType: "application/x-pem-file", lockedUntil: lockedUntil) == .exists,
           try client.getSmall(key: keyObject) != pem {
            let message = "the store holds a different public key for dock \(dock) at \(keyObject): another PC uses this dock name, or this dock's key was replaced; checkpoints are not written until an admin resolves it ([agent] host_name)"
            _ = try? ledger.log(EventDraft(.error, .custodyProblem, message))
            throw UploaderError(.insecure, message)
        }
        var stored = 0
        for checkpoint in try ledger.pendingCheckpoints() {
            let objectKey = SignedCheckpoint.objectKey(prefix: prefix, dock: dock, eventID: checkpoint.eventID)
            let bytes = Array(checkpoint.body.utf8)
            if try client.putOnce(key: objectKey, bytes: bytes, contentType: "application/json", lockedUntil: lockedUntil) == .exists,
               try client.getSmall(key: objectKey) != bytes {
                let message = "the store holds a different checkpoint at \(objectKey): this dock's log and the store disagree; run `uploader verify --all`"
                _ = try? ledger.log(EventDraft(.error, .custodyProblem, message))
                throw UploaderError(.insecure, message)
            }
            try ledger.markCheckpointStored(eventID: checkpoint.eventID, objectKey: objectKey)
            stored += 1
        }
        if stored > 0 { logger.info("stored \(stored) custody checkpoint(s) in the store") }
        return stored
    }
}
