import Crypto
import Foundation
import Spool
import Transport
import Ledger
import Logging
import Synchronization
import SystemPackage
import UploaderCore
import Platform

public struct UploadReport: Sendable, Codable, Equatable {
    public var verified = 0
    public var failed = 0
    public var held = 0
    public var bytesSent: Int64 = 0
    public var retries = 0
    /// Set when the run stopped for a reason no retry can fix.
    public var stoppedBecause: String?
    /// The process's peak resident memory at the end of the run.
    public var peakMemoryBytes: Int64?
    /// Nothing ran: outside the upload windows (and not forced).
    public var windowClosed = false
    public var nextWindowOpens: Date?
    /// The run stopped early on purpose (window closed, shutdown); unfinished files resume next time.
    public var paused = false
    /// Abandoned multipart uploads aborted on the store at the start of the run.
    public var staleUploadsAborted = 0

    public init() {}
}

/// Sends spooled files to the evidence store: one PUT for a file of one
/// part, else a multipart upload whose id and finished parts live in the
/// ledger, so a restart sends only what is missing. Every upload is checked
/// by the store against the SHA-256 taken from the camera, and confirmed
/// with a HEAD before the file is `verified`.
///
/// Blocking: `run` starts `concurrency` threads of its own and waits for them.
public final class UploadRunner: Sendable {
    let configuration: Configuration
    let credentials: Credentials
    let ledger: Ledger
    let logger: Logger
    let policy: RetryPolicy
    let limiter: BandwidthLimiter
    /// Tags, retention and legal hold of each object, and whether the bucket can lock.
    let rules: ObjectRules
    let bucketLocks: StoreAnswerCache
    /// Whether the store checks the checksums sent with uploads: probed once
    /// per run (a store can change under the same endpoint); where it does
    /// not, every object is read back before its file is `verified`.
    let checksumEnforcement: StoreAnswerCache
    /// The spool keyring, read once per run when a sealed copy is first sent,
    /// and again only for a key it does not hold (a rotation during the run).
    private let cachedKeyring = Mutex<SpoolKeyring?>(nil)
    private let state = Mutex(SharedState())

    struct SharedState {
        var queue: [Ledger.QueuedUpload] = []
        /// This run's claim on the files it works on.
        var owner = ProcessIdentity.newOwner("upload")
        var report = UploadReport()
        var force = false
        var now = Date()
        var stop: StopFlag?
    }

    public init(configuration: Configuration, credentials: Credentials, ledger: Ledger, logger: Logger) {
        self.configuration = configuration
        self.credentials = credentials
        self.ledger = ledger
        self.logger = logger
        self.policy = RetryPolicy(configuration.upload)
        self.limiter = BandwidthLimiter(timetable: configuration.bandwidth)
        self.rules = ObjectRules(configuration: configuration, ledger: ledger)
        self.bucketLocks = StoreAnswerCache { try S3Client(configuration: configuration, credentials: credentials).objectLockEnabled() }
        self.checksumEnforcement = StoreAnswerCache { [logger] in
            let probe: S3Client.ChecksumProbe
            do {
                probe = try S3Client(configuration: configuration, credentials: credentials).probeChecksumEnforcement(under: configuration.store.prefix)
            } catch let error as UploaderError where error.stopsTheRun {
                // The store refuses this site (TLS, credentials, bucket): the run stops on it.
                throw error
            } catch {
                // Not known is not enforced: reading back costs time, never a false proof.
                logger.warning("whether the store checks upload checksums could not be found out (\(error)): every object is read back and hashed before it counts as verified")
                return false
            }
            if !probe.enforced {
                logger.warning("the store accepted an upload with a wrong SHA-256 checksum: its checksums prove nothing, so every object is read back and hashed before it counts as verified")
            }
            if let leftover = probe.leftover { logger.warning("the checksum probe's scratch object \(leftover) could not be deleted; delete it in the store") }
            return probe.enforced
        }
    }

