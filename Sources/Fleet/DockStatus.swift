import Crypto
import Foundation
import Ledger
import UploaderCore

/// A dock's status in the store: `{prefix}/_fleet/docks/{dock}.json`,
/// rewritten by the dock every minute and after each dock and upload run.
/// Signed by the dock's Ed25519 key over a framed digest of every field (as a
/// fleet commit is), so a reader trusts its figures only when the signature
/// holds and the signer is the fleet member admitted under that dock's name.
public struct DockStatus: Codable, Sendable, Equatable {
    public static let formatName = "uploader.dock-status/1"

    public var format: String
    /// The `uploader` version that wrote it.
    public var version: String
    public var dock: String
    /// The machine's own host name (the dock name is `[agent] host_name`).
    public var host: String
    /// When it was written, by the writing dock's clock (UTC).
    public var at: String
    /// Files per state (count and bytes).
    public var files: [String: StateTotals]
    /// Files not verified yet (spooled, uploading, uploaded, failed).
    public var backlog: StateTotals
    /// The oldest file not verified yet: when it was found, and recorded.
    public var oldestWaitingFoundAt: String?
    public var oldestWaitingRecordedAt: String?
    public var lastVerifiedAt: String?
    public var lastError: String?
    /// Cameras docked now (docked, nothing finished yet).
    public var docked: [String]
    /// Free bytes where the spool is (nil: not known).
    public var spoolFreeBytes: Int64?
    /// The registry commit this dock has applied (nil: not in a fleet).
    public var registryCommit: Int64?
    public var late: LateUploads
    /// How many recordings the companion `{dock}.waiting.json` lists.
    public var waitingListed: Int
    /// The signing dock's Ed25519 public key, hex.
    public var signer: String
    /// Base64 Ed25519 signature of `digest`'s hex text.
    public var signature: String?

    public init(dock: String, host: String, at: Date, figures: DockFigures, spoolFreeBytes: Int64?, waitingListed: Int, key: Ed25519PrivateKey) throws {
        format = Self.formatName
        version = UploaderVersion.current
        self.dock = dock
        self.host = host
        self.at = Timestamps.iso(at)
        files = Dictionary(uniqueKeysWithValues: figures.states.filter { $0.value.count > 0 }.map { ($0.key.rawValue, $0.value) })
        backlog = figures.backlog
        oldestWaitingFoundAt = figures.oldestWaitingDiscoveredAt.map(Timestamps.iso)
        oldestWaitingRecordedAt = figures.oldestWaitingRecordedAt.map(Timestamps.iso)
        lastVerifiedAt = figures.lastVerifiedAt.map(Timestamps.iso)
        lastError = figures.lastError
        docked = figures.docked
        self.spoolFreeBytes = spoolFreeBytes
        registryCommit = figures.registryCommit
        late = figures.late
        self.waitingListed = waitingListed
        signer = key.publicKey.hex
        signature = try FleetSignature.sign(digest, key: key)
    }

    /// What the signature covers: every field, lists sorted and counted.
    public var digest: String {
        var fields: [String?] = [format, version, dock, host, at, signer, registryCommit.map(String.init),
                                 String(backlog.count), String(backlog.bytes), oldestWaitingFoundAt, oldestWaitingRecordedAt,
                                 lastVerifiedAt, lastError, spoolFreeBytes.map(String.init), String(waitingListed)]
        fields += [String(docked.count)] + docked
        fields.append(String(files.count))
        for (state, totals) in files.sorted(by: { $0.key < $1.key }) { fields += [state, String(totals.count), String(totals.bytes)] }
        fields += [String(late.windowDays), String(late.lateAfterHours)] + Self.fields(late.overall)
        fields.append(String(late.officers.count))
        for (officer, count) in late.officers.sorted(by: { $0.key < $1.key }) { fields += [officer] + Self.fields(count) }
        return ChainFormat.framedDigest(tag: Self.formatName, fields)
    }

    static func fields(_ count: LateCount) -> [String?] { [String(count.recordings), String(count.late), String(count.overdue)] }

    public var signatureHolds: Bool { FleetSignature.holds(signature, by: signer, over: digest) }

    public var atDate: Date? { Timestamps.parse(at) }

    public func encoded() throws -> [UInt8] { try FleetSignature.encode(self) }

    public static func decode(_ bytes: [UInt8]) throws -> DockStatus { try JSONDecoder().decode(DockStatus.self, from: Data(bytes)) }
}

/// The companion of a dock's status: `{prefix}/_fleet/docks/{dock}.waiting.json`,
/// the recordings it holds that the store has not verified yet (bounded by
/// the spool), signed like the status, for `uploader fleet find`.
public struct DockWaiting: Codable, Sendable, Equatable {
    public static let formatName = "uploader.dock-waiting/1"
    /// At most this many are listed (a dock with more says so: `truncated`).
    public static let limit = 50_000

    public var format: String
    public var dock: String
    public var at: String
    public var recordings: [WaitingRecording]
    public var truncated: Bool
    public var signer: String
    public var signature: String?

    public init(dock: String, at: Date, recordings: [WaitingRecording], truncated: Bool, key: Ed25519PrivateKey) throws {
        format = Self.formatName
        self.dock = dock
        self.at = Timestamps.iso(at)
        self.recordings = recordings
        self.truncated = truncated
        signer = key.publicKey.hex
        signature = try FleetSignature.sign(digest, key: key)
    }

    public var digest: String {
        ChainFormat.framedDigest(tag: Self.formatName, [format, dock, at, signer, truncated ? "truncated" : "whole", String(recordings.count)]
                                 + recordings.flatMap(\.fields))
    }

    public var signatureHolds: Bool { FleetSignature.holds(signature, by: signer, over: digest) }

    public func encoded() throws -> [UInt8] { try FleetSignature.encode(self) }

    public static func decode(_ bytes: [UInt8]) throws -> DockWaiting { try JSONDecoder().decode(DockWaiting.self, from: Data(bytes)) }
}

/// Signing and checking the fleet's status objects (as commits are signed).
public enum FleetSignature {
    public static func sign(_ digest: String, key: Ed25519PrivateKey) throws -> String {
        Data(try key.signature(for: Array(digest.utf8))).base64EncodedString()
    }

    public static func holds(_ signature: String?, by signer: String, over digest: String) -> Bool {
        guard let signature, let bytes = Data(base64Encoded: signature), let key = Ed25519PublicKey(hex: signer) else { return false }
        return key.isValidSignature(Array(bytes), for: Array(digest.utf8))
    }

    /// JSON, keys sorted, one line.
    static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value)) + [UInt8(ascii: "\n")]
    }
}

extension FleetKeys {
    public static func docksFolder(prefix: String) -> String { folder(prefix: prefix) + "docks/" }
    public static func dockStatus(prefix: String, dock: String) -> String { docksFolder(prefix: prefix) + dock + ".json" }
    public static func dockWaiting(prefix: String, dock: String) -> String { docksFolder(prefix: prefix) + dock + ".waiting.json" }
    /// The dock a status key names (nil: a companion or anything else).
    public static func dock(ofStatusKey key: String, prefix: String) -> String? {
        let folder = docksFolder(prefix: prefix)
        guard key.hasPrefix(folder), key.hasSuffix(".json"), !key.hasSuffix(".waiting.json") else { return nil }
        let name = String(key.dropFirst(folder.count).dropLast(5))
        return name.isEmpty || name.contains("/") ? nil : name
    }
}
