import Crypto
import Foundation
import Ledger
import Transport
import UploaderCore

/// What `uploader verify-bag` found.
public struct BagVerdict: Sendable, Encodable {
    public var files = 0
    public var bytes: Int64 = 0
    public var events = 0
    public var checkpointEventID: Int64?
    /// The dock the checkpoint names, and the fingerprint of the key that signed it (the bag's own key).
    public var dock: String?
    public var keyFingerprint: String?
    /// What outside the bag vouches for that key (a trusted-keys file, the store).
    public var vouchedBy: [String] = []
    public var problems: [String] = []
    public var valid: Bool { problems.isEmpty }
    /// A signature proves who signed only when something outside the bag vouches for the key.
    public var anchored: Bool { !vouchedBy.isEmpty }

    enum CodingKeys: String, CodingKey { case files, bytes, events, checkpointEventID, dock, keyFingerprint, vouchedBy, problems, valid, anchored }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(files, forKey: .files)
        try container.encode(bytes, forKey: .bytes)
        try container.encode(events, forKey: .events)
        try container.encodeIfPresent(checkpointEventID, forKey: .checkpointEventID)
        try container.encodeIfPresent(dock, forKey: .dock)
        try container.encodeIfPresent(keyFingerprint, forKey: .keyFingerprint)
        try container.encode(vouchedBy, forKey: .vouchedBy)
        try container.encode(problems, forKey: .problems)
        try container.encode(valid, forKey: .valid)
        try container.encode(anchored, forKey: .anchored)
    }
}

/// Something outside the bag that says which keys are a dock's: a bag
/// carries its own key, so its signature alone proves only that whoever
/// made the bag had some key.
public enum BagTrustAnchor {
    /// The fingerprints an agency publishes for its docks (`uploader key fingerprint` prints a dock's).
    case trustedKeys(file: String, fingerprints: Set<String>)
    /// The dock key the store holds (written once by the dock, under Object Lock where the bucket has it).
    case store(S3Client, prefix: String)

    /// Reads a trusted-keys file: one fingerprint a line (64 hex digits, grouped
    /// by spaces or colons or not), `#` starts a comment, blank lines are skipped.
    public static func trustedKeys(file path: String) throws -> BagTrustAnchor {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw UploaderError(.usage, "cannot read the trusted-keys file \(path): give a text file of key fingerprints, one a line")
        }
        var fingerprints = Set<String>()
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let content = (line.firstIndex(of: "#").map { line[..<$0] } ?? line[...]).trimmingCharacters(in: .whitespacesAndNewlines)
            if content.isEmpty { continue }
            guard let fingerprint = Ed25519PublicKey.normalizedFingerprint(content) else {
                throw UploaderError(.usage, "line \(number + 1) of \(path) is not a key fingerprint (64 hex digits, as `uploader key fingerprint` prints them; # starts a comment)")
            }
            fingerprints.insert(fingerprint)
        }
        if fingerprints.isEmpty {
            throw UploaderError(.usage, "the trusted-keys file \(path) lists no key fingerprint: add the ones `uploader key fingerprint` prints on each dock")
        }
        return .trustedKeys(file: path, fingerprints: fingerprints)
    }
}