    /// Uploads what is due at `now`: spooled files and failed ones whose wait is over.
    /// Outside the upload windows nothing runs unless `force`; a window that
    /// closes mid-run, or `stop`, ends the run between parts (and aborts a part
    /// in flight), leaving finished parts recorded for the next run.
    public func run(ids: [Int64]? = nil, now: Date = Date(), force: Bool = false, stop: StopFlag? = nil) throws -> UploadReport {
        if !force, !configuration.schedule.isOpen(at: now) {
            var report = UploadReport()
            report.windowClosed = true
            report.nextWindowOpens = configuration.schedule.nextOpening(after: now)
            return report
        }
        let startedAt = Date()
        let files = try ledger.uploadQueue(now: now, ids: ids)
        state.withLock {
            $0.queue = files.reversed(); $0.report = UploadReport(); $0.force = force; $0.stop = stop; $0.now = now
            $0.owner = ProcessIdentity.newOwner("upload")
        }
        var staleAborted = 0
        if ids == nil {
            staleAborted = abortStaleUploads(now: now)
            // Tags given after upload reach the stored objects.
            let tagged = StoreTagging.applyPending(rules: rules, client: S3Client(configuration: configuration, credentials: credentials))
            if tagged.applied > 0 { logger.notice("applied later tags to \(tagged.applied) stored objects") }
        }
        guard !files.isEmpty else {
            var report = UploadReport()
            report.staleUploadsAborted = staleAborted
            return report
        }
        try ledger.log(EventDraft(.notice, .uploadRun, "upload run started\(force ? " (forced)" : ""): \(files.count) files, \(ByteCount.format(files.reduce(0) { $0 + $1.size }))"))
        let workers = min(configuration.upload.concurrency, files.count)
        let done = DispatchGroup()
        for index in 0..<workers {
            done.enter()
            let thread = Thread { [self] in
                defer { done.leave() }
                let client = S3Client(configuration: configuration, credentials: credentials)
                client.limiter = limiter
                client.stop = stop
                while let file = nextFile() {
                    process(file, client: client)
                }
            }
            thread.name = "uploader.upload.\(index)"
            thread.start()
        }
        done.wait()
        var report = state.withLock { $0.report }
        report.staleUploadsAborted = staleAborted
        report.peakMemoryBytes = ProcessMemory.peakResidentBytes()
        try ledger.recordRun(startedAt: startedAt, finishedAt: Date(), bytesSent: report.bytesSent, filesVerified: report.verified, forced: force)
        try ledger.log(EventDraft(report.stoppedBecause == nil ? .notice : .error, .uploadRun,
                                  "upload run finished: \(report.verified) verified, \(report.failed) failed, \(ByteCount.format(report.bytesSent)) sent; peak memory \(ByteCount.format(report.peakMemoryBytes ?? 0))"
                                      + (report.paused ? "; paused (window closed or stopping), the rest resumes next run" : "")
                                      + (report.stoppedBecause.map { "; stopped: \($0)" } ?? "")))
        return report
    }

    /// Whether to stop between files and parts: a stop request, or the window closed.
    func shouldPause() -> Bool {
        let (force, stop) = state.withLock { ($0.force, $0.stop) }
        if stop?.isRequested == true { return true }
        return !force && !configuration.schedule.isOpen(at: Date())
    }

    /// Aborts multipart uploads under our prefix that no ledger row needs and
    /// that are older than the configured age: they hold storage forever otherwise.
    func abortStaleUploads(now: Date) -> Int {
        let client = S3Client(configuration: configuration, credentials: credentials)
        guard let uploads = try? client.listMultipartUploads(prefix: configuration.store.prefix.isEmpty ? "" : configuration.store.prefix + "/"),
              let active = try? ledger.activeUploadIDs() else { return 0 }
        var aborted = 0
        for upload in uploads where !active.contains(upload.uploadID) {
            guard let initiated = upload.initiated, now.timeIntervalSince(initiated) > configuration.upload.abortStaleMultipartAfter else { continue }
            if (try? client.abortMultipartUpload(key: upload.key, uploadID: upload.uploadID)) != nil {
                aborted += 1
                try? ledger.log(EventDraft(.notice, .uploadStaleAborted,
                                           "aborted the abandoned multipart upload \(upload.uploadID) of \(upload.key), started \(Timestamps.iso(initiated))"))
            }
        }
        return aborted
    }

    var owner: ClaimOwner { state.withLock { $0.owner } }

