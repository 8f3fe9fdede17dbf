import Crypto
import Foundation
import Logging
import Spool
import Testing
import TestSupport
import UploaderCore
@testable import Ingest
@testable import Agent
@testable import Ledger
import Platform

@Suite struct IngestTests {
    @Test func copiesEveryRecordingWithTheCamerasHashAndPartPlan() throws {
        let fixture = try TestSite.make("ingest")
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let small = try CameraVolume.writeRecording(at: fixture.camera + "/DCIM/100BWC/VID0001.MP4", recordedAt: Date(timeIntervalSince1970: 1_795_000_000), payloadSize: 100_000)
        let large = try CameraVolume.writeRecording(at: fixture.camera + "/DCIM/100BWC/VID0002.MP4", recordedAt: Date(timeIntervalSince1970: 1_795_000_600), payloadSize: 12 << 20, seed: 2)
        try "not media".write(toFile: fixture.camera + "/DCIM/readme.txt", atomically: true, encoding: .utf8)

        let report = try fixture.ingest()
        #expect(report.copied == 2)
        #expect(report.failed == 0)
        let files = try fixture.ledger.files()
        #expect(files.map(\.state) == [.spooled, .spooled])
        #expect(files.map(\.sha256) == [small.hex, large.hex])
        #expect(files.map(\.recordedAtSource) == [.containerMetadata, .containerMetadata])
        #expect(files[1].recordedAt == Date(timeIntervalSince1970: 1_795_000_600))
        // The spool copy holds the camera's bytes (opened with the keyring), and
        // is sealed: its raw bytes are not the camera's.
        for file in files {
            #expect(file.spoolKeyID != nil)
            #expect(try fixture.spoolCopySHA256(name: file.spoolName!, keyID: file.spoolKeyID).hex == file.sha256)
            #expect(try CameraVolume.sha256(ofFile: fixture.spool + "/objects/" + file.spoolName!).hex != file.sha256)
        }
        // 12 MiB + headers in 5 MiB parts: 3 parts, each hash equal to a hash of that byte range.
        let parts = try fixture.ledger.parts(of: files[1].id)
        #expect(parts.map(\.size) == [5 << 20, 5 << 20, files[1].sourceSize - (10 << 20)])
        let handle = try #require(FileHandle(forReadingAtPath: fixture.camera + "/DCIM/100BWC/VID0002.MP4"))
        for part in parts {
            try handle.seek(toOffset: UInt64(part.offset))
            #expect(SHA256Hasher.hash(try handle.read(upToCount: Int(part.size)) ?? Data()) == part.sha256)
        }
        #expect(CameraVolume.files(under: fixture.spool + "/tmp").isEmpty)
    }

    @Test func runningAgainCopiesNothingTwice() throws {
        let fixture = try TestSite.make("ingest")
        try CameraVolume.writeRecording(at: fixture.camera + "/VID1.MP4", recordedAt: Date(), payloadSize: 50_000)
        try CameraVolume.writeRecording(at: fixture.camera + "/VID2.MP4", recordedAt: Date(), payloadSize: 50_000, seed: 9)
        #expect(try fixture.ingest().copied == 2)
        let eventsAfterFirst = try fixture.ledger.events(EventFilter(minimumLevel: .debug)).count
        let second = try fixture.ingest()
        #expect(second.copied == 0)
        #expect(second.held == 2)
        #expect(try fixture.ledger.files().count == 2)
        #expect(CameraVolume.files(under: fixture.spool + "/objects").count == 2)
        // The second run only logs its start and end.
        #expect(try fixture.ledger.events(EventFilter(minimumLevel: .debug)).count == eventsAfterFirst + 2)
    }