/// Checks an evidence bag offline, with nothing but the bag: no ledger, no
/// store, no network. BagIt (manifests, Payload-Oxum, tag manifest), then
/// custody: the checkpoint's signature by the enclosed key, the chain from
/// the files' events to the signed head recomputed event by event, and each
/// file's row and hash against the events that recorded them.
public enum BagVerifier {
    public static func verify(_ directory: String) -> BagVerdict {
        var verdict = BagVerdict()
        func read(_ path: String) -> String? { try? String(contentsOfFile: directory + "/" + path, encoding: .utf8) }
        guard let declaration = read("bagit.txt"), declaration.contains("BagIt-Version: 1.0") else {
            verdict.problems.append("bagit.txt is missing or not BagIt 1.0")
            return verdict
        }
        // Payload: both manifests, every file under data/ listed, hashes right.
        var listed: [String: (String, String)] = [:]
        for (algorithm, index) in [("sha256", 0), ("sha512", 1)] {
            guard let manifest = read("manifest-\(algorithm).txt") else {
                verdict.problems.append("manifest-\(algorithm).txt is missing")
                continue
            }
            for line in manifest.split(separator: "\n") {
                guard let space = line.firstIndex(of: " ") else { continue }
                let hash = String(line[..<space]).lowercased()
                let path = line[space...].trimmingCharacters(in: .whitespaces)
                var entry = listed[path] ?? ("", "")
                if index == 0 { entry.0 = hash } else { entry.1 = hash }
                listed[path] = entry
            }
        }
        var payload: [String] = []
        if let enumerator = FileManager.default.enumerator(atPath: directory + "/data") {
            while let path = enumerator.nextObject() as? String {
                var isDirectory: ObjCBool = false
                FileManager.default.fileExists(atPath: directory + "/data/" + path, isDirectory: &isDirectory)
                if !isDirectory.boolValue { payload.append("data/" + path) }
            }
        }
        for path in payload.sorted() {
            guard let expected = listed[path] else {
                verdict.problems.append("\(path) is in the bag but in no manifest")
                continue
            }
            do {
                let actual = try FileHashes.of(directory + "/" + path)
                verdict.files += 1
                verdict.bytes += actual.size
                if actual.sha256 != expected.0 { verdict.problems.append("\(path): SHA-256 \(actual.sha256) is not the manifest's \(expected.0)") }
                if actual.sha512 != expected.1 { verdict.problems.append("\(path): SHA-512 does not match manifest-sha512.txt") }
            } catch {
                verdict.problems.append("\(path) cannot be read: \(error)")
            }
        }
        let present = Set(payload)
        for path in listed.keys.sorted() where !present.contains(path) {
            verdict.problems.append("\(path) is in a manifest but missing from the bag")
        }
        let info = read("bag-info.txt") ?? ""
        if let oxum = info.split(separator: "\n").first(where: { $0.hasPrefix("Payload-Oxum:") }) {
            if oxum.dropFirst("Payload-Oxum:".count).trimmingCharacters(in: .whitespaces) != "\(verdict.bytes).\(verdict.files)" {
                verdict.problems.append("bag-info.txt's \(oxum) does not match the payload (\(verdict.bytes).\(verdict.files))")
            }
        } else {
            verdict.problems.append("bag-info.txt has no Payload-Oxum")
        }
        // Tag files: the tag manifest covers every one of them.
        let tagManifest = read("tagmanifest-sha256.txt") ?? ""
        var tagHashes: [String: String] = [:]
        for line in tagManifest.split(separator: "\n") {
            guard let space = line.firstIndex(of: " ") else { continue }
            tagHashes[line[space...].trimmingCharacters(in: .whitespaces)] = String(line[..<space])
        }
        if tagManifest.isEmpty { verdict.problems.append("tagmanifest-sha256.txt is missing") }
        for path in (try? BagText.tagFiles(in: directory)) ?? [] {
            guard let expected = tagHashes[path] else {
                verdict.problems.append("\(path) is not in tagmanifest-sha256.txt")
                continue
            }
            if (try? FileHashes.of(directory + "/" + path, sha512: false).sha256) != expected {
                verdict.problems.append("\(path) was changed: its SHA-256 is not the tag manifest's")
            }
        }
        checkCustody(directory, listed: listed, into: &verdict)
        return verdict
    }

    /// Checks the bag's signing key against each anchor: every anchor given
    /// must vouch for it, and a key one of them does not know is a problem.
    /// Throws only when an anchor cannot be asked (the store is down).
    public static func anchor(_ verdict: inout BagVerdict, to anchors: [BagTrustAnchor]) throws {
        guard let fingerprint = verdict.keyFingerprint else { return }
        let grouped = Ed25519PublicKey.grouped(fingerprint)
        for anchor in anchors {
            switch anchor {
            case .trustedKeys(let file, let fingerprints):
                if fingerprints.contains(fingerprint) {
                    verdict.vouchedBy.append("listed in \(file)")
                } else {
                    verdict.problems.append("the checkpoint was signed by key \(grouped), which is not in \(file): this bag was not signed by a dock that list vouches for")
                }
            case .store(let client, let prefix):
                let dock = verdict.dock ?? ""
                let objectKey = SignedCheckpoint.publicKeyObjectKey(prefix: prefix, dock: dock)
                guard let pem = try client.getSmall(key: objectKey), let stored = Ed25519PublicKey(pem: String(decoding: pem, as: UTF8.self)) else {
                    verdict.problems.append("the store holds no key for dock \(DisplayText.escaped(dock)) at \(objectKey): no dock of this store signed this bag")
                    continue
                }
                guard stored.fingerprint == fingerprint else {
                    verdict.problems.append("the store holds key \(stored.groupedFingerprint) for dock \(DisplayText.escaped(dock)) at \(objectKey), but the checkpoint was signed by key \(grouped): this bag was not signed by that dock's key")
                    continue
                }
                let head = try client.headObject(key: objectKey)
                let lock = head?.retainUntil.map { "under \(head?.lockMode ?? "Object") Lock until \(Timestamps.iso($0))" }
                    ?? "not under Object Lock: it holds only as long as the store's access control"
                verdict.vouchedBy.append("the store's key for dock \(DisplayText.escaped(dock)) (\(objectKey), \(lock))")
            }
        }
    }

