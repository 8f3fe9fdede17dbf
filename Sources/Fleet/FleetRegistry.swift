import Crypto
import Foundation
import Ledger
import Platform
import Transport
import UploaderCore

/// The fleet registry through the evidence store: reading it into the
/// ledger (`sync`) and writing one change (`commit`). Blocking: S3 and SQLite.
public struct FleetRegistry {
    public let ledger: Ledger
    public let client: S3Client
    public let prefix: String
    /// This dock's key for writing snapshots (nil: it only checks them).
    public var snapshotWriter: FleetSnapshotWriter?
    /// Tests only: snapshots at every this many commits instead of `FleetSnapshot.interval`.
    public var snapshotInterval = FleetSnapshot.interval

    public init(ledger: Ledger, client: S3Client, prefix: String) {
        self.ledger = ledger
        self.client = client
        self.prefix = prefix
    }

    // MARK: - Reading

    public struct SyncReport: Sendable {
        /// The commits read in this sync, as judged, with what applying each did.
        public var commits: [(record: FleetCommitRecord, outcome: String)] = []
        /// The highest commit number this dock has read.
        public var head: Int64 = 0
        /// Why the sync stopped before the store's last commit.
        public var blocked: String?
        /// The snapshot this dock's registry started from in this sync.
        public var startedFrom: Int64?
        /// Snapshots started from, written or refused, for the log.
        public var snapshotNotes: [String] = []
    }

    /// Reads the commits after the one this dock applied last, checks each
    /// (parses, signed, by a member, chained to the one before, numbered
    /// without a gap) and applies those that hold; the others are recorded,
    /// logged and alerted, and change nothing. Nothing when the dock is not in a fleet.
    /// `deadline`: a sync before docking stops there (the rest waits for the next one).
    /// A dock with no registry yet starts from the newest snapshot that holds;
    /// at every `FleetSnapshot.interval`-th commit a dock keeps its digest of the
    /// registry, writes the snapshot (the dock that wrote that commit, not before
    /// docking) and checks the store's.
    @discardableResult
    public func sync(deadline: Date? = nil) throws -> SyncReport {
        var report = SyncReport()
        guard try ledger.fleetState() != nil else { return report }
        report.startedFrom = try startFromSnapshot(notes: &report.snapshotNotes)
        guard var state = try ledger.fleetState() else { return report }
        let keys = try retrying(until: deadline) { try client.listObjectKeys(prefix: FleetKeys.registryFolder(prefix: prefix),
                                                            startAfter: FleetKeys.commit(prefix: prefix, number: state.appliedNumber)) }
        let numbers = keys.compactMap { FleetKeys.number(ofKey: $0, prefix: prefix) }.sorted()
        for number in numbers where number > state.appliedNumber {
            if let deadline, Date() > deadline { break }
            let expected = state.appliedNumber + 1
            guard number == expected, let bytes = try retrying(until: deadline, { try client.getSmall(key: FleetKeys.commit(prefix: prefix, number: expected)) }) else {
                let problem = "commit \(expected) is missing from the store while commit \(numbers.last ?? number) exists (deleted, or written out of turn): this dock stays at commit \(state.appliedNumber) until an admin puts it back"
                try ledger.recordFleetSync(blockedAt: expected, problem: problem)
                report.blocked = problem
                report.head = state.appliedNumber
                return report
            }
            let (record, change) = try judge(bytes, number: expected, state: state)
            if let stored = try ledger.recordFleetCommit(record, change: change) {
                report.commits.append(stored)
                if expected % snapshotInterval == 0, stored.record.status != .bad {
                    do { try snapshotAt(expected, write: deadline == nil, notes: &report.snapshotNotes) } catch {
                        report.snapshotNotes.append("the fleet's snapshot at commit \(expected) not written or kept here: \((error as? UploaderError)?.message ?? "\(error)")")
                    }
                }
            }
            // Whoever recorded it (this process or another one at the same time), go on from there.
            guard let now = try ledger.fleetState() else { return report }
            state = now
        }
        if deadline == nil {
            do { try checkPendingSnapshots(notes: &report.snapshotNotes) } catch {
                report.snapshotNotes.append("the fleet's snapshots not checked now: \((error as? UploaderError)?.message ?? "\(error)")")
            }
        }
        try ledger.recordFleetSync()
        report.head = state.appliedNumber
        return report
    }