    /// The next file this run claims: one another process finished, cancelled
    /// or is uploading right now since the queue was read is skipped.
    private func nextFile() -> MediaFile? {
        while true {
            if shouldPause() {
                state.withLock { if !$0.queue.isEmpty { $0.report.paused = true } }
                return nil
            }
            let (candidate, now) = state.withLock { ($0.report.stoppedBecause == nil ? $0.queue.popLast() : nil, $0.now) }
            guard let candidate else { return nil }
            do {
                if let claimed = try ledger.claimForUpload(candidate.id, owner: owner, now: max(now, Date())) { return claimed }
            } catch {
                logger.error("cannot claim file #\(candidate.id): \(error)")
            }
        }
    }

    private func update(_ change: (inout UploadReport) -> Void) {
        state.withLock { change(&$0.report) }
    }

    /// One file, with retries inside this run for transient failures.
    func process(_ file: MediaFile, client: S3Client) {
        var attempt = 0
        var generator = SystemRandomNumberGenerator()
        while true {
            attempt += 1
            do {
                // The claim read the row; a retry reads what the attempt before it left.
                guard let current = attempt == 1 ? Optional(file) : try ledger.file(file.id) else {
                    throw UploaderError(.notFound, "file #\(file.id) vanished from the ledger")
                }
                try upload(current, client: client)
                update { $0.verified += 1 }
                return
            } catch let error as UploaderError where error.code == .transitionRefused || error.code == .notFound {
                // An admin cancelled the file, or another process took it over: not ours any more.
                logger.notice("\(error.message)", metadata: ["file": "#\(file.id)"])
                try? ledger.releaseClaim(file.id, owner: owner)
                return
            } catch let failure as UploaderError where failure.endsTheTransfer {
                switch failure.code {
                case _ where failure.stopsTheRun:
                    // Every file would fail the same way (credentials, bucket, TLS,
                    // encryption the store cannot do): stop the run, leave files as they are.
                    update { if $0.stoppedBecause == nil { $0.stoppedBecause = failure.message } }
                    try? ledger.markWaiting(file.id, reason: failure.message, owner: owner)
                    return
                case .stopped:
                    // Finished parts stay recorded; the file resumes next run.
                    try? ledger.note(file.id, level: .notice, kind: .uploadPaused, "upload paused (window closed or agent stopping); finished parts are kept")
                    try? ledger.releaseClaim(file.id, owner: owner)
                    update { $0.paused = true }
                    return
                case .storeChecksumMismatch, .spoolCorrupted:
                    let message = "the spool copy no longer matches the SHA-256 taken from the camera (\(failure.storeCode ?? failure.message)); dock the camera again to re-copy it"
                    try? ledger.quarantine(file.id, reason: .spoolCorrupted, message: message, owner: owner)
                    logger.error("\(message)", metadata: ["file": "\(file.sourcePath)"])
                    update { $0.failed += 1 }
                    return
                case _ where failure.isRetryable && attempt < policy.maxAttempts:
                    let wait = policy.delay(afterAttempt: attempt, retryAfter: failure.retryAfter, using: &generator)
                    try? ledger.note(file.id, level: .warning, kind: .uploadRetry,
                                     "attempt \(attempt) failed: \(failure); retrying in \(String(format: "%.1f", wait)) s")
                    update { $0.retries += 1 }
                    Thread.sleep(forTimeInterval: wait)
                case _ where failure.isRetryable:
                    let wait = policy.delay(afterAttempt: attempt, retryAfter: failure.retryAfter, using: &generator)
                    try? ledger.markUploadFailed(file.id, error: "gave up after \(attempt) attempts in this run: \(failure)",
                                                 retryAt: Date().addingTimeInterval(max(wait, policy.baseDelay)), owner: owner)
                    update { $0.failed += 1 }
                    return
                default:
                    // Retrying a request the store refuses outright (or a setting that
                    // makes it refuse) only fills the log: the file waits for an admin
                    // (`uploader retry`), and an alert says so.
                    try? ledger.markUploadFailed(file.id, error: "the store refused the upload: \(failure); fix the cause, then run `uploader retry #\(file.id)`",
                                                 retryAt: nil, owner: owner)
                    update { $0.failed += 1 }
                    return
                }
            } catch {
                // A verification mismatch or a local fault: try again after the longest backoff.
                let message = (error as? UploaderError)?.message ?? "\(error)"
                try? ledger.markUploadFailed(file.id, error: message, retryAt: Date().addingTimeInterval(policy.maxDelay), owner: owner)
                update { $0.failed += 1 }
                return
            }
        }
    }

