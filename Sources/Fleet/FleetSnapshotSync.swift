import Crypto
import Foundation
import Ledger
import Transport
import UploaderCore

/// Who writes this dock's snapshots: its key, and how long they are kept where the bucket has Object Lock.
public struct FleetSnapshotWriter: Sendable {
    public var author: FleetRegistry.Author
    /// `[custody] checkpoint_retention_days`, as for commits.
    public var retentionDays: Int

    public init(author: FleetRegistry.Author, retentionDays: Int) {
        self.author = author
        self.retentionDays = retentionDays
    }
}

/// Snapshots as `sync` uses them: a dock with no registry starts from the
/// newest one that holds; a dock that reaches commit N (a multiple of
/// `FleetSnapshot.interval`) keeps its own digest of the registry there,
/// writes the snapshot if it is a member and nobody has, and checks the one in
/// the store against its own. Blocking: S3 and SQLite.
extension FleetRegistry {
    /// How many of the newest snapshots a new dock tries before it replays every commit.
    static let snapshotTries = 3

    /// Takes the registry from the newest snapshot that holds, when this dock
    /// has none yet. Refused snapshots are recorded, logged and alerted.
    /// Returns the commit it now stands at (nil: no snapshot, or it replays).
    func startFromSnapshot(notes: inout [String]) throws -> Int64? {
        guard try ledger.mayStartFromFleetSnapshot() else { return nil }
        let numbers = try client.listObjectKeys(prefix: FleetKeys.snapshotFolder(prefix: prefix))
            .compactMap { FleetKeys.snapshotNumber(ofKey: $0, prefix: prefix) }.sorted(by: >)
        for number in numbers.prefix(Self.snapshotTries) {
            var seen: FleetSnapshot.Header?
            do {
                try withDownloadedSnapshot(number) { lines in
                    let header = try FleetSnapshot.readHeader(number: number, lines: lines)
                    seen = header
                    let commit = try snapshotCommit(header)
                    try ledger.startFromFleetSnapshot(number: number, commitHash: header.commit, origin: header.dock,
                                                      signer: header.signerFingerprint ?? "?") { apply in
                        let verified = try FleetSnapshot.readEntries(header: header, lines: lines, entry: apply)
                        guard let signer = commit.signerFingerprint, verified.members.contains(signer) else {
                            throw UploaderError(.insecure, "commit \(number) is signed by a key that is not a fleet member in the snapshot")
                        }
                    }
                }
                notes.append("started from the fleet's snapshot at commit \(number) (written by \(DisplayText.escaped(seen?.dock ?? "?")))")
                return number
            } catch let error as UploaderError where error.code.isStoreFailure {
                throw error
            } catch let error as UploaderError where error.code == .busy {
                // Another process of this dock took its registry first: the sync goes on from there.
                return nil
            } catch {
                let problem = Self.snapshotProblem(error)
                try ledger.recordFleetSnapshotVerdict(number: number, status: .bad, dock: seen?.dock, signer: seen?.signerFingerprint, problem: problem)
                notes.append("fleet snapshot \(number) refused: \(problem)")
            }
        }
        return nil
    }

    /// Commit N as the snapshot names it: in the store, signed, its signature holding, with the hash the snapshot names.
    func snapshotCommit(_ header: FleetSnapshot.Header) throws -> FleetCommit {
        let number = header.number
        guard let bytes = try client.getSmall(key: FleetKeys.commit(prefix: prefix, number: number)) else {
            throw UploaderError(.insecure, "commit \(number), where it stands, is not in the store")
        }
        guard let commit = try? FleetCommit.decode(bytes), commit.format == FleetCommit.formatName, commit.number == number else {
            throw UploaderError(.insecure, "commit \(number), where it stands, does not parse as that commit")
        }
        guard commit.signatureHolds else { throw UploaderError(.insecure, "commit \(number), where it stands, is not validly signed") }
        guard commit.hash == header.commit else {
            throw UploaderError(.insecure, "it names \(header.commit.prefix(12))… as commit \(number)'s hash, but that commit's is \(commit.hash.prefix(12))…")
        }
        // The key that wrote commit N writes snapshot N: a snapshot is worth no more than that member's signature.
        guard commit.signer == header.signer else {
            throw UploaderError(.insecure, "it is signed by key \(Ed25519PublicKey.grouped(header.signerFingerprint ?? "?")), not by the member that wrote commit \(number)")
        }
        return commit
    }

