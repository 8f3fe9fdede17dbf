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
import SystemPackage

extension EmulatedDockTests {
    /// A camera that numbers its files: a number missing between two files
    /// seen is a custody warning and an alert, each once.
    @Test func aMissingFileNumberIsRecordedAndAlertedOnce() throws {
        let testbed = try Testbed()
        try testbed.plug(acme)
        let site = try TestSite.docking()
        for number in [1, 2, 4] {
            try CameraVolume.writeRecording(at: site.folder.sub("one/DCIM/VID000\(number).MP4"), recordedAt: Date(), payloadSize: 4096, seed: UInt64(number))
        }
        let runner = try site.runner(models: Self.models, folders: ["/dev/sdb1": site.folder.sub("one")])
        let device = try UdevContext().dockedDevice(devnode: "/dev/sdb1")
        #expect(runner.dock(device).result == .ingested)
        let gaps = { try site.ledger.events(EventFilter(minimumLevel: .debug)).filter { $0.kind == .custodyGap } }
        #expect(try gaps().map(\.message) == ["VID0003 missing between VID0002 and VID0004 on camera BWC0001234: the camera may have deleted it before docking"])
        let dispatcher = AlertDispatcher(configuration: try site.configuration(), ledger: try site.ledger, logger: Logger(label: "test"))
        #expect(try dispatcher.run(send: false).map(\.key).contains("gap-BWC0001234-3"))
        try dispatcher.run()
        // Docked again, and a day later: neither a second warning nor a second alert.
        #expect(runner.dock(device).result == .ingested)
        #expect(try gaps().count == 1)
        #expect(try !dispatcher.run(now: Date().addingTimeInterval(86400), send: false).map(\.key).contains("gap-BWC0001234-3"))
        _ = testbed
    }

    @Test func fileNumberPatternsReadTheCamerasNumbering() throws {
        let pattern = try #require(FileNumberPattern("VID####"))
        #expect(pattern.number(inPath: "DCIM/100BWC/vid0042.mp4") == 42)
        #expect(pattern.number(inPath: "DCIM/100BWC/VID042.MP4") == nil)
        #expect(pattern.number(inPath: "DCIM/100BWC/IMG0042.JPG") == nil)
        #expect(pattern.name(7) == "VID0007")
        #expect(FileNumberPattern("VID") == nil && FileNumberPattern("V#D#") == nil)
        #expect(throws: UploaderError.self) {
            try CameraModels.parse("[[model]]\nid = \"x\"\nusb_ids = [\"1111:2222\"]\nfile_number = \"VID\"\n", path: "m.toml")
        }
    }
}