    /// A sidecar goes beside its recording: the recording's key with the sidecar's extension.
    func objectKey(for file: MediaFile) -> String {
        if let recordingID = file.sidecarOf, let recording = try? ledger.file(recordingID) {
            let key = recording.objectKey ?? plainObjectKey(for: recording)
            let ext = file.name.contains(".") ? String(file.name.split(separator: ".").last!) : ""
            let slash = key.lastIndex(of: "/").map { key.index(after: $0) } ?? key.startIndex
            let stemEnd = key[slash...].lastIndex(of: ".") ?? key.endIndex
            return String(key[..<stemEnd]) + (ext.isEmpty ? "" : "." + ObjectKeyTemplate.sanitize(ext))
        }
        return plainObjectKey(for: file)
    }

    func plainObjectKey(for file: MediaFile) -> String {
        ObjectKeyTemplate.render(configuration.store.keyTemplate, .init(
            prefix: configuration.store.prefix, user: file.user ?? "unassigned", serial: file.serial,
            name: file.name, sha256: file.sha256 ?? "", recordedAt: file.recordedAt ?? file.discoveredAt, fileID: file.id))
    }

    /// The object's `x-amz-meta-*` values. No name may be another's prefix
    /// followed by "-": libcurl 7.88 sorts signed headers as "name:value"
    /// strings, which then disagrees with SigV4's order and breaks the signature.
    func metadata(for file: MediaFile) -> [String: String] {
        var metadata = Self.metadata(for: file, hostName: configuration.hostName)
        // A sidecar names its recording: where it is and what it is.
        if let recordingID = file.sidecarOf, let recording = try? ledger.file(recordingID) {
            metadata["recording-key"] = recording.objectKey ?? plainObjectKey(for: recording)
            metadata["recording-sha256"] = recording.sha256 ?? ""
        }
        return metadata
    }

    /// What an object of `file` carries, for the upload and for `uploader verify`.
    public static func metadata(for file: MediaFile, hostName: String) -> [String: String] {
        [
            "sha256": file.sha256 ?? "",
            "device-serial": file.serial,
            "user": file.user ?? "",
            "recorded-at": file.recordedAt.map(Timestamps.iso) ?? "",
            "recording-time-source": file.recordedAtSource?.rawValue ?? "",
            "ingested-at": file.spooledAt.map(Timestamps.iso) ?? "",
            "source-path": file.sourcePath,
            "host": hostName,
        ]
    }

    /// What the finished object's `x-amz-checksum-sha256` must say, in whichever form the store writes it.
    static func expectedChecksum(parts: [FilePart], wholeFile: SHA256Digest) -> StoreChecksum.Expected {
        expectedChecksum(partDigests: parts.map(\.sha256), whole: wholeFile)
    }

    /// The same from digests (the clearing step's, hashed from the camera).
    static func expectedChecksum(partDigests: [SHA256Digest], whole: SHA256Digest) -> StoreChecksum.Expected {
        StoreChecksum.Expected(wholeFile: whole, partDigests: partDigests)
    }

    /// Whether the store's answer for an object shows exactly `size` bytes of
    /// SHA-256 `sha256`: its own checksum against `expected` (the one
    /// comparison, `StoreChecksum`), or, for a store that keeps none or writes
    /// a form that cannot be read, or that does not check the checksums it is
    /// sent (`trustChecksum` false), the object read back (`readBack`).
    static func storeHolds(_ head: ObjectHead, size: Int64, sha256: String, expected: StoreChecksum.Expected, trustChecksum: Bool = true,
                           readBack: () throws -> (size: Int64, sha256: SHA256Digest)) throws -> Bool {
        guard head.size == size else { return false }
        if let checksum = head.checksumSHA256, trustChecksum {
            switch StoreChecksum.compare(checksum, type: head.checksumType, with: expected) {
            case .matches: return true
            case .differs: return false
            case .unreadable: break
            }
        }
        let downloaded = try readBack()
        return downloaded.size == size && downloaded.sha256.hex == sha256
    }

