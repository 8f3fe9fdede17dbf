import Crypto
import Foundation
import Logging
import Spool
import Testing
import TestSupport
import UploaderCore
@testable import Dock
@testable import Agent
@testable import Ledger
import Platform

/// Same-dock clearing: a camera still docked when its files are verified is
/// docked again once (by the daemon), not at every minute's check.
extension EmulatedDockTests {
    @Test func aStillDockedCameraWhoseFilesWereVerifiedIsDockedAgainOnce() throws {
        let testbed = try Testbed()
        try testbed.plug(acme)
        let site = try TestSite.docking(docking: "[camera]\nclear = \"after-verified\"")
        _ = try site.ledger.addDevice(serial: "BWC0001234", defaultUser: "officer-1", name: nil, model: nil)
        var listed = 0
        let volumes = { () throws -> [DockedDevice] in listed += 1; return try UdevContext().connectedVolumes() }
        let redock = RedockForClearing(startedAt: Date().addingTimeInterval(-60))
        #expect(redock.camerasToRedock(volumes, models: Self.models, configuration: try site.configuration(), ledger: try site.ledger).isEmpty)
        #expect(listed == 0, "udev is not asked while nothing was verified")
        // A file of that camera verified in the store (through the ledger's own transitions).
        let row = try site.ledger.discover(serial: "BWC0001234", sourcePath: "DCIM/VID0001.MP4", size: 1, modifiedNanoseconds: 1).file
        _ = try #require(try site.ledger.markCopying(row.id))
        let hash = SHA256Digest(bytes: Array(repeating: 0xcc, count: 32))
        _ = try site.ledger.markSpooled(row.id, copy: SpooledCopy(sha256: hash, spoolName: "1.mp4", partSize: 5 << 20, partHashes: [hash],
                                                                  recordedAt: Date(), recordedAtSource: .fileModificationTime))
        let owner = ProcessIdentity.newOwner("test")
        _ = try #require(try site.ledger.claimForUpload(row.id, owner: owner))
        _ = try site.ledger.beginUpload(row.id, objectKey: "pd/VID0001.MP4", owner: owner)
        try site.ledger.markUploaded(row.id, owner: owner)
        try site.ledger.markVerified(row.id, storeChecksum: "x", owner: owner)
        let due = redock.camerasToRedock(volumes, models: Self.models, configuration: try site.configuration(), ledger: try site.ledger)
        #expect(due.map(\.serial) == ["BWC0001234"] && due.first?.device.devnode == "/dev/sdb1" && due.first?.files == 1)
        // The next minute's look, nothing newly verified (the file may have been kept on the camera): no second dock.
        #expect(redock.camerasToRedock(volumes, models: Self.models, configuration: try site.configuration(), ledger: try site.ledger).isEmpty)
        #expect(listed == 1)
        // With the policy off, never, and udev is not asked.
        let never = try TestSite.docking()
        #expect(RedockForClearing(startedAt: .distantPast).camerasToRedock(volumes, models: Self.models, configuration: try never.configuration(), ledger: try site.ledger).isEmpty)
        #expect(listed == 1)
        _ = testbed
    }
}
