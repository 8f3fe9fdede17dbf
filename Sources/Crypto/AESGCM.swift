internal import COpenSSL
import Foundation
import UploaderCore

/// Random bytes from OpenSSL's CSPRNG (keys, salts).
public enum SecureRandom {
    public static func bytes(_ count: Int) throws -> [UInt8] {
        OpenSSLLibrary.prepare()
        var bytes = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&bytes, Int32(count)) == 1 else { throw UploaderError.crypto("RAND_bytes") }
        return bytes
    }
}

/// HMAC-SHA-256 (one shot): derives each spool file's own key from the spool key.
public enum HMACSHA256 {
    public static func mac(key: [UInt8], data: [UInt8]) -> [UInt8] {
        OpenSSLLibrary.prepare()
        var output = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        guard HMAC(EVP_sha256(), key, Int32(key.count), data, data.count, &output, &length) != nil, length == 32 else {
            fatalError("HMAC-SHA-256 failed: OpenSSL is unusable")
        }
        return output
    }
}

/// AES-256-GCM with a 96-bit nonce and a 128-bit tag, one EVP context reused
/// for every chunk of a file. Not Sendable: one belongs to one stream.
public final class AES256GCM {
    public static let keySize = 32
    public static let nonceSize = 12
    public static let tagSize = 16
    private let context: OpaquePointer
    private let key: [UInt8]

    public init(key: [UInt8]) {
        precondition(key.count == Self.keySize, "an AES-256 key is 32 bytes")
        OpenSSLLibrary.prepare()
        guard let context = EVP_CIPHER_CTX_new() else { fatalError("EVP_CIPHER_CTX_new failed: out of memory") }
        self.context = context
        self.key = key
    }

    deinit {
        EVP_CIPHER_CTX_free(context)
    }

    /// Encrypts `plaintext` into `output` (at least plaintext + 16 bytes):
    /// the ciphertext, then the tag. Returns the bytes written.
    public func seal(_ plaintext: UnsafeRawBufferPointer, nonce: [UInt8], aad: [UInt8], into output: UnsafeMutableRawBufferPointer) -> Int {
        precondition(nonce.count == Self.nonceSize && output.count >= plaintext.count + Self.tagSize)
        let out = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var length: Int32 = 0
        guard EVP_EncryptInit_ex(context, EVP_aes_256_gcm(), nil, key, nonce) == 1,
              EVP_EncryptUpdate(context, nil, &length, aad, Int32(aad.count)) == 1 else { fatalError("AES-256-GCM init failed") }
        var written = 0
        if plaintext.count > 0 {
            guard EVP_EncryptUpdate(context, out, &length, plaintext.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(plaintext.count)) == 1 else {
                fatalError("AES-256-GCM encrypt failed")
            }
            written = Int(length)
        }
        guard EVP_EncryptFinal_ex(context, out + written, &length) == 1 else { fatalError("AES-256-GCM final failed") }
        written += Int(length)
        guard uploader_gcm_get_tag(context, out + written, Int32(Self.tagSize)) == 1 else { fatalError("AES-256-GCM tag failed") }
        return written + Self.tagSize
    }

    /// Decrypts `sealed` (ciphertext then tag) into `output` and checks the
    /// tag. Returns the plaintext length, or nil when the bytes, the nonce or
    /// the associated data are not what was sealed.
    public func open(_ sealed: UnsafeRawBufferPointer, nonce: [UInt8], aad: [UInt8], into output: UnsafeMutableRawBufferPointer) -> Int? {
        precondition(nonce.count == Self.nonceSize)
        guard sealed.count >= Self.tagSize, output.count >= sealed.count - Self.tagSize else { return nil }
        let cipherCount = sealed.count - Self.tagSize
        let input = sealed.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let out = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var length: Int32 = 0
        guard EVP_DecryptInit_ex(context, EVP_aes_256_gcm(), nil, key, nonce) == 1,
              EVP_DecryptUpdate(context, nil, &length, aad, Int32(aad.count)) == 1 else { fatalError("AES-256-GCM init failed") }
        var written = 0
        if cipherCount > 0 {
            guard EVP_DecryptUpdate(context, out, &length, input, Int32(cipherCount)) == 1 else { return nil }
            written = Int(length)
        }
        var tag = Array(UnsafeBufferPointer(start: input + cipherCount, count: Self.tagSize))
        guard uploader_gcm_set_tag(context, &tag, Int32(Self.tagSize)) == 1,
              EVP_DecryptFinal_ex(context, out + written, &length) == 1 else { return nil }
        return written + Int(length)
    }
}
