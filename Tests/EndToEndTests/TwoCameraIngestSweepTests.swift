import Foundation
import Platform
import Testing
import TestSupport
import UploaderCore
@testable import Ledger

/// Each ingest starts by sweeping the spool's `tmp/` of copies a killed
/// process left behind. Two docks ingest different cameras at once on one
/// PC: the second one's sweep must remove only what is abandoned, never the
/// first one's copy under way, nor any sealed copy; both cameras' files end
/// `spooled` with the camera's SHA-256.
@Suite(.tags(.subprocess, .slow)) struct TwoCameraIngestSweepTests {
    @Test func theSweepBetweenTwoCamerasIngestsRemovesOnlyTheAbandonedCopy() throws {
        // One copy at a time, so camera A's ingest is between ledger writes while its second file is copied.
        let site = try TestSite.make("two-cameras") { $0.extra = "parallel_copies = 1" }
        let folder = site.folder
        let tmp = site.spool + "/tmp", objects = site.spool + "/objects"
        var hashes: [String: [String: String]] = [:]
        func record(_ camera: String, _ sizes: [Int64]) throws {
            for (index, size) in sizes.enumerated() {
                let name = String(format: "DCIM/VID%04d.MP4", index + 1)
                hashes[camera, default: [:]][name] = try CameraVolume.writeRecording(
                    at: folder.sub(camera) + "/" + name, recordedAt: Date(timeIntervalSince1970: 1_795_000_000 + Double(index) * 60),
                    payloadSize: size, seed: UInt64(camera.unicodeScalars.first!.value) * 100 + UInt64(index)).hex
            }
        }
        // A: a short recording, then a long one its ingest is caught copying.
        try record("A", [200_000, 96 << 20])
        try record("B", [300_000, 3 << 20])
        // C: its ingest is killed mid-copy, leaving a temporary file nobody holds.
        try record("C", [4 << 20])
        for serial in ["A", "B", "C"] {
            #expect(try UploaderProcess.run(["device", "add", "BWC-" + serial, "--user", "officer-" + serial], config: site.configPath).status == 0)
        }

        // Camera A's ingest, stopped (SIGSTOP) in the middle of its second copy: a live
        // copy, its temporary file locked by a process that is still there.
        let dockA = try UploaderProcess.start(["ingest", folder.sub("A"), "--serial", "BWC-A"], config: site.configPath)
        defer { dockA.signal(SIGCONT) }
        // Stopped only once bytes are in the copy: then it is locked, and the creation guard
        // (which a sweep waits for) is let go; a process stopped holding that would stall every sweep.
        let caught = eventually(within: 60, every: 0.001) {
            guard CameraVolume.files(under: objects).count == 1, let copying = CameraVolume.files(under: tmp).first,
                  (try? FileManager.default.attributesOfItem(atPath: tmp + "/" + copying)[.size] as? Int) ?? 0 > 0 else { return false }
            dockA.signal(SIGSTOP)
            return true
        }
        #expect(caught, "camera A's ingest was never seen with one copy sealed and the other under way")
        // Stopped before its second copy finished: the copy is still in tmp/.
        let live = try #require(CameraVolume.files(under: tmp).first, "camera A's second copy finished before the ingest was stopped")
        let liveInode = try inode(tmp + "/" + live)
        let sealedA = try #require(CameraVolume.files(under: objects).first)
        let sealedBefore = try CameraVolume.fingerprint(of: sealedA, in: objects)

        // Camera C's ingest is killed after its first chunk: its copy is abandoned.
        let killed = try UploaderProcess.run(["ingest", folder.sub("C"), "--serial", "BWC-C"], config: site.configPath,
                                             environment: ["UPLOADER_FAILPOINTS": "ingest.chunk-written=kill@1"])
        #expect(killed.killedBySignal == SIGKILL, "\(killed.stderr)")
        let abandoned = Set(CameraVolume.files(under: tmp)).subtracting([live])
        #expect(abandoned.count == 1, "\(CameraVolume.files(under: tmp))")

        // Camera B's ingest, whole, with A's copy still under way: its sweep runs now.
        let dockB = try UploaderProcess.run(["ingest", folder.sub("B"), "--serial", "BWC-B"], config: site.configPath)
        #expect(dockB.status == 0 && dockB.killedBySignal == nil, "\(dockB.stdout)\(dockB.stderr)")
        #expect(CameraVolume.files(under: tmp) == [live], "the sweep was to remove \(abandoned.sorted()) and nothing else: tmp/ holds \(CameraVolume.files(under: tmp))")
        #expect(try inode(tmp + "/" + live) == liveInode, "camera A's copy under way was replaced")
        #expect(try CameraVolume.fingerprint(of: sealedA, in: objects) == sealedBefore, "a sealed copy changed")
        let ledger = try Ledger(path: site.ledgerPath)
        let sweeps = try ledger.events(EventFilter(minimumLevel: .debug)).filter { $0.kind == .spoolCleanup }
        #expect(sweeps.map(\.message) == ["discarded 1 unfinished copies left by an interrupted run"], "\(sweeps.map(\.message))")

        // A goes on where it was stopped and finishes; C, docked again, is copied whole.
        dockA.signal(SIGCONT)
        let resultA = dockA.finish()
        #expect(resultA.status == 0 && resultA.killedBySignal == nil, "\(resultA.stdout)\(resultA.stderr)")
        #expect(try UploaderProcess.run(["ingest", folder.sub("C"), "--serial", "BWC-C"], config: site.configPath).status == 0)

        let files = try ledger.files()
        #expect(files.count == 5)
        for file in files {
            let camera = String(file.serial.dropFirst("BWC-".count))
            #expect(file.state == .spooled, "\(file.serial) \(file.sourcePath): \(file.state) \(file.lastError ?? "")")
            #expect(file.sha256 == hashes[camera]?[file.sourcePath], "\(file.serial) \(file.sourcePath)")
            let name = try #require(file.spoolName)
            #expect(try site.spoolCopySHA256(name: name, keyID: file.spoolKeyID).hex == hashes[camera]?[file.sourcePath],
                    "the spool copy of \(file.serial) \(file.sourcePath) is not the camera's file")
        }
        #expect(CameraVolume.files(under: tmp).isEmpty)
        #expect(try ledger.verifyChain().intact)
    }

    func inode(_ path: String) throws -> UInt {
        var info = stat()
        guard lstat(path, &info) == 0 else { throw TestFailure.message("\(path) is gone") }
        return UInt(info.st_ino)
    }
}