    static func checkCustody(_ directory: String, listed: [String: (String, String)], into verdict: inout BagVerdict) {
        func read(_ path: String) -> String? { try? String(contentsOfFile: directory + "/" + path, encoding: .utf8) }
        guard let pem = read("custody/dock-key.pem"), let key = Ed25519PublicKey(pem: pem) else {
            verdict.problems.append("custody/dock-key.pem is missing or not an Ed25519 public key")
            return
        }
        guard let body = read("custody/checkpoint.json") else {
            verdict.problems.append("custody/checkpoint.json is missing or unreadable")
            return
        }
        guard let signed = try? JSONDecoder().decode(SignedCheckpoint.self, from: Data(body.utf8)), let payload = signed.decodedPayload else {
            verdict.problems.append("custody/checkpoint.json is not a signed checkpoint: it was altered or truncated")
            return
        }
        guard let signature = Data(base64Encoded: signed.signature) else {
            verdict.problems.append("the checkpoint's signature is not base64: it was altered")
            return
        }
        verdict.checkpointEventID = payload.lastEventID
        verdict.dock = payload.dock
        verdict.keyFingerprint = key.fingerprint
        if payload.key != key.fingerprint { verdict.problems.append("the checkpoint names key \(payload.key), the bag carries \(key.fingerprint)") }
        if !key.isValidSignature(Array(signature), for: Array(signed.payload.utf8)) {
            verdict.problems.append("the checkpoint's signature does not match its content: it was altered")
        }
        // The chain: every event's hash recomputed, every link followed, ending at the signed head.
        var lastRowDigest: [Int64: (event: Int64, digest: String, format: ChainFormat)] = [:]
        var verifiedInStore = Set<Int64>()
        var previous: ChainEvent?
        for line in (read("custody/chain.jsonl") ?? "").split(separator: "\n") {
            guard let event = try? JSONDecoder().decode(ChainEvent.self, from: Data(line.utf8)) else {
                verdict.problems.append("custody/chain.jsonl has an unreadable line")
                return
            }
            verdict.events += 1
            if event.recomputedHash != event.hash {
                verdict.problems.append("custody event \(event.id) was altered: its hash does not match its content")
            }
            if let previous, event.id != previous.id + 1 || event.previousHash != previous.hash {
                verdict.problems.append("custody event \(event.id) does not follow event \(previous.id): an event was removed or inserted")
            }
            if let previous, event.hashFormat < previous.hashFormat {
                verdict.problems.append("custody event \(event.id) claims the legacy hash format after framed events: the chain was rewritten")
            }
            if let problem = event.formatProblem(rowDigestsSince: nil) { verdict.problems.append("custody " + problem) }
            if let file = event.fileID, let digest = event.rowDigest { lastRowDigest[file] = (event.id, digest, event.hashFormat) }
            if let file = event.fileID, event.kind == EventKind.uploadVerified.rawValue { verifiedInStore.insert(file) }
            previous = event
        }
        guard let last = previous else {
            verdict.problems.append("custody/chain.jsonl is empty")
            return
        }
        if last.id != payload.lastEventID || last.hash != payload.chainHead {
            verdict.problems.append("the custody chain ends at event \(last.id) (\(last.hash.prefix(16))…), not at the signed head (event \(payload.lastEventID), \(payload.chainHead.prefix(16))…)")
        }
        // Each file: its row as the events recorded it, and its hash as the store verified it.
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory + "/custody/files")) ?? []
        var covered = Set<String>()
        for name in files.sorted() {
            guard let text = read("custody/files/" + name), let custody = try? JSONDecoder().decode(BagFileCustody.self, from: Data(text.utf8)) else {
                verdict.problems.append("custody/files/\(name) is unreadable")
                continue
            }
            covered.insert(custody.payload)
            if listed[custody.payload]?.0 != custody.sha256 {
                verdict.problems.append("\(custody.payload): its custody record's SHA-256 is not the manifest's")
            }
            // Bags written before v12 carry the eleven legacy fields.
            guard custody.rowFields.count == RowDigestField.allCases.count || custody.rowFields.count == RowDigestField.legacyCount else {
                verdict.problems.append("\(custody.payload): its custody record does not hold a ledger row")
                continue
            }
            // The row is what the chain vouches for (below); it must say "verified, with this hash".
            if custody.rowFields[RowDigestField.sha256.rawValue] != custody.sha256 {
                verdict.problems.append("\(custody.payload): the ledger row's SHA-256 is not the payload's")
            }
            if custody.rowFields[RowDigestField.state.rawValue] != FileState.verified.rawValue {
                verdict.problems.append("\(custody.payload): the ledger row is \(custody.rowFields[RowDigestField.state.rawValue]), not verified")
            }
            if let recorded = lastRowDigest[custody.id] {
                if recorded.format == .legacy, ChainFormat.isAmbiguousLegacy(custody.rowFields) {
                    verdict.problems.append("\(custody.payload): its ledger row holds a field separator (U+001F), which a legacy row digest cannot tell from a field boundary")
                } else if Ledger.rowDigest(format: recorded.format, fields: custody.rowFields) != recorded.digest {
                    verdict.problems.append("\(custody.payload): its ledger row is not what event \(recorded.event) recorded")
                }
            } else {
                verdict.problems.append("\(custody.payload): no event in the chain records file #\(custody.id)'s row")
            }
            if !verifiedInStore.contains(custody.id) {
                verdict.problems.append("\(custody.payload): the chain has no upload.verified event for file #\(custody.id)")
            }
        }
        for path in listed.keys.sorted() where !covered.contains(path) {
            verdict.problems.append("\(path) has no custody record in custody/files/")
        }
    }
}
