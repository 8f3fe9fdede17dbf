import Foundation
import Logging
import SystemPackage
import Testing
import TestSupport
import UploaderCore
@testable import Agent
@testable import Ledger
import Platform

/// The re-read after fsync is the proof that the spool copy on disk is the
/// camera read: a byte changed on disk between the fsync and the re-read must
/// keep the file from being trusted, sealed or in the clear, in a file of one
/// part or of several. The byte is changed by a fail point in a real `uploader ingest`.
@Suite struct RereadAfterSyncTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var sealed: Bool
        var payload: Int
        var testDescription: String { "\(sealed ? "sealed" : "clear") copy of \(payload >> 20 > 0 ? "\(payload >> 20) MiB" : "\(payload) bytes")" }
    }

    @Test(arguments: [Case(sealed: true, payload: 12 << 20), Case(sealed: true, payload: 100_000),
                      Case(sealed: false, payload: 12 << 20), Case(sealed: false, payload: 100_000)])
    func aByteChangedOnDiskAfterFsyncKeepsTheFileFromBeingTrusted(_ example: Case) throws {
        let fixture = try TestSite.make("ingest") { $0.extra = example.sealed ? "" : "[spool]\nencryption = false" }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let camera = try CameraVolume.writeRecording(at: fixture.camera + "/DCIM/VID0001.MP4", recordedAt: Date(), payloadSize: Int64(example.payload), seed: 7)

        // A byte in the second half (the last part of a 12 MiB file in 5 MiB parts) changes on disk.
        // The fail point flips one bit at nine tenths of the fsynced copy, just before it is read back.
        let damaged = try UploaderProcess.run(["ingest", fixture.camera, "--serial", "BWC-1"], config: fixture.configPath,
                                              environment: ["UPLOADER_FAILPOINTS": "ingest.before-reread=flip-byte"])
        #expect(damaged.killedBySignal == nil, "\(damaged.stderr)")
        let failed = try #require(try fixture.ledger.files().first)
        #expect(failed.state == .failed && failed.spoolName == nil && failed.sha256 == nil)
        #expect(failed.lastError?.contains("read back differently") == true, "\(failed.lastError ?? "no error")")
        #expect(CameraVolume.evidenceFiles(inSpool: fixture.spool).isEmpty, "nothing half-checked stays in the spool")

        // The next run copies it again, and this time the re-read holds.
        let again = try fixture.ingest()
        #expect(again.copied == 1 && again.failed == 0)
        let spooled = try #require(try fixture.ledger.files().first)
        #expect(spooled.state == .spooled && spooled.sha256 == camera.hex)
        #expect(try fixture.spoolCopySHA256(name: spooled.spoolName!, keyID: spooled.spoolKeyID).hex == camera.hex)
        #expect((spooled.spoolKeyID != nil) == example.sealed)
    }
}