    @Test func hostileEntriesAreRecordedAndNeverFollowed() throws {
        let fixture = try TestSite.make("ingest")
        let outside = fixture.folder.sub("outside")
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try CameraVolume.writeRecording(at: outside + "/secret.mp4", recordedAt: Date(), payloadSize: 1000, seed: 99)
        try CameraVolume.writeRecording(at: fixture.camera + "/DCIM/good.mp4", recordedAt: Date(), payloadSize: 1000)
        try FileManager.default.createSymbolicLink(atPath: fixture.camera + "/DCIM/evil.mp4", withDestinationPath: outside + "/secret.mp4")
        try FileManager.default.createSymbolicLink(atPath: fixture.camera + "/DCIM/up", withDestinationPath: outside)
        try FileManager.default.createSymbolicLink(atPath: fixture.camera + "/passwd.mp4", withDestinationPath: "/etc/passwd")
        #expect(mkfifo(fixture.camera + "/DCIM/pipe.mp4", 0o644) == 0)
        try CameraVolume.writeRecording(at: fixture.camera + "/DCIM/new\nline ..;rm -rf $(x).mp4", recordedAt: Date(), payloadSize: 1000, seed: 5)
        // Names that are not UTF-8, differing only in the invalid byte: each is copied, by its exact bytes.
        func writeRaw(_ name: [UInt8], _ content: String) {
            let path = Array((fixture.camera + "/DCIM/").utf8) + name + [0]
            let fd = path.withUnsafeBufferPointer { open(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), O_WRONLY | O_CREAT, 0o644) }
            #expect(fd >= 0)
            _ = Array(content.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        writeRaw([0x62, 0xFF, 0x64, 0x2E, 0x6D, 0x70, 0x34], "first")
        writeRaw([0x62, 0xFE, 0x64, 0x2E, 0x6D, 0x70, 0x34], "second")

        let report = try fixture.ingest()
        #expect(report.copied == 4)
        let files = try fixture.ledger.files()
        let quarantined = files.filter { $0.state == .quarantined && $0.holdReason == .hostileEntry }
        #expect(Set(quarantined.map(\.sourcePath)) == ["DCIM/evil.mp4", "DCIM/up", "passwd.mp4", "DCIM/pipe.mp4"])
        #expect(quarantined.allSatisfy { $0.spoolName == nil && $0.lastError != nil })
        let raw = files.filter { $0.sourcePath.contains("\u{FFFD}") }
        #expect(Set(raw.map(\.sourcePath)) == ["DCIM/b\u{FFFD}FFd.mp4", "DCIM/b\u{FFFD}FEd.mp4"])
        #expect(Set(raw.map { $0.sha256 ?? "" }) == [SHA256Hasher.hash("first").hex, SHA256Hasher.hash("second").hex])
        // The spool holds exactly the four real files, under names we chose.
        let spoolFiles = CameraVolume.evidenceFiles(inSpool: fixture.spool)
        #expect(spoolFiles.count == 4)
        #expect(spoolFiles.allSatisfy { $0.hasPrefix("objects/") && !$0.contains("..") && !$0.contains("\n") })
        #expect(!files.contains { $0.sha256 == (try? CameraVolume.sha256(ofFile: outside + "/secret.mp4").hex) })
        // Nothing was written outside the spool.
        #expect(CameraVolume.files(under: outside) == ["secret.mp4"])
        // Seeing them again adds no rows.
        _ = try fixture.ingest()
        #expect(try fixture.ledger.files().count == files.count)
    }

    @Test func filesOfAnUnknownCameraAreSecuredAndHeldUntilRegistered() throws {
        let fixture = try TestSite.make("ingest")
        try CameraVolume.writeRecording(at: fixture.camera + "/VID1.MP4", recordedAt: Date(timeIntervalSince1970: 1_795_000_000), payloadSize: 2000)
        let report = try fixture.ingest(serial: "BWC-NEW")
        #expect(report.held == 1)
        let row = try #require(try fixture.ledger.files().first)
        #expect(row.state == .quarantined && row.holdReason == .unknownDevice)
        #expect(FileManager.default.fileExists(atPath: fixture.spool + "/objects/" + row.spoolName!))
        #expect(try fixture.ledger.addDevice(serial: "BWC-NEW", defaultUser: "officer-5", name: nil, model: nil) == 1)
        // Released without copying again.
        let again = try fixture.ingest(serial: "BWC-NEW")
        #expect(again.copied == 0 && again.alreadySecured == 1)
        #expect(try fixture.ledger.file(row.id)?.state == .spooled)
    }

    @Test func pooledCameraFilesGoToWhoeverHeldTheCameraWhenRecording() throws {
        let fixture = try TestSite.make("ingest")
        let handOver = Date(timeIntervalSince1970: 1_795_020_000)
        try fixture.ledger.addDevice(serial: "POOL-7", defaultUser: "pool-unassigned", name: nil, model: nil)
        try fixture.ledger.assign(serial: "POOL-7", user: "officer-day", from: handOver - 12 * 3600, until: handOver)
        try fixture.ledger.assign(serial: "POOL-7", user: "officer-night", from: handOver, until: nil)
        try CameraVolume.writeRecording(at: fixture.camera + "/A.MP4", recordedAt: handOver - 60, payloadSize: 1000)
        try CameraVolume.writeRecording(at: fixture.camera + "/B.MP4", recordedAt: handOver + 60, payloadSize: 1000, seed: 3)
        // Docked by the night officer, long after both recordings: docking time must not matter.
        _ = try fixture.ingest(serial: "POOL-7")
        let users = try fixture.ledger.files().map { "\($0.sourcePath)=\($0.user ?? "-")" }
        #expect(users == ["A.MP4=officer-day", "B.MP4=officer-night"])
    }

    @Test func aFileWithoutContainerTimeUsesTheFileTimeAndSaysSo() throws {
        let fixture = try TestSite.make("ingest")
        try Data(repeating: 7, count: 4096).write(to: URL(fileURLWithPath: fixture.camera + "/AUDIO1.WAV"))
        var times = [timespec(tv_sec: 1_790_000_000, tv_nsec: 0), timespec(tv_sec: 1_790_000_000, tv_nsec: 0)]
        utimensat(AT_FDCWD, fixture.camera + "/AUDIO1.WAV", &times, 0)
        _ = try fixture.ingest()
        let row = try #require(try fixture.ledger.files().first)
        #expect(row.recordedAtSource == .fileModificationTime)
        #expect(row.recordedAt == Date(timeIntervalSince1970: 1_790_000_000))
    }

    @Test func aFileStillBeingWrittenWaitsForTheNextRun() throws {
        let fixture = try TestSite.make("ingest")
        var configuration = try fixture.configuration()
        configuration.ingest.settleSeconds = 3600
        try CameraVolume.writeRecording(at: fixture.camera + "/VID1.MP4", recordedAt: Date(), payloadSize: 1000)
        let report = try Ingestor(configuration: configuration, ledger: fixture.ledger, logger: Logger(label: "t")).ingest(volume: fixture.camera, serial: "BWC-1")
        #expect(report.waitingToSettle == 1 && report.copied == 0)
        #expect(try fixture.ledger.files().isEmpty)
    }

    @Test func aFileStampedInTheFutureIsCopiedNotWaitedForForever() throws {
        let fixture = try TestSite.make("ingest")
        var configuration = try fixture.configuration()
        configuration.ingest.settleSeconds = 60
        try CameraVolume.writeRecording(at: fixture.camera + "/VID1.MP4", recordedAt: Date(), payloadSize: 1000)
        // A camera whose clock runs a day ahead.
        var times = [timespec(tv_sec: Int(Date().timeIntervalSince1970) + 86400, tv_nsec: 0), timespec(tv_sec: Int(Date().timeIntervalSince1970) + 86400, tv_nsec: 0)]
        utimensat(AT_FDCWD, fixture.camera + "/VID1.MP4", &times, 0)
        let report = try Ingestor(configuration: configuration, ledger: fixture.ledger, logger: Logger(label: "t")).ingest(volume: fixture.camera, serial: "BWC-1")
        #expect(report.copied == 1 && report.waitingToSettle == 0)
    }

    @Test func aFullSpoolStopsBeforeCopyingAndSaysWhatToDo() throws {
        let fixture = try TestSite.make("ingest")
        var configuration = try fixture.configuration()
        configuration.ingest.spoolReserveBytes = Int64.max / 4
        try CameraVolume.writeRecording(at: fixture.camera + "/VID1.MP4", recordedAt: Date(), payloadSize: 1000)
        let report = try Ingestor(configuration: configuration, ledger: fixture.ledger, logger: Logger(label: "t")).ingest(volume: fixture.camera, serial: "BWC-1")
        #expect(report.stoppedBecause?.contains("spool disk is full") == true)
        #expect(try fixture.ledger.files().first?.state == .failed)
        #expect(CameraVolume.evidenceFiles(inSpool: fixture.spool).isEmpty)
        // Space again: the next run copies it.
        #expect(try fixture.ingest().copied == 1)
    }

    @Test func abandonedTemporaryCopiesAreDiscardedButLiveOnesAreNot() throws {
        let folder = TemporaryDirectory()
        let spool = Spool(root: folder.path)
        try spool.prepare()
        FileManager.default.createFile(atPath: spool.temporaryDirectory + "/1.partial", contents: Data([1, 2, 3]))
        let live = open(spool.temporaryDirectory + "/2.partial", O_CREAT | O_WRONLY, 0o600)
        defer { close(live) }
        #expect(flock(live, LOCK_EX) == 0)
        // flock locks belong to the open file description, so the cleaner's own open() conflicts
        // with this one exactly as it would with another live ingest process.
        let removed = try spool.discardAbandonedTemporaryFiles()
        #expect(removed == ["1.partial"])
        #expect(FileManager.default.fileExists(atPath: spool.temporaryDirectory + "/2.partial"))
    }

    @Test(arguments: [(Int64(0), Int64(64 << 20)), (Int64(100) << 30, Int64(64 << 20)), (Int64(1) << 40, Int64(105 << 20))])
    func partSizeGrowsOnlyToStayWithin10000Parts(size: Int64, expected: Int64) {
        #expect(Ingestor.partSize(forFileOfSize: size, configured: 64 << 20) == expected)
    }
}
