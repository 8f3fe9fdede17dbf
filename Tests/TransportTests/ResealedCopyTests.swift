import Foundation
import SystemPackage
import Testing
import TestSupport
import UploaderCore
import Crypto
@testable import Agent
@testable import Ledger
import Platform
import Spool

/// The upload hashes a sealed copy's body only where the store does not check
/// checksums: an insider who holds the keyring and re-seals a changed copy
/// gets past AES-GCM, and must then be stopped by the store's checksum (or,
/// where the store checks none, by the upload's own hash).
@Suite(.tags(.store)) struct ResealedCopyTests {
    @Test(arguments: [Int64(200_000), Int64(11 << 20)])
    func aCopyResealedWithTheKeyringByAnInsiderNeverBecomesEvidence(payload: Int64) throws {
        let fixture = try TestSite.make("resealed") { $0.store() }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        try CameraVolume.writeRecording(at: fixture.camera + "/A.MP4", recordedAt: Date(), payloadSize: payload, seed: 9)
        try fixture.ingest()
        let file = try #require(try fixture.ledger.files().first)
        let keyID = try #require(file.spoolKeyID)
        let keyring = try #require(try SpoolKeyring.existing(path: fixture.spoolKeyring))
        let key = try #require(keyring.key(id: keyID))

        // Open the copy, change one byte of the recording, seal it again with the same key.
        let path = fixture.spool + "/objects/" + file.spoolName!
        let (reader, readFD) = try SpoolCopyReader.open(path, keyID: keyID, keyring: keyring)
        var plaintext = [UInt8](repeating: 0, count: Int(file.sourceSize))
        var offset = 0
        while offset < plaintext.count {
            let got = try plaintext.withUnsafeMutableBytes { try reader.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[offset...]), at: Int64(offset)) }
            #expect(got > 0)
            offset += got
        }
        try readFD.close()
        plaintext[plaintext.count - 100] ^= 0xFF
        let output = try FileDescriptor.open(FilePath(path), .writeOnly, options: [.truncate])
        let writer = try SpoolCopyWriter(fd: output, plaintextSize: file.sourceSize, key: key)
        try plaintext.withUnsafeBytes { try writer.write($0) }
        try writer.finish()
        try output.close()
        #expect(try fixture.spoolCopySHA256(name: file.spoolName!, keyID: keyID).hex != file.sha256, "the forged copy opens")

        let report = try fixture.upload()
        #expect(report.verified == 0 && report.failed == 1)
        let row = try #require(try fixture.ledger.files().first)
        #expect(row.state == .quarantined && row.holdReason == .spoolCorrupted, "\(row.state) \(row.lastError ?? "")")
        #expect(try fixture.storedKeys().isEmpty)
    }
}
