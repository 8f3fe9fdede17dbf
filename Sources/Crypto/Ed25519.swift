internal import COpenSSL
import Foundation
import UploaderCore

/// An Ed25519 key pair through OpenSSL's EVP interface: the dock's signing
/// key for custody checkpoints. Keys travel as raw 32-byte values (hex in
/// the key file) and, for anyone verifying with standard tools, as PEM
/// (SubjectPublicKeyInfo: `openssl pkeyutl -verify -pubin -inkey dock.pem
/// -rawin -in PAYLOAD -sigfile SIGNATURE`).
public final class Ed25519PrivateKey: @unchecked Sendable {
    private let key: OpaquePointer

    /// A new random key.
    public init() throws {
        OpenSSLLibrary.prepare()
        guard let context = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nil) else { throw UploaderError.crypto("EVP_PKEY_CTX_new_id(ED25519)") }
        defer { EVP_PKEY_CTX_free(context) }
        var made: OpaquePointer?
        guard EVP_PKEY_keygen_init(context) == 1, EVP_PKEY_keygen(context, &made) == 1, let made else {
            throw UploaderError.crypto("Ed25519 key generation")
        }
        key = made
    }

    /// The key whose 32 raw private bytes these are.
    public init(rawRepresentation bytes: [UInt8]) throws {
        OpenSSLLibrary.prepare()
        guard bytes.count == 32, let made = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, bytes, bytes.count) else {
            throw UploaderError.crypto("not a 32-byte Ed25519 private key")
        }
        key = made
    }

    deinit {
        EVP_PKEY_free(key)
    }

    public var rawRepresentation: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 32)
        var length = 32
        EVP_PKEY_get_raw_private_key(key, &bytes, &length)
        return bytes
    }

    public var publicKey: Ed25519PublicKey {
        var bytes = [UInt8](repeating: 0, count: 32)
        var length = 32
        EVP_PKEY_get_raw_public_key(key, &bytes, &length)
        return Ed25519PublicKey(rawRepresentation: bytes)
    }

    public func signature(for message: [UInt8]) throws -> [UInt8] {
        guard let context = EVP_MD_CTX_new() else { throw UploaderError.crypto("EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(context) }
        var signature = [UInt8](repeating: 0, count: 64)
        var length = 64
        guard EVP_DigestSignInit(context, nil, nil, nil, key) == 1,
              EVP_DigestSign(context, &signature, &length, message, message.count) == 1, length == 64 else {
            throw UploaderError.crypto("Ed25519 signing")
        }
        return signature
    }
}

public struct Ed25519PublicKey: Sendable, Equatable {
    public let rawRepresentation: [UInt8]

    public init(rawRepresentation: [UInt8]) {
        self.rawRepresentation = rawRepresentation
    }

    /// The key written as 64 hex digits (fleet commits, join requests); nil if it is not 32 bytes of hex.
    public init?(hex: String) {
        guard let bytes = Hex.decode(hex), bytes.count == 32 else { return nil }
        rawRepresentation = bytes
    }

    /// The raw key in lowercase hex.
    public var hex: String { Hex.encode(rawRepresentation) }

    /// SHA-256 of the raw key, hex: how checkpoints name the key that signed them.
    public var fingerprint: String { SHA256Hasher.hash(rawRepresentation).hex }

    /// The fingerprint as people read it aloud and compare it: groups of four hex digits.
    public var groupedFingerprint: String { Self.grouped(fingerprint) }

    public static func grouped(_ fingerprint: String) -> String {
        stride(from: 0, to: fingerprint.count, by: 4).map { start in
            let from = fingerprint.index(fingerprint.startIndex, offsetBy: start)
            return String(fingerprint[from..<(fingerprint.index(from, offsetBy: 4, limitedBy: fingerprint.endIndex) ?? fingerprint.endIndex)])
        }.joined(separator: " ")
    }

    /// A fingerprint as someone wrote it down (grouped by spaces or colons,
    /// either case), as `fingerprint` spells it; nil if it is not 64 hex digits.
    public static func normalizedFingerprint(_ text: String) -> String? {
        let hex = text.lowercased().filter { $0 != " " && $0 != ":" && $0 != "\t" }
        guard hex.count == 64, hex.allSatisfy({ $0.isHexDigit && $0.isASCII }) else { return nil }
        return hex
    }

    public func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        OpenSSLLibrary.prepare()
        guard signature.count == 64, rawRepresentation.count == 32,
              let key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, rawRepresentation, 32) else { return false }
        defer { EVP_PKEY_free(key) }
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        return EVP_DigestVerifyInit(context, nil, nil, nil, key) == 1
            && EVP_DigestVerify(context, signature, signature.count, message, message.count) == 1
    }

    /// PEM (SubjectPublicKeyInfo), as `openssl` reads it.
    public var pem: String {
        OpenSSLLibrary.prepare()
        guard let key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, rawRepresentation, 32),
              let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { EVP_PKEY_free(key); BIO_free(bio) }
        guard PEM_write_bio_PUBKEY(bio, key) == 1 else { return "" }
        var pointer: UnsafeMutablePointer<CChar>?
        let length = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &pointer)
        guard let pointer, length > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: Int(length)), as: UTF8.self)
    }

    /// Reads a PEM public key (as `pem` writes it).
    public init?(pem text: String) {
        OpenSSLLibrary.prepare()
        // BIO_new_mem_buf does not copy: everything happens while the bytes live.
        let raw: [UInt8]? = Array(text.utf8).withUnsafeBytes { buffer in
            guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else { return nil }
            defer { BIO_free(bio) }
            guard let key = PEM_read_bio_PUBKEY(bio, nil, nil, nil) else { return nil }
            defer { EVP_PKEY_free(key) }
            var raw = [UInt8](repeating: 0, count: 32)
            var length = 32
            guard EVP_PKEY_get_raw_public_key(key, &raw, &length) == 1, length == 32 else { return nil }
            return raw
        }
        guard let raw else { return nil }
        rawRepresentation = raw
    }
}

extension UploaderError {
    /// An OpenSSL operation that failed: the agent cannot go on safely without it.
    static func crypto(_ what: String) -> UploaderError {
        UploaderError(.crypto, "OpenSSL: \(what) failed", underlying: .crypto(what))
    }
}
