import Foundation

/// What a dock signs about its custody log: "my log, up to event N, has
/// head hash H". Once a checkpoint is in the store (write-once, locked where
/// the bucket allows), the local log can no longer be truncated or
/// re-chained before N without `uploader verify` noticing.
public struct CheckpointPayload: Codable, Sendable, Equatable {
    public static let formatName = "uploader-checkpoint-v1"
    public var format: String
    /// The dock's name ([agent] host_name).
    public var dock: String
    /// SHA-256 of the dock's raw Ed25519 public key.
    public var key: String
    public var lastEventID: Int64
    /// The hash of event `lastEventID`: the head of the chain it covers.
    public var chainHead: String
    public var events: Int64
    public var files: Int64
    /// ISO 8601, UTC.
    public var at: String

    public init(dock: String, key: String, lastEventID: Int64, chainHead: String, events: Int64, files: Int64, at: String) {
        format = Self.formatName
        self.dock = dock
        self.key = key
        self.lastEventID = lastEventID
        self.chainHead = chainHead
        self.events = events
        self.files = files
        self.at = at
    }

    /// The exact bytes that are signed: compact JSON with sorted keys.
    public func canonicalBytes() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array((try? encoder.encode(self)) ?? Data())
    }
}

/// A checkpoint as stored: the signed bytes as a string (so anyone can
/// check the signature over exactly them with `openssl pkeyutl -verify`)
/// and the signature in base64.
public struct SignedCheckpoint: Codable, Sendable, Equatable {
    public var payload: String
    public var signature: String

    public init(payload: String, signature: String) {
        self.payload = payload
        self.signature = signature
    }

    public var decodedPayload: CheckpointPayload? {
        try? JSONDecoder().decode(CheckpointPayload.self, from: Data(payload.utf8))
    }

    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted]
        return Array((try? encoder.encode(self)) ?? Data()) + [UInt8(ascii: "\n")]
    }

    /// Where checkpoints of `dock` live in the store.
    public static func folder(prefix: String, dock: String) -> String {
        (prefix.isEmpty ? "" : prefix + "/") + "_custody/" + ObjectKeyTemplate.sanitize(dock)
    }

    /// Zero-padded, so the store lists checkpoints in event order.
    public static func objectKey(prefix: String, dock: String, eventID: Int64) -> String {
        folder(prefix: prefix, dock: dock) + "/" + String(format: "%012lld", eventID) + ".json"
    }

    public static func publicKeyObjectKey(prefix: String, dock: String) -> String {
        folder(prefix: prefix, dock: dock) + "/dock-key.pem"
    }
}