    /// The keyring holding `keyID`: read at the first sealed copy of the run,
    /// and read again only when it lacks the key (rotated since).
    func keyring(holding keyID: String) throws -> SpoolKeyring? {
        if let cached = cachedKeyring.withLock({ $0 }), cached.key(id: keyID) != nil { return cached }
        let loaded = try SpoolKeyring.existing(path: configuration.ingest.spoolKeyring)
        cachedKeyring.withLock { $0 = loaded }
        return loaded
    }

    /// Sends and verifies `file`, as its claim (or the attempt before) read it:
    /// the row and its parts are read once, the hashes parsed once.
    func upload(_ claimed: MediaFile, client: S3Client) throws {
        let id = claimed.id
        var file = claimed
        guard let spoolName = file.spoolName, let sha = file.sha256, let digest = SHA256Digest(hex: sha) else {
            throw UploaderError(.ledger, "file #\(id) has no spool copy recorded")
        }
        let parts = try ledger.parts(of: id)
        let expected = Self.expectedChecksum(parts: parts, wholeFile: digest)
        var sent: ObjectRules.Resolved?
        var retag = false
        if file.state != .uploaded {
            file = try ledger.beginUpload(id, objectKey: file.objectKey ?? objectKey(for: file), owner: owner)
            let resolved = rules.resolve(file)
            try rules.check(resolved, bucketLocks: bucketLocks.get)
            sent = resolved
            let wanted = resolved.settings
            let path = Spool(root: configuration.spoolDirectory).objectPath(spoolName)
            let reader: SpoolCopyReader
            let fd: FileDescriptor
            do {
                // A sealed copy is opened (and authenticated) chunk by chunk as it streams.
                let keys = try file.spoolKeyID.flatMap { try keyring(holding: $0) }
                (reader, fd) = try SpoolCopyReader.open(path, keyID: file.spoolKeyID, keyring: keys)
            } catch let error as UploaderError {
                throw UploaderError(.spoolCorrupted, error.message, cause: error.cause, underlying: error.underlying)
            } catch {
                throw UploaderError(.spoolCorrupted, "\(path) cannot be opened: \(error)")
            }
            defer { try? fd.close() }
            guard reader.plaintextSize == file.sourceSize else {
                throw UploaderError(.spoolCorrupted, "\(path) holds \(reader.plaintextSize) bytes, the camera file had \(file.sourceSize)")
            }
            // Two proofs keep a changed spool copy from being completed: AES-GCM opens
            // every chunk of a sealed copy only as sealed at ingest, and a store that
            // checks checksums refuses a body that is not the camera's SHA-256. With
            // both, hashing the body here too proves nothing more; else it is hashed.
            let storeChecksBodies = try checksumEnforcement.get()
            let hashBody = !(reader.isSealed && storeChecksBodies)
            do {
                if parts.count <= 1 {
                    _ = try client.putObject(key: file.objectKey!, file: reader, size: file.sourceSize, sha256: digest, metadata: metadata(for: file),
                                             settings: wanted, hashBody: hashBody)
                    update { $0.bytesSent += file.sourceSize }
                } else {
                    try uploadMultipart(file, parts: parts, expected: expected, from: reader, settings: wanted, hashBody: hashBody, client: client)
                }
            } catch let failure as UploaderError where failure.code == .storeObjectExists {
                // Ours from an earlier attempt whose answer was lost, or someone else's object.
                if try storeHoldsExactly(file, key: file.objectKey!, expected: expected, client: client) {
                    try ledger.note(id, level: .notice, kind: .uploadFound, "the store already holds this exact object (an earlier attempt finished it)")
                    // It went with the tags of that attempt: the ones given since are applied below.
                    sent = nil
                    retag = true
                } else {
                    let key = ObjectKeyTemplate.withSuffix(file.objectKey!, "~" + sha.prefix(12))
                    try ledger.changeObjectKey(id, to: key, reason: "another object with different content already has the key \(file.objectKey!); it is never overwritten", owner: owner)
                    throw UploaderError(.objectKeyTaken, "another object already had the key; retrying under \(key)")
                }
            }
            FailPoints.hit("upload.stored")
            file = try ledger.markUploaded(id, owner: owner)
        }
        // The lock this run asked for must be the one the store reports before it is recorded.
        let held = try verify(file, expected: expected, wanted: sent?.settings, client: client)
        if retag, let verified = try ledger.file(id) {
            do {
                _ = try StoreTagging.apply(verified, rules: rules, client: client, bucketLocks: bucketLocks.get)
            } catch {
                try ledger.markStoreTagsPending(id, reason: (error as? UploaderError)?.message ?? "\(error)")
            }
        }
        // The tags the object went with, not the row's now: a tag given during the upload stays pending.
        if let sent, !sent.isEmpty || sent.tagProblem != nil {
            // The lock as the store reports it at verification, never merely as asked for.
            let lock = StoreLock(retainUntil: held.retainUntil, mode: held.lockMode, legalHold: held.legalHold)
            if let problem = sent.tagProblem {
                // The lock went with the object; the tags the store would refuse did not.
                try ledger.recordStoreLock(id, lock: lock, tagsNotApplied: problem + ": correct it with `uploader tag`", message: "stored with \(sent)")
            } else {
                try ledger.recordStoreTags(id, applied: sent.tags, lock: lock, message: "stored with \(sent)")
            }
        }
    }

