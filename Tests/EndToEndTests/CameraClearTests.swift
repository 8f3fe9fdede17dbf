import Foundation
import GRDB
import Ledger
import Testing
import TestSupport
import UploaderCore
import Agent

/// Giving cameras back empty: only files the store verified, still the same
/// on the camera, ever leave it; every deletion is a custody event.
@Suite struct CameraClearTests {
    struct Site {
        let folder = TemporaryDirectory("uploader-clear")
        let store: TestStore
        let site: TestSite
        var camera: String { folder.sub("cam") }

        /// A camera of `files` recordings, registered and ingested.
        init(files: Int) throws {
            store = try TestStore.fromEnvironment()
            site = try TestSite.withStore(store, area: try store.makeArea("clear"), root: folder.sub("site"), extra: "[camera]\nclear = \"after-verified\"")
            try run(["simulate-camera", camera, "--files", "\(files)", "--size", "1MiB"])
            try run(["device", "add", "BWC-5", "--user", "officer-5"])
            try run(["ingest", camera, "--serial", "BWC-5"])
        }

        @discardableResult
        func run(_ arguments: [String], expecting status: Int32 = 0) throws -> UploaderProcess.Result {
            let result = try UploaderProcess.run(arguments, config: site.configPath)
            #expect(result.status == status, "\(arguments): \(result.stdout)\(result.stderr)")
            return result
        }

        func onCamera() -> [String] { CameraVolume.files(under: camera).map { ($0 as NSString).lastPathComponent }.sorted() }
        func ledger() throws -> Ledger { try Ledger(path: site.ledgerPath) }
    }

    @Test func onlyVerifiedFilesStillUnchangedOnTheCameraAreDeleted() throws {
        let site = try Site(files: 4)
        // #1 and #2 verified; #3 verified, then rewritten on the camera (same size and time, other bytes); #4 only spooled.
        try site.run(["upload", "--now", "#1", "#2", "#3"])
        let third = try #require(try site.ledger().file(3))
        let path = site.camera + "/" + third.sourcePath
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 10] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.modificationDate: attributes[.modificationDate]!], ofItemAtPath: path)

        let dryRun = try site.run(["camera", "clear", "BWC-5", "--volume", site.camera, "--dry-run"]).stdout
        #expect(dryRun.contains("would delete #1 ") && dryRun.contains("would delete #2 ") && dryRun.contains("would delete #3 ") && !dryRun.contains("#4"), "\(dryRun)")
        #expect(site.onCamera().count == 4)

        let cleared = try site.run(["camera", "clear", "BWC-5", "--volume", site.camera]).stdout
        #expect(cleared.contains("camera BWC-5: 2 deleted, 1 kept"), "\(cleared)")
        #expect(cleared.contains("kept #3") && cleared.contains("reads back with another SHA-256 than the one the store verified"))
        #expect(site.onCamera() == ["VID0003.MP4", "VID0004.MP4"])
        let ledger = try site.ledger()
        #expect(try ledger.file(1)?.cameraClearedAt != nil && ledger.file(3)?.cameraClearedAt == nil)
        let events = try ledger.events(EventFilter(minimumLevel: .debug))
        #expect(events.filter { $0.kind == .cameraCleared }.count == 2)
        #expect(events.contains { $0.kind == .cameraKept && $0.fileID == 3 })
        // Cleared files are not listed again.
        #expect(try site.run(["camera", "clear", "BWC-5", "--dry-run"]).stdout.contains("1 verified file of BWC-5 would be deleted"))
    }

    /// A file in any state but `verified` is never planned for deletion, however the row looks otherwise.
    @Test(arguments: FileState.allCases.filter { $0 != .verified })
    func aFileTheStoreHasNotConfirmedIsNeverDeleted(state: FileState) throws {
        let site = try Site(files: 1)
        try site.run(["upload", "--now"])
        // Forced into the state behind the ledger's back, with everything else of a verified row.
        let queue = try DatabaseQueue(path: site.site.ledgerPath)
        try queue.write { db in
            try db.execute(sql: "DROP TRIGGER media_file_transition")
            try db.execute(sql: "UPDATE media_file SET state = ? WHERE id = 1", arguments: [state.rawValue])
        }
        let plan = try site.run(["camera", "clear", "BWC-5", "--volume", site.camera, "--dry-run"]).stdout
        #expect(plan.contains("0 files on"), "\(plan)")
        try site.run(["camera", "clear", "BWC-5", "--volume", site.camera])
        #expect(site.onCamera() == ["VID0001.MP4"])
    }

    @Test func theDockPlansTheClearingAndTheRecordStepLogsIt() throws {
        let site = try Site(files: 2)
        try site.run(["upload", "--now", "#1"])
        // What the dock leaves for the unit's root step (the plan), and what that step leaves (the result).
        let plan = try CameraClearing.plan(serial: "BWC-5", volume: site.camera, ledger: site.ledger(), devnode: "/dev/sdz1")
        #expect(plan.items.map(\.id) == [1])
        let result = CameraClearing.apply(plan, volume: site.camera)
        #expect(result.items.map(\.deleted) == [true])
        let counts = try CameraClearing.record(result, ledger: site.ledger())
        #expect(counts.deleted == 1 && counts.kept == 0)
        #expect(site.onCamera() == ["VID0002.MP4"])
        let log = try site.run(["log", "--file", "#1"]).stdout
        #expect(log.contains("deleted from camera BWC-5: DCIM/100BWC/VID0001.MP4 (SHA-256"), "\(log)")
    }
}
