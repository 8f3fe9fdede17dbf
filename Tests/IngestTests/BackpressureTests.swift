import Foundation
import Logging
import Spool
import Synchronization
import Testing
import TestSupport
import UploaderCore
@testable import Ingest
@testable import Agent
@testable import Ledger
import Platform

@Suite struct BackpressureTests {
    /// A disk whose use the test sets, for the watermark logic.
    final class PlayedDisk: Sendable {
        let used = Mutex<Double>(0)
        var probe: @Sendable () -> (available: Int64, total: Int64)? {
            { [self] in
                let percent = used.withLock { $0 }
                return (Int64((100 - percent) * 1_000_000), 100_000_000)
            }
        }
    }

    @Test func aboveTheHighWatermarkFilesStayOnTheCameraUntilUseFallsBelowTheLow() throws {
        let fixture = try TestSite.make("ingest")
        for index in 0..<3 {
            try CameraVolume.writeRecording(at: fixture.camera + "/VID\(index).MP4", recordedAt: Date(), payloadSize: 1000, seed: UInt64(index))
        }
        let disk = PlayedDisk()
        var ingestor = try Ingestor(configuration: fixture.configuration(), ledger: fixture.ledger, logger: Logger(label: "t"))
        ingestor.pressure = SpoolPressure(spool: Spool(root: try fixture.configuration().spoolDirectory), highPercent: 90, lowPercent: 80, probe: disk.probe)

        disk.used.withLock { $0 = 95 }
        let full = try ingestor.ingest(volume: fixture.camera, serial: "BWC-1")
        #expect(full.copied == 0 && full.leftOnCamera == 3)
        #expect(full.stoppedBecause?.contains("high watermark 90%") == true)
        #expect(try fixture.ledger.events(EventFilter(minimumLevel: .warning)).contains { $0.kind == .spoolFull })

        // Some space back, but not below the low watermark: still holding.
        disk.used.withLock { $0 = 85 }
        #expect(try ingestor.ingest(volume: fixture.camera, serial: "BWC-1").copied == 0)
        #expect(ingestor.pressure.isHolding)

        disk.used.withLock { $0 = 70 }
        let resumed = try ingestor.ingest(volume: fixture.camera, serial: "BWC-1")
        #expect(resumed.copied == 3 && resumed.stoppedBecause == nil)
        #expect(!ingestor.pressure.isHolding)
    }

    @Test func onlyVerifiedCopiesOlderThanTheRetentionArePurged() throws {
        let fixture = try TestSite.make("ingest")
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "o", name: nil, model: nil)
        for index in 0..<2 {
            try CameraVolume.writeRecording(at: fixture.camera + "/VID\(index).MP4", recordedAt: Date(), payloadSize: 1000, seed: UInt64(index))
        }
        _ = try fixture.ingest()
        let files = try fixture.ledger.files()
        // The first one is verified (as the upload path records it), the second is not.
        let owner = ProcessIdentity.newOwner("test")
        _ = try #require(try fixture.ledger.claimForUpload(files[0].id, owner: owner))
        _ = try fixture.ledger.beginUpload(files[0].id, objectKey: "k0", owner: owner)
        try fixture.ledger.markUploaded(files[0].id, owner: owner)
        try fixture.ledger.markVerified(files[0].id, storeChecksum: "x", owner: owner)
        var configuration = try fixture.configuration()
        configuration.ingest.keepVerifiedDays = 7
        let purger = SpoolPurger(configuration: configuration, ledger: try fixture.ledger)
        #expect(try purger.purge().files == 0)
        let later = try purger.purge(now: Date().addingTimeInterval(8 * 86400))
        #expect(later.files == 1)
        #expect(!FileManager.default.fileExists(atPath: fixture.spool + "/objects/" + files[0].spoolName!))
        #expect(FileManager.default.fileExists(atPath: fixture.spool + "/objects/" + files[1].spoolName!))
        #expect(try fixture.ledger.file(files[0].id)?.spoolPurgedAt != nil)
        // Re-docking does not copy a purged file again: it is verified in the store.
        #expect(try fixture.ingest().copied == 0)
    }
}