    func uploadMultipart(_ file: MediaFile, parts: [FilePart], expected: StoreChecksum.Expected, from reader: SpoolCopyReader,
                         settings: ObjectSettings, hashBody: Bool, client: S3Client) throws {
        let key = file.objectKey!
        var uploadID = file.uploadID
        if uploadID == nil {
            let created = try client.createMultipartUpload(key: key, metadata: metadata(for: file), settings: settings)
            do {
                try ledger.recordUploadID(file.id, uploadID: created, owner: owner)
            } catch {
                // Cancelled or taken over meanwhile: the upload just made is nobody's.
                try? client.abortMultipartUpload(key: key, uploadID: created)
                throw error
            }
            uploadID = created
        }
        // The parts as read with the row: under this run's claim nobody else records any.
        var current = parts
        do {
            for (index, part) in current.enumerated() where part.etag == nil {
                if shouldPause() {
                    throw UploaderError(.stopped, "paused between parts")
                }
                let etag = try client.uploadPart(key: key, uploadID: uploadID!, number: part.number, file: reader,
                                                 offset: part.offset, size: part.size, sha256: part.sha256, hashBody: hashBody)
                try ledger.recordPart(file.id, number: part.number, etag: etag, owner: owner)
                current[index].etag = etag
                update { $0.bytesSent += part.size }
                FailPoints.hit("upload.part-recorded")
            }
            try client.completeMultipartUpload(key: key, uploadID: uploadID!, parts: current.map {
                S3Client.CompletedPart(number: $0.number, etag: $0.etag!, sha256: $0.sha256)
            })
        } catch let failure as UploaderError where failure.code == .storeUploadGone {
            // Completed by a run that died before recording it, or aborted/expired: the HEAD decides.
            if try storeHoldsExactly(file, key: key, expected: expected, client: client) {
                return
            }
            try ledger.recordUploadID(file.id, uploadID: nil, owner: owner)
            throw UploaderError(.storeUploadGone, "the multipart upload is gone on the store; starting it again", underlying: failure.underlying)
        }
    }

    /// Whether the object under `key` is this file, byte for byte: by the
    /// store's checksum where the store enforces checksums and writes one the
    /// agent can read, else by reading it back.
    /// Throws (to retry) when the store's answer cannot tell.
    func storeHoldsExactly(_ file: MediaFile, key: String, expected: StoreChecksum.Expected, client: S3Client) throws -> Bool {
        guard let head = try client.headObject(key: key) else { return false }
        return try proof(of: file, key: key, head: head, expected: expected, client: client) != nil
    }

    /// The proof that `head` (the object under `key`) is the file: the
    /// store's checksum as it wrote it, or "sha256:<hex>" of the bytes read
    /// back (a store that keeps no checksum, writes one in a form the agent
    /// cannot read, or does not check the checksums it is sent). Nil: it is not the file.
    func proof(of file: MediaFile, key: String, head: ObjectHead, expected: StoreChecksum.Expected, client: S3Client) throws -> String? {
        guard head.size == file.sourceSize else { return nil }
        if let checksum = head.checksumSHA256, try checksumEnforcement.get() {
            switch StoreChecksum.compare(checksum, type: head.checksumType, with: expected) {
            case .matches: return checksum
            case .differs: return nil
            case .unreadable: break
            }
        }
        let downloaded = try client.hashObject(key: key, versionID: head.versionID)
        guard downloaded.size == file.sourceSize, downloaded.sha256 == expected.wholeFile else { return nil }
        return "sha256:" + downloaded.sha256.hex
    }