    /// Whether a commit holds. A bad one is described as well as it can be (what it claims).
    func judge(_ bytes: [UInt8], number: Int64, state: FleetState) throws -> (FleetCommitRecord, RegistryChange?) {
        guard let commit = try? FleetCommit.decode(bytes), commit.format == FleetCommit.formatName else {
            return (FleetCommitRecord(number: number, hash: nil, dock: nil, user: nil, at: nil, kind: nil, serial: nil,
                                      summary: "\(bytes.count) bytes that are not a fleet commit", signer: nil, status: .bad,
                                      problem: "it does not parse as a fleet commit"), nil)
        }
        var record = FleetCommitRecord(number: number, hash: commit.hash, dock: commit.dock, user: commit.user, at: commit.at,
                                       kind: commit.change.kind.rawValue, serial: commit.change.serial, summary: commit.change.summary,
                                       signer: commit.signerFingerprint, status: .applied, problem: nil)
        func bad(_ problem: String) -> (FleetCommitRecord, RegistryChange?) {
            record.status = .bad
            record.problem = problem
            return (record, nil)
        }
        if commit.number != number { return bad("it says it is commit \(commit.number)") }
        if (commit.signature ?? "").isEmpty { return bad("it is not signed") }
        guard let fingerprint = commit.signerFingerprint, commit.signatureHolds else { return bad("its signature does not hold") }
        if commit.parent != state.appliedHash { return bad("its parent is not the commit before it") }
        if state.appliedHash == Ledger.fleetGenesisParent {
            // The fleet's first commit: its dock admits its own key.
            guard commit.change.kind == .memberAdmit, commit.change.publicKey == commit.signer else {
                return bad("the fleet's first commit must admit the key that signs it")
            }
        } else if try !ledger.isFleetMember(fingerprint: fingerprint) {
            return bad("it is signed by key \(Ed25519PublicKey.grouped(fingerprint)), which is not a fleet member")
        }
        return (record, commit.change)
    }

    // MARK: - Writing

    /// Who writes: this dock's name, its key, and the operating-system user.
    public struct Author: Sendable {
        public var dock: String
        public var user: String
        public var key: Ed25519PrivateKey

        public init(dock: String, user: String, key: Ed25519PrivateKey) {
            self.dock = dock
            self.user = user
            self.key = key
        }
    }

    /// Writes `change` as the next commit: reads the head, checks the change
    /// against the registry there (the ledger's rules), writes N+1 with
    /// `If-None-Match: *`; when another commit took N+1 it reads again,
    /// checks again and tries N+2. A change the registry refuses after
    /// another admin's commit is refused naming that commit. A try whose
    /// answer was lost finds its own commit in place: that is success.
    /// `precheck` runs before each try's check, against the registry at the head that try builds on.
    public func commit(_ change: RegistryChange, by author: Author, lockedUntil: Date? = nil,
                       precheck: (() throws -> Void)? = nil) throws -> (record: FleetCommitRecord, outcome: String) {
        var firstHead: Int64?
        for _ in 0..<200 {
            try syncOrThrow()
            guard let state = try ledger.fleetState() else {
                throw UploaderError(.usage, "this dock is not in a fleet: run `uploader fleet init` (the first dock) or `uploader fleet join`")
            }
            let me = author.key.publicKey.fingerprint
            // The fleet's first commit (init) admits its own key; every other needs a member's.
            if state.appliedHash != Ledger.fleetGenesisParent, try !ledger.isFleetMember(fingerprint: me) {
                throw UploaderError(.usage, "this dock is not a fleet member yet: an admin at a member runs `uploader fleet admit \(Ed25519PublicKey.grouped(me))`")
            }
            let number = state.appliedNumber + 1
            try precheck?()
            do {
                try ledger.checkRegistryChange(change, number: number)
            } catch let error as UploaderError {
                // An earlier try of this very change (this dock's key) landed and only its answer was lost:
                // the registry holds what was asked, which is success, not a conflict with itself.
                if let mine = try ledger.fleetCommitHolding(change, signer: me) {
                    return (mine, "already in the registry: this dock wrote it as \(mine.origin), whose answer was lost")
                }
                if let firstHead, let other = try conflicting(with: change, since: firstHead) {
                    throw UploaderError(.usage, "refused: \(other.origin) came first (\(other.summary)): \(error.message)")
                }
                throw error
            }
            if firstHead == nil { firstHead = state.appliedNumber }
            let commit = try FleetCommit(number: number, parent: state.appliedHash, dock: author.dock, user: author.user, change: change, key: author.key)
            let key = FleetKeys.commit(prefix: prefix, number: number)
            let bytes = try commit.encoded()
            // Crash and race tests stop here: checked at `number - 1`, not yet written.
            FailPoints.hit("fleet.before-put")
            if try putOnce(key: key, bytes: bytes, lockedUntil: lockedUntil) == .exists {
                // Ours if a try before this one landed and only its answer was lost: same fields, same signature.
                guard let there = try retrying({ try client.getSmall(key: key) }), let found = try? FleetCommit.decode(there),
                      found.hash == commit.hash, found.signature == commit.signature else { continue }
            }
            let applied = try sync()
            if let mine = applied.commits.first(where: { $0.record.number == number }) {
                return mine
            }
            // Another process of this dock (the daemon) applied it first.
            guard let record = try ledger.fleetCommit(number: number) else {
                throw UploaderError(.ledger, "fleet commit \(number) is in the store but not applied here: run `uploader fleet sync`")
            }
            return (record, "")
        }
        throw UploaderError(.busy, "the fleet registry changed 200 times while this change waited: try again")
    }

