import Crypto
import Foundation
import Ledger
import UploaderCore

/// One commit of the fleet registry: `{prefix}/_fleet/registry/{N, 20 digits}.json`,
/// written once (`If-None-Match: *`). It carries one change, the hash of
/// the commit before it that held, who wrote it (dock, operating-system
/// user, time) and the writing dock's Ed25519 signature.
///
/// The hash and the signature cover a framed digest of every field (not the
/// JSON's bytes), so the JSON's spacing and key order do not matter.
public struct FleetCommit: Codable, Sendable, Equatable {
    public static let formatName = "uploader.fleet-commit/1"

    public var format: String
    public var number: Int64
    /// The hash of the commit before this one that held (64 zeros for the first).
    public var parent: String
    public var dock: String
    public var user: String
    public var at: String
    public var change: RegistryChange
    /// The signing dock's Ed25519 public key, hex.
    public var signer: String
    /// Base64 Ed25519 signature of `hash`'s bytes (its hex text).
    public var signature: String?

    /// Makes and signs a commit.
    public init(number: Int64, parent: String, dock: String, user: String, at: Date = Date(), change: RegistryChange,
                key: Ed25519PrivateKey) throws {
        format = Self.formatName
        self.number = number
        self.parent = parent
        self.dock = dock
        self.user = user
        self.at = Timestamps.iso(at)
        self.change = change
        signer = key.publicKey.hex
        signature = Data(try key.signature(for: Array(hash.utf8))).base64EncodedString()
    }

    /// What the signature covers and the next commit names as its parent.
    public var hash: String {
        ChainFormat.framedDigest(tag: Self.formatName, [format, String(number), parent, dock, user, at] + change.fields + [signer])
    }

    public var signerFingerprint: String? { RegistryChange.fingerprint(publicKeyHex: signer) }

    /// Whether the signature is the signer's over this commit's fields.
    public var signatureHolds: Bool {
        guard let signature, let bytes = Data(base64Encoded: signature), let key = Ed25519PublicKey(hex: signer) else { return false }
        return key.isValidSignature(Array(bytes), for: Array(hash.utf8))
    }

    /// The object's bytes: JSON, keys sorted, one line.
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self)) + [UInt8(ascii: "\n")]
    }

    public static func decode(_ bytes: [UInt8]) throws -> FleetCommit {
        try JSONDecoder().decode(FleetCommit.self, from: Data(bytes))
    }
}

/// Where the fleet lives in the store.
public enum FleetKeys {
    static func folder(prefix: String) -> String { (prefix.isEmpty ? "" : prefix + "/") + "_fleet/" }
    public static func registryFolder(prefix: String) -> String { folder(prefix: prefix) + "registry/" }
    public static func snapshotFolder(prefix: String) -> String { folder(prefix: prefix) + "snapshots/" }
    /// Zero-padded, so the store lists commits in order.
    public static func commit(prefix: String, number: Int64) -> String { numbered(registryFolder(prefix: prefix), number) }
    /// Snapshot N: the registry as commit N left it.
    public static func snapshot(prefix: String, number: Int64) -> String { numbered(snapshotFolder(prefix: prefix), number) }
    static func numbered(_ folder: String, _ number: Int64) -> String { folder + String(format: "%020lld", number) + ".json" }
    public static func joinRequest(prefix: String, fingerprint: String) -> String { folder(prefix: prefix) + "join/" + fingerprint + ".json" }

    /// The number a registry key names; nil for anything else under the folder.
    public static func number(ofKey key: String, prefix: String) -> Int64? { number(ofKey: key, in: registryFolder(prefix: prefix)) }
    /// The number a snapshot key names; nil for anything else under the folder.
    public static func snapshotNumber(ofKey key: String, prefix: String) -> Int64? { number(ofKey: key, in: snapshotFolder(prefix: prefix)) }

    static func number(ofKey key: String, in folder: String) -> Int64? {
        guard key.hasPrefix(folder), key.hasSuffix(".json") else { return nil }
        let digits = key.dropFirst(folder.count).dropLast(5)
        guard digits.count == 20, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int64(digits)
    }
}

/// A dock's request to join, with its public key: an admin at a member
/// admits it by the fingerprint the new dock printed.
public struct FleetJoinRequest: Codable, Sendable, Equatable {
    public var format = "uploader.fleet-join/1"
    public var dock: String
    public var user: String
    public var at: String
    public var publicKey: String

    public init(dock: String, user: String, at: Date = Date(), publicKey: Ed25519PublicKey) {
        self.dock = dock
        self.user = user
        self.at = Timestamps.iso(at)
        self.publicKey = publicKey.hex
    }
}
