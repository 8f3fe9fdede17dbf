import Foundation
import GRDB
import Ledger
import Testing
import TestSupport
import UploaderCore
import Agent
@testable import Transport

/// Giving cameras back empty: only files the store verified, still the same
/// on the camera, ever leave it; every deletion is a custody event.
@Suite(.tags(.store, .subprocess)) struct CameraClearTests {
    /// A site whose camera (`BWC-5`) of `files` recordings is registered and ingested.
    static func dockedSite(files: Int, size: String = "1MiB", clear: String = "after-verified", lockedBucket: Bool = false,
                           before: (String) throws -> Void = { _ in }) throws -> TestSite {
        let site = try TestSite.make("clear") { $0.store(lockedBucket: lockedBucket); $0.extra = "[camera]\nclear = \"\(clear)\"" }
        try site.dockSimulatedCamera(serial: "BWC-5", user: "officer-5", files: files, size: size, before: before)
        return site
    }

    @Test func onlyVerifiedFilesStillUnchangedOnTheCameraAreDeleted() throws {
        let site = try Self.dockedSite(files: 4)
        // #1 and #2 verified; #3 verified, then rewritten on the camera (same size and time, other bytes); #4 only spooled.
        try site.run(["upload", "--now", "#1", "#2", "#3"])
        let third = try #require(try site.ledger.file(3))
        let path = site.camera + "/" + third.sourcePath
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[bytes.count - 10] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.modificationDate: attributes[.modificationDate]!], ofItemAtPath: path)

        let dryRun = try site.run(["camera", "clear", "BWC-5", "--volume", site.camera, "--dry-run"]).stdout
        #expect(dryRun.contains("would delete #1 ") && dryRun.contains("would delete #2 ") && dryRun.contains("would delete #3 ") && !dryRun.contains("#4"), "\(dryRun)")
        #expect(CameraVolume.names(under: site.camera).count == 4)

        let cleared = try site.run(["camera", "clear", "BWC-5", "--volume", site.camera]).stdout
        #expect(cleared.contains("camera BWC-5: 2 deleted, 1 kept"), "\(cleared)")
        #expect(cleared.contains("kept #3") && cleared.contains("reads back with another SHA-256 than the one the store verified"))
        #expect(CameraVolume.names(under: site.camera) == ["VID0003.MP4", "VID0004.MP4"])
        let ledger = try site.ledger
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
        let site = try Self.dockedSite(files: 1)
        try site.run(["upload", "--now"])
        // Forced into the state behind the ledger's back, with everything else of a verified row.
        let queue = try DatabaseQueue(path: site.ledgerPath)
        try queue.write { db in
            try db.execute(sql: "DROP TRIGGER media_file_transition")
            try db.execute(sql: "UPDATE media_file SET state = ? WHERE id = 1", arguments: [state.rawValue])
        }
        let plan = try site.run(["camera", "clear", "BWC-5", "--volume", site.camera, "--dry-run"]).stdout
        #expect(plan.contains("0 files on"), "\(plan)")
        try site.run(["camera", "clear", "BWC-5", "--volume", site.camera])
        #expect(CameraVolume.names(under: site.camera) == ["VID0001.MP4"])
    }

    @Test func theDockPlansTheClearingAndTheRecordStepLogsIt() throws {
        let site = try Self.dockedSite(files: 2)
        try site.run(["upload", "--now", "#1"])
        // What the dock leaves for the unit's root step (the plan), and what that step leaves (the result).
        let plan = try CameraClearing.plan(serial: "BWC-5", volume: site.camera, ledger: site.ledger, devnode: "/dev/sdz1")
        #expect(plan.items.map(\.id) == [1])
        #expect(plan.items.map(\.objectKey) == [try site.ledger.file(1)?.objectKey])
        let result = try Self.applyAsRoot(plan, site: site)
        #expect(result.items.map(\.deleted) == [true])
        let counts = try CameraClearing.record(result, ledger: site.ledger)
        #expect(counts.deleted == 1 && counts.kept == 0)
        #expect(CameraVolume.names(under: site.camera) == ["VID0002.MP4"])
        let log = try site.run(["log", "--file", "#1"]).stdout
        #expect(log.contains("deleted from camera BWC-5: DCIM/100BWC/VID0001.MP4 (SHA-256"), "\(log)")
    }

    /// A model whose settable clock file is SYSTEM/TIME.TXT.
    static let clockModel = """
        [[model]]
        id = "acme-bodycam-x1"
        name = "Acme BodyCam X1"
        usb_ids = ["2b4c:0001"]
        clock_file = "SYSTEM/TIME.TXT"
        clock_format = "YYYY-MM-DD hh:mm:ss"
        clock_settable = true
        """

    /// The root step as `camera clear-apply` runs it, on the camera folder:
    /// with its own configuration, camera model and store.
    static func applyAsRoot(_ plan: ClearPlan, site: TestSite) throws -> ClearResult {
        let model = try CameraModels.parse(clockModel, path: "cameras.toml").models.first
        return CameraClearing.apply(plan, volume: site.camera, authority: ClearingAuthority(configuration: try site.configuration(), model: model))
    }

    static func item(_ site: TestSite, id: Int64, path: String, sha256: String? = nil, objectKey: String? = nil) throws -> ClearPlan.Item {
        let attributes = try FileManager.default.attributesOfItem(atPath: site.camera + "/" + path)
        var info = stat()
        #expect(stat(site.camera + "/" + path, &info) == 0)
        let sha = try sha256 ?? CameraVolume.sha256(ofFile: site.camera + "/" + path).hex
        var item = ClearPlan.Item(id: id, path: path, size: (attributes[.size] as! NSNumber).int64Value,
                                  modifiedNanoseconds: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec), sha256: sha)
        item.objectKey = objectKey
        return item
    }

    /// Plans as the uploader user could write them: the root step deletes only
    /// what the store verifiably holds, under the configured policy, and writes
    /// no clock file but the model's.
    @Test func aHandWrittenPlanMakesTheRootStepDeleteNothingTheStoreDoesNotHold() throws {
        let site = try Self.dockedSite(files: 3)
        try site.run(["upload", "--now", "#1"])
        let first = try #require(try site.ledger.file(1))
        let folder = (first.sourcePath as NSString).deletingLastPathComponent
        // (a) a recording never ingested, planned with its true SHA-256 and #1's object key.
        try CameraVolume.writeRecording(at: site.camera + "/" + folder + "/NEW0001.MP4", recordedAt: Date(), payloadSize: 1 << 20, seed: 99)
        // (b) #1 replaced on the camera (same size and time), the plan giving the new bytes' SHA-256 as if verified.
        let firstPath = site.camera + "/" + first.sourcePath
        let attributes = try FileManager.default.attributesOfItem(atPath: firstPath)
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: firstPath)))
        bytes[bytes.count - 10] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: firstPath))
        try FileManager.default.setAttributes([.modificationDate: attributes[.modificationDate]!], ofItemAtPath: firstPath)
        let second = try #require(try site.ledger.file(2))
        let secondBytes = try Data(contentsOf: URL(fileURLWithPath: site.camera + "/" + second.sourcePath))
        var plan = ClearPlan(serial: "BWC-5", devnode: "/dev/sdz1", createdAt: Date(), items: [
            try Self.item(site, id: 99, path: folder + "/NEW0001.MP4", objectKey: first.objectKey),
            try Self.item(site, id: 1, path: first.sourcePath, objectKey: first.objectKey),
            // #2 was never uploaded: its SHA-256 is the ledger's, its key made up.
            try Self.item(site, id: 2, path: second.sourcePath, objectKey: (first.objectKey ?? "") + "-2"),
        ], setClock: nil)
        // (c) a "clock file" at a path of the plan's choosing: a recording, and a file that does not exist.
        plan.setClock = ClearPlan.ClockSetting(path: second.sourcePath, format: "YYYY", local: false)
        let result = try Self.applyAsRoot(plan, site: site)
        #expect(result.items.allSatisfy { !$0.deleted }, "\(result.items)")
        #expect(result.items.map(\.kept) .allSatisfy { $0?.contains("the store holds no object with SHA-256") == true }, "\(result.items)")
        #expect(CameraVolume.names(under: site.camera) == ["NEW0001.MP4", "VID0001.MP4", "VID0002.MP4", "VID0003.MP4"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: site.camera + "/" + second.sourcePath)) == secondBytes, "the recording was truncated")
        // Only the model's clock file, and only one the camera has: none here, none created.
        #expect(result.clockSet == nil && result.clockError?.contains("no clock file SYSTEM/TIME.TXT") == true, "\(result)")
        #expect(!FileManager.default.fileExists(atPath: site.camera + "/SYSTEM"))
        plan.items = []
        plan.setClock = ClearPlan.ClockSetting(path: "IMPORTANT.TXT", format: "YYYY", local: false)
        _ = try Self.applyAsRoot(plan, site: site)
        #expect(!FileManager.default.fileExists(atPath: site.camera + "/IMPORTANT.TXT"))
    }

    /// Issue 15.5: on a store that takes any checksum it is sent (moto), the
    /// uploader user plants other bytes of the recording's size with the
    /// recording's SHA-256 as their checksum, and plans the recording against
    /// that object: the store's checksum is then only what the planter said,
    /// so the root step reads the object back, and the recording stays.
    @Test func anObjectPlantedWithTheRecordingsChecksumConfirmsNothing() throws {
        let site = try Self.dockedSite(files: 1)
        let file = try #require(try site.ledger.file(1))
        let camera = try CameraVolume.sha256(ofFile: site.camera + "/" + file.sourcePath)
        let key = "clear/planted/\(UInt32.random(in: 0...UInt32.max)).MP4"
        let planted = try site.store.client(bucket: try site.configuration().store.bucket)
            .send("PUT", key: key, query: [], headers: S3Client.checksumHeaders(camera),
                  body: .bytes([UInt8](repeating: 0x41, count: Int(file.sourceSize))))
        if TestStore.currentKind == .moto { #expect(planted.status == 200, "moto took a wrong checksum before: \(planted.status)") }
        let plan = ClearPlan(serial: "BWC-5", devnode: "/dev/sdz1", createdAt: Date(),
                             items: [try Self.item(site, id: 1, path: file.sourcePath, objectKey: key)], setClock: nil)
        let result = try Self.applyAsRoot(plan, site: site)
        #expect(result.items.map(\.deleted) == [false], "\(result.items)")
        #expect(CameraVolume.names(under: site.camera) == ["VID0001.MP4"])
    }

    /// The root step asks the store for the version the plan names (the one
    /// verified): a version the store does not hold confirms nothing.
    /// (A recording uploaded in parts: the store's checksum is of its parts' digests.)
    @Test func theRootStepAsksForThePlannedVersion() throws {
        let site = try Self.dockedSite(files: 1, size: "6MiB", lockedBucket: true)
        try site.run(["upload", "--now"])
        var plan = try CameraClearing.plan(serial: "BWC-5", volume: site.camera, ledger: site.ledger, devnode: "/dev/sdz1")
        let verified = try #require(try site.ledger.file(1)?.storeVersionID, "the upload recorded no version id")
        #expect(plan.items.map(\.versionID) == [verified] && plan.items.map(\.partSize) == [5 << 20])
        // Other bytes under the same key since: the verified version still holds the camera's.
        let key = try #require(plan.items[0].objectKey)
        #expect(try site.store.client(bucket: try site.configuration().store.bucket)
            .send("PUT", key: key, query: [], headers: [:], body: .bytes(Array("not the video".utf8))).status == 200)
        plan.items[0].versionID = "3q2-made-up-version"
        #expect(try Self.applyAsRoot(plan, site: site).items.map(\.deleted) == [false])
        #expect(CameraVolume.names(under: site.camera) == ["VID0001.MP4"])
        plan.items[0].versionID = verified
        #expect(try Self.applyAsRoot(plan, site: site).items.map(\.deleted) == [true])
        #expect(CameraVolume.names(under: site.camera).isEmpty)
    }

    /// (d) With [camera] clear = "never" the root step deletes nothing, whatever the plan.
    @Test func theRootStepObeysItsOwnPolicyNotThePlan() throws {
        let site = try Self.dockedSite(files: 1, clear: "never")
        try site.run(["upload", "--now"])
        let file = try #require(try site.ledger.file(1))
        let plan = ClearPlan(serial: "BWC-5", devnode: "/dev/sdz1", createdAt: Date(),
                             items: [try Self.item(site, id: 1, path: file.sourcePath, objectKey: file.objectKey)], setClock: nil)
        let result = try Self.applyAsRoot(plan, site: site)
        #expect(result.items.isEmpty && result.error?.contains("[camera] clear is \"never\"") == true, "\(result)")
        #expect(CameraVolume.names(under: site.camera) == ["VID0001.MP4"])
    }

    /// A name that is not UTF-8 (`VID\xE9.MP4`, in the ledger as `VID\u{FFFD}E9.MP4`)
    /// is deleted by its own bytes, never a file whose name reads like its escape.
    @Test func clearingDeletesTheFileByItsRawNameNotOneNamedLikeItsEscape() throws {
        let raw: [UInt8] = Array("VID".utf8) + [0xE9] + Array(".MP4".utf8)
        func rawPath(_ camera: String) -> [CChar] { (Array((camera + "/DCIM/100BWC/").utf8) + raw + [0]).map { CChar(bitPattern: $0) } }
        let site = try Self.dockedSite(files: 1) { camera in
            try CameraVolume.writeRecording(at: camera + "/raw.tmp", recordedAt: Date(), payloadSize: 1 << 20, seed: 21)
            #expect(rename(camera + "/raw.tmp", rawPath(camera)) == 0)
        }
        try site.run(["upload", "--now"])
        let rawFile = try #require(try site.ledger.files().first { $0.sourcePath.hasSuffix("VID\u{FFFD}E9.MP4") })
        #expect(rawFile.state == .verified)
        // Never ingested: a file literally named like the escape.
        let lookalike = site.camera + "/DCIM/100BWC/VID\u{FFFD}E9.MP4"
        try CameraVolume.writeRecording(at: lookalike, recordedAt: Date(), payloadSize: 1 << 20, seed: 22)
        let plan = try CameraClearing.plan(serial: "BWC-5", volume: site.camera, ledger: site.ledger, devnode: "/dev/sdz1")
        let result = try Self.applyAsRoot(plan, site: site)
        #expect(Set(result.items.filter(\.deleted).map(\.id)) == [1, rawFile.id], "\(result.items)")
        #expect(access(rawPath(site.camera), F_OK) != 0, "the verified file is still on the camera")
        #expect(FileManager.default.fileExists(atPath: lookalike), "the file never ingested was deleted")
    }
}