    /// Confirms the object: the store's size and its SHA-256 (its own
    /// checksum, or the bytes read back) must equal what the camera read
    /// produced, and the Object Lock asked for (`wanted`) must be what the
    /// store reports: what is missing is applied and checked again. Returns
    /// the store's answer, the lock as it holds it.
    func verify(_ file: MediaFile, expected: StoreChecksum.Expected, wanted: ObjectSettings?, client: S3Client) throws -> ObjectHead {
        guard let key = file.objectKey, var head = try client.headObject(key: key) else {
            try ledger.markUploadLost(file.id, owner: owner)
            throw UploaderError(.storeObjectMissing, "the object is not in the store after upload")
        }
        guard let proof = try proof(of: file, key: key, head: head, expected: expected, client: client) else {
            throw UploaderError(.verification, "the store holds \(key) with size \(head.size) and checksum \(head.checksumSHA256 ?? "none"), which is not the camera's file (\(file.sourceSize) bytes, SHA-256 \(expected.wholeFile.hex)): it will be uploaded again")
        }
        if let wanted {
            head = try ensureLock(wanted, on: key, of: file, head: head, client: client)
        }
        try ledger.markVerified(file.id, storeChecksum: proof, versionID: head.versionID, owner: owner)
        FailPoints.hit("upload.verified")
        return head
    }

    /// The retention and legal hold asked for, as the store reports them.
    /// A store may ignore lock headers (moto does at CreateMultipartUpload):
    /// what is missing is applied with PutObjectRetention / PutObjectLegalHold
    /// and checked once more; still missing is a failure, never a claim.
    func ensureLock(_ wanted: ObjectSettings, on key: String, of file: MediaFile, head: ObjectHead, client: S3Client) throws -> ObjectHead {
        func missing(_ head: ObjectHead) -> [String] {
            var missing: [String] = []
            if let mode = wanted.lockMode, let until = wanted.retainUntil,
               head.lockMode != mode || (head.retainUntil ?? .distantPast) < until.addingTimeInterval(-1) {
                missing.append("\(mode) retention until \(Timestamps.iso(until)) (the store reports \(head.lockMode ?? "no mode")\(head.retainUntil.map { " until \(Timestamps.iso($0))" } ?? ""))")
            }
            if wanted.legalHold, !head.legalHold { missing.append("legal hold") }
            return missing
        }
        let ignored = missing(head)
        guard !ignored.isEmpty else { return head }
        if let mode = wanted.lockMode, let until = wanted.retainUntil,
           head.lockMode != mode || (head.retainUntil ?? .distantPast) < until.addingTimeInterval(-1) {
            // Only ever stricter: a later date than the store holds, and GOVERNANCE never over COMPLIANCE.
            if head.lockMode != "COMPLIANCE" || mode == "COMPLIANCE" {
                try client.putObjectRetention(key: key, mode: mode, until: max(until, head.retainUntil ?? until),
                                              bypassGovernance: head.lockMode == "GOVERNANCE" && mode == "COMPLIANCE")
            }
        }
        if wanted.legalHold, !head.legalHold { try client.putObjectLegalHold(key: key, on: true) }
        guard let checked = try client.headObject(key: key), checked.versionID == head.versionID else {
            throw UploaderError(.storeObjectMissing, "the object \(key) changed while its lock was applied")
        }
        let still = missing(checked)
        guard still.isEmpty else {
            throw UploaderError(.verification, "the store does not hold the lock asked for on \(key): \(still.joined(separator: ", ")); it was applied again and is still missing")
        }
        try ledger.note(file.id, level: .warning, kind: .uploadTagged,
                        "the store did not apply the lock sent with the upload (\(ignored.joined(separator: ", "))): applied after upload and confirmed")
        return checked
    }
}

private extension UploaderError {
    /// How a transfer ends that `process` decides on by code: the store's
    /// answers, a stop, our own spool copy, a setting the store cannot honour.
    var endsTheTransfer: Bool {
        isFromTheStore || [.stopped, .spoolCorrupted, .config, .objectKeyTaken].contains(code)
    }
}
