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

/// A camera whose clock is off: the dock measures the drift from the clock
/// file its model names, records it, and attributes files by the corrected
/// recording time (the camera's own time kept beside it).
extension EmulatedDockTests {
    static let clockModels = """
        [[model]]
        id = "acme-bodycam-x1"
        name = "Acme BodyCam X1"
        usb_ids = ["2b4c:0001"]
        media_folders = ["DCIM"]
        file_patterns = ["*.mp4"]
        clock_file = "SYSTEM/TIME.TXT"
        clock_format = "YYYY-MM-DD hh:mm:ss"
        clock_settable = true
        """

    @Test func aCameraClockAheadIsMeasuredAndRecordingTimesAreCorrectedForAttribution() throws {
        let testbed = try Testbed()
        try testbed.plug(acme)
        let site = try TestSite.docking(models: Self.clockModels)
        let models = try CameraModels.parse(Self.clockModels, path: "m.toml")
        // The camera runs 10 minutes fast: its clock file says so when docked.
        let drift: TimeInterval = 600
        let utc = TimeZone(identifier: "UTC")!
        try FileManager.default.createDirectory(atPath: site.folder.sub("cam/SYSTEM"), withIntermediateDirectories: true)
        // The dock's clock is fixed for the test, so the drift measured is exactly the one written.
        let dockTime = Date(timeIntervalSince1970: 1_795_000_000)
        try (FileNameTime.render(dockTime.addingTimeInterval(drift), pattern: "YYYY-MM-DD hh:mm:ss", timeZone: utc) + "\r\n")
            .write(toFile: site.folder.sub("cam/SYSTEM/TIME.TXT"), atomically: false, encoding: .utf8)
        // Recorded (by the camera's clock) at 22:05; truly at 21:55, before officer-2 took the camera at 22:00.
        let midnight: TimeInterval = 1_794_960_000  // 2026-11-18T00:00:00Z
        let cameraTime = Date(timeIntervalSince1970: midnight + 22 * 3600 + 5 * 60)
        try CameraVolume.writeRecording(at: site.folder.sub("cam/DCIM/VID0001.MP4"), recordedAt: cameraTime, payloadSize: 4096)
        _ = try site.ledger.addDevice(serial: "BWC0001234", defaultUser: "officer-1", name: nil, model: nil)
        _ = try site.ledger.assign(serial: "BWC0001234", user: "officer-2", from: cameraTime.addingTimeInterval(-300), until: nil)

        let runner = try site.runner(models: models, folders: ["/dev/sdb1": site.folder.sub("cam")], now: { dockTime })
        let device = try UdevContext().dockedDevice(devnode: "/dev/sdb1")
        #expect(runner.dock(device).result == .ingested)
        let file = try #require(try site.ledger.files().first)
        #expect(file.cameraRecordedAt == cameraTime)
        #expect(file.recordedAt == cameraTime.addingTimeInterval(-drift))
        #expect(file.user == "officer-1", "attributed by the corrected time, before officer-2's period")
        let clock = try site.ledger.events(EventFilter(minimumLevel: .debug)).filter { $0.kind == .cameraClock }
        #expect(clock.count == 1 && clock[0].message.contains("the camera is 600 s ahead"), "\(clock.map(\.message))")
        _ = testbed
    }

    @Test func aSettableClockIsSetOnlyWhenTheDockMayWriteToTheCamera() throws {
        let testbed = try Testbed()
        try testbed.plug(acme)
        let utc = TimeZone(identifier: "UTC")!
        for policy in ["never", "after-verified"] {
            let site = try TestSite.docking(models: Self.clockModels, docking: "[camera]\nclear = \"\(policy)\"")
            let models = try CameraModels.parse(Self.clockModels, path: "m.toml")
            try FileManager.default.createDirectory(atPath: site.folder.sub("cam/SYSTEM"), withIntermediateDirectories: true)
            try "2020-01-01 00:00:00\r\n".write(toFile: site.folder.sub("cam/SYSTEM/time.txt"), atomically: false, encoding: .utf8)
            try CameraVolume.writeRecording(at: site.folder.sub("cam/DCIM/VID0001.MP4"), recordedAt: Date(), payloadSize: 4096)
            _ = try site.ledger.addDevice(serial: "BWC0001234", defaultUser: "officer-1", name: nil, model: nil)
            let device = try UdevContext().dockedDevice(devnode: "/dev/sdb1")
            #expect(try site.runner(models: models, folders: ["/dev/sdb1": site.folder.sub("cam")]).dock(device).result == .ingested)
            // A clock years off is no drift: recording times stay the camera's.
            #expect(try site.ledger.files().first?.cameraRecordedAt == nil)
            let planPath = Spool(root: try site.configuration().spoolDirectory).clearPlanPath(sysname: "sdb1")
            guard policy == "after-verified" else {
                #expect(!FileManager.default.fileExists(atPath: planPath), "the camera is never written to")
                continue
            }
            // The root step's work, on the folder: the clock file (found whatever its case) gets the dock's time.
            let plan = try #require(SideFile.readJSON(ClearPlan.self, from: planPath))
            #expect(plan.items.isEmpty && plan.setClock?.path == "SYSTEM/TIME.TXT")
            let before = Date()
            let result = CameraClearing.apply(plan, volume: site.folder.sub("cam"), authority: ClearingAuthority(configuration: try site.configuration(), model: models.model(for: device.id)))
            let written = try String(contentsOfFile: site.folder.sub("cam/SYSTEM/time.txt"), encoding: .utf8)
            let time = try #require(FileNameTime.date(in: written, pattern: "YYYY-MM-DD hh:mm:ss", timeZone: utc))
            #expect(abs(time.timeIntervalSince(before)) < 3 && result.clockSet != nil)
            _ = try CameraClearing.record(result, ledger: site.ledger)
            #expect(try site.ledger.events(EventFilter(minimumLevel: .debug)).contains { $0.kind == .cameraClock && $0.message.contains("set camera BWC0001234's clock") })
        }
        _ = testbed
    }
}
