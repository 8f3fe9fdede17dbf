import Testing
@testable import Crypto

/// One hex codec for digests, keys and keyrings: what it writes it reads back,
/// and a key is exactly 32 bytes of hex (a digest's length is no longer what lets it through).
@Suite struct HexTests {
    @Test func bytesRoundTripInLowercase() {
        let bytes: [UInt8] = [0x00, 0x0f, 0xa5, 0xff]
        #expect(Hex.encode(bytes) == "000fa5ff")
        #expect(Hex.decode("000FA5ff") == bytes)
        #expect(Hex.decode("") == [])
    }

    @Test func anythingButPairsOfHexDigitsIsRefused() {
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
        #expect(Hex.decode("0 ") == nil)
    }

    @Test func aPublicKeyIsExactly32BytesOfHex() throws {
        let key = try Ed25519PrivateKey().publicKey
        #expect(Ed25519PublicKey(hex: key.hex) == key)
        #expect(Ed25519PublicKey(hex: String(key.hex.dropLast(2))) == nil)
        #expect(Ed25519PublicKey(hex: key.hex + "00") == nil)
        #expect(SHA256Digest(hex: key.hex)?.hex == key.hex)
    }
}