    /// A sync before a write: a registry that cannot be read to its end cannot be changed.
    func syncOrThrow() throws {
        if let blocked = try sync().blocked { throw UploaderError(.insecure, "the fleet registry cannot be changed: \(blocked)") }
    }

    /// PUT once, tried again on an answer that did not arrive (the same bytes: a landed first try then reads as ours).
    func putOnce(key: String, bytes: [UInt8], lockedUntil: Date?) throws -> S3Client.WriteOnceOutcome {
        try retrying { try client.putOnce(key: key, bytes: bytes, contentType: "application/json", lockedUntil: lockedUntil) }
    }

    /// One request to the store, tried again while the store's failure is one a retry can fix
    /// (503 SlowDown, a reset), and never past `deadline` (a sync before docking).
    public func retrying<T>(until deadline: Date? = nil, _ request: () throws -> T) throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try request()
            } catch let error as UploaderError where error.isRetryable && attempt < Self.writeRetries.maxAttempts {
                let delay = Self.writeRetries.delay(afterAttempt: attempt, retryAfter: error.retryAfter)
                if let deadline, Date().addingTimeInterval(delay) > deadline { throw error }
                Thread.sleep(forTimeInterval: delay)
            }
        }
    }

    /// A request is tried a few times over about two seconds: an admin is waiting at the prompt.
    static let writeRetries = RetryPolicy(maxAttempts: 4, baseDelay: 0.2, maxDelay: 1)

    /// The latest commit since `head` that touched the same camera (or any, when none did).
    func conflicting(with change: RegistryChange, since head: Int64) throws -> FleetCommitRecord? {
        let since = try ledger.fleetCommits(after: head).filter { $0.status != .bad }
        return since.last { $0.serial != nil && $0.serial == change.serial } ?? since.last
    }

    // MARK: - Membership

    /// `fleet init`: this dock creates the fleet; commit 1 admits its own key.
    public func create(by author: Author, lockedUntil: Date? = nil) throws -> FleetCommitRecord {
        if try retrying({ try client.getSmall(key: FleetKeys.commit(prefix: prefix, number: 1)) }) != nil {
            throw UploaderError(.usage, "the store already holds a fleet under this prefix: run `uploader fleet join` instead")
        }
        try ledger.joinFleet(dock: author.dock, how: "created the fleet")
        return try commit(RegistryChange(kind: .memberAdmit, publicKey: author.key.publicKey.hex, dock: author.dock), by: author, lockedUntil: lockedUntil).record
    }

    /// `fleet join`: writes the join request (the dock's public key) and reads the registry.
    public func requestJoin(by author: Author) throws -> SyncReport {
        try writeJoinRequest(by: author)
        if try ledger.fleetState() == nil { try ledger.joinFleet(dock: author.dock, how: "asked to join (key \(author.key.publicKey.groupedFingerprint))") }
        return try sync()
    }

    /// The join request (this dock's public key) in the store, for an admin at a member to admit.
    public func writeJoinRequest(by author: Author) throws {
        guard try retrying({ try client.getSmall(key: FleetKeys.commit(prefix: prefix, number: 1)) }) != nil else {
            throw UploaderError(.notFound, "the store holds no fleet under this prefix: run `uploader fleet init` at the first dock")
        }
        let request = FleetJoinRequest(dock: author.dock, user: author.user, publicKey: author.key.publicKey)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let key = FleetKeys.joinRequest(prefix: prefix, fingerprint: author.key.publicKey.fingerprint)
        if try retrying({ try client.putOnce(key: key, bytes: Array(try encoder.encode(request)), contentType: "application/json") }) == .exists,
           let there = try retrying({ try client.getSmall(key: key) }), (try? JSONDecoder().decode(FleetJoinRequest.self, from: Data(there)))?.publicKey != request.publicKey {
            throw UploaderError(.insecure, "the store holds another key's join request at \(key): tell an admin")
        }
    }

    /// `fleet admit FINGERPRINT`: a member admits the key of a join request.
    public func admit(fingerprint: String, by author: Author, lockedUntil: Date? = nil) throws -> (record: FleetCommitRecord, outcome: String) {
        guard let bytes = try retrying({ try client.getSmall(key: FleetKeys.joinRequest(prefix: prefix, fingerprint: fingerprint)) }),
              let request = try? JSONDecoder().decode(FleetJoinRequest.self, from: Data(bytes)),
              RegistryChange.fingerprint(publicKeyHex: request.publicKey) == fingerprint else {
            throw UploaderError(.notFound, "no dock asked to join with key \(Ed25519PublicKey.grouped(fingerprint)): run `uploader fleet join` at the new dock and compare the fingerprint it prints")
        }
        return try commit(RegistryChange(kind: .memberAdmit, publicKey: request.publicKey, dock: request.dock), by: author, lockedUntil: lockedUntil)
    }
}