    /// Commit `number` (a multiple of the interval) was just applied here:
    /// keeps this dock's digest of the registry there and, when `write` and
    /// this dock is a member, writes the snapshot unless another dock has.
    func snapshotAt(_ number: Int64, write: Bool, notes: inout [String]) throws {
        // Only the dock that wrote commit N writes snapshot N (every other checks it).
        var writer = write ? snapshotWriter : nil
        if let key = writer?.author.key, try ledger.fleetCommit(number: number)?.signer != key.publicKey.fingerprint { writer = nil }
        let author = writer?.author
        guard let state = try ledger.fleetState(), state.appliedNumber == number else { return }
        let header = FleetSnapshot.Header(number: number, commit: state.appliedHash, dock: author?.dock ?? state.dock, user: author?.user ?? "",
                                          signer: author?.key.publicKey.hex ?? "")
        let building = try FleetSnapshot.Writer(header: header, keepBytes: author != nil)
        // Another process of this dock applied the next commit first: the registry at `number` is gone from here.
        guard try ledger.forEachFleetSnapshotEntry(atCommit: number, { building.add($0) }) else { return }
        guard let author, let writer else {
            try ledger.recordFleetSnapshotDigest(number: number, digest: building.digest.finalize())
            return
        }
        let end = try building.finish(key: author.key)
        try ledger.recordFleetSnapshotDigest(number: number, digest: end.entries)
        let lockedUntil = try client.objectLockEnabled() ? Date().addingTimeInterval(Double(writer.retentionDays) * 86400) : nil
        if try putOnce(key: FleetSnapshot.key(prefix: prefix, number: number), bytes: building.bytes ?? [], lockedUntil: lockedUntil) == .created {
            try ledger.recordFleetSnapshotVerdict(number: number, status: .written, dock: author.dock, signer: author.key.publicKey.fingerprint, problem: nil)
            notes.append("wrote the fleet's snapshot at commit \(number)")
        }
    }

    /// Checks the store's snapshots this dock holds its own digest of: the
    /// signature, a member's key, commit N's hash as this dock read it, and the
    /// registry itself. A snapshot that differs is recorded, logged and alerted.
    func checkPendingSnapshots(notes: inout [String]) throws {
        for pending in try ledger.pendingFleetSnapshots() {
            let key = FleetSnapshot.key(prefix: prefix, number: pending.number)
            guard try client.headObject(key: key) != nil else { continue }
            var seen: FleetSnapshot.Header?
            var verdict: (FleetSnapshotRecord.Status, String?) = (.matched, nil)
            do {
                try withDownloadedSnapshot(pending.number) { lines in
                    let header = try FleetSnapshot.readHeader(number: pending.number, lines: lines)
                    seen = header
                    let verified = try FleetSnapshot.readEntries(header: header, lines: lines) { _ in }
                    let mine = try ledger.fleetCommit(number: pending.number)?.hash
                    if header.commit != mine {
                        verdict = (.mismatch, "it names \(header.commit.prefix(12))… as commit \(pending.number)'s hash; this dock read \(mine?.prefix(12) ?? "none")…")
                    } else if let signer = header.signerFingerprint, try ledger.fleetCommit(number: pending.number)?.signer != signer {
                        verdict = (.mismatch, "it is signed by key \(Ed25519PublicKey.grouped(signer)), not by the member that wrote commit \(pending.number)")
                    } else if verified.end.entries != pending.digest {
                        verdict = (.mismatch, "its registry (\(verified.end.members) members, \(verified.end.devices) devices, \(verified.end.periods) periods) is not the one this dock holds at commit \(pending.number)")
                    }
                }
            } catch let error as UploaderError where error.code.isStoreFailure {
                throw error
            } catch {
                verdict = (.bad, Self.snapshotProblem(error))
            }
            try ledger.recordFleetSnapshotVerdict(number: pending.number, status: verdict.0, dock: seen?.dock, signer: seen?.signerFingerprint, problem: verdict.1)
            if let problem = verdict.1 { notes.append("fleet snapshot \(pending.number) (written by \(DisplayText.escaped(seen?.dock ?? "?"))) refused: \(problem)") }
        }
    }

    /// Fetches a snapshot into an unnamed temporary file (never held whole in memory) and reads it from there.
    func withDownloadedSnapshot<T>(_ number: Int64, _ body: (LineReader) throws -> T) throws -> T {
        guard let file = tmpfile() else { throw UploaderError(.io, "cannot create a temporary file for the fleet snapshot: check the temporary folder") }
        defer { fclose(file) }
        var failed = false
        try client.getObject(key: FleetSnapshot.key(prefix: prefix, number: number)) { bytes in
            if !failed, let base = bytes.baseAddress, fwrite(base, 1, bytes.count, file) != bytes.count { failed = true }
        }
        guard !failed, fflush(file) == 0 else { throw UploaderError(.io, "cannot write the fleet snapshot to a temporary file: is the temporary folder full?") }
        rewind(file)
        return try body(LineReader(file: file))
    }

    static func snapshotProblem(_ error: any Error) -> String {
        if let error = error as? UploaderError { return error.message }
        return "its entries do not make a registry (\(error))"
    }
}

extension UploaderError.Code {
    /// The store or this machine failed (try again later), as opposed to a snapshot that does not hold.
    var isStoreFailure: Bool {
        switch self {
        case .storeUnavailable, .storeAuth, .storeMissingBucket, .storeTLS, .storeRejected, .storeObjectMissing, .credentials, .io, .diskFull, .ledger: true
        default: false
        }
    }
}
