import Foundation
import Logging
import Testing
import TestSupport
import UploaderCore
@testable import Agent
@testable import Ledger
@testable import Transport
import Platform

@Suite(.serialized, .tags(.store, .subprocess, .slow)) struct SchedulingTests {
    func runner(_ fixture: TestSite, _ change: (inout Configuration) -> Void = { _ in }) throws -> UploadRunner {
        var configuration = try fixture.configuration()
        change(&configuration)
        return UploadRunner(configuration: configuration, credentials: fixture.store.credentials, ledger: try fixture.ledger, logger: Logger(label: "t"))
    }

    func window(_ text: String) -> UploadSchedule {
        UploadSchedule(windows: [try! UploadSchedule.parseWindow(text).get()])
    }

    @Test func outsideTheWindowNothingUploadsUnlessForced() throws {
        let fixture = try TestSite.make("window") { $0.store() }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        try CameraVolume.writeRecording(at: fixture.camera + "/A.MP4", recordedAt: Date(), payloadSize: 1000)
        try fixture.ingest()
        let night = try runner(fixture) { $0.schedule = window("22:00-06:00") }
        var noon = Calendar.current.dateComponents([.year, .month, .day], from: Date())
        noon.hour = 12
        let closed = try night.run(now: Calendar.current.date(from: noon)!)
        #expect(closed.windowClosed)
        #expect(closed.nextWindowOpens != nil)
        #expect(try fixture.storedKeys().isEmpty)
        #expect(try fixture.ledger.files().first?.state == .spooled)
        let forced = try night.run(now: Calendar.current.date(from: noon)!, force: true)
        #expect(forced.verified == 1)
    }

    @Test func aStopRequestPausesBetweenPartsAndTheNextRunSendsOnlyTheRest() throws {
        let fixture = try TestSite.make("pause") { $0.store() }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        try CameraVolume.writeRecording(at: fixture.camera + "/BIG.MP4", recordedAt: Date(), payloadSize: 16 << 20, seed: 3)
        try fixture.ingest()
        let file = try #require(try fixture.ledger.files().first)
        let parts = try fixture.ledger.parts(of: file.id)
        #expect(parts.count == 4)
        // The stop is asked for while the first part is on the wire (its body has reached
        // the store, its answer has not come back): that part is kept, no other starts.
        let stop = StopFlag()
        let proxy = try FaultProxy(upstream: fixture.store.endpoint) { request in
            if request.isUploadPart { stop.request() }
        }
        let stopped = try runner(fixture) { $0.store.endpoint = proxy.endpoint }.run(stop: stop)
        #expect(stopped.paused)
        #expect(stopped.verified == 0 && stopped.bytesSent == parts[0].size)
        #expect(proxy.requests.filter(\.isUploadPart).map(\.bodyBytes) == [Int(parts[0].size)])
        #expect(proxy.arrived.filter(\.isUploadPart).count == 1, "a second part was started: \(proxy.arrived.map(\.requestLine))")
        #expect(try fixture.ledger.parts(of: file.id).map { $0.etag != nil } == [true, false, false, false])
        #expect(try fixture.ledger.file(file.id)?.state == .uploading)
        let resumed = try runner(fixture).run()
        #expect(resumed.verified == 1 && resumed.bytesSent == file.sourceSize - parts[0].size)
    }

    @Test func sigtermDuringACappedUploadKeepsFinishedPartsAndTheNextRunSendsTheRest() throws {
        // 1 MiB/s makes a 4-part, 16 MiB upload take ~16 s: time to stop it in the middle.
        let fixture = try TestSite.make("sigterm") { $0.store(); $0.extra = "[schedule]\nbandwidth = \"1M\"\n" }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let cameraHash = try CameraVolume.writeRecording(at: fixture.camera + "/BIG.MP4", recordedAt: Date(), payloadSize: 16 << 20, seed: 21)
        try fixture.ingest()
        let file = try #require(try fixture.ledger.files().first)
        let running = try UploaderProcess.start(["upload", "--json"], config: fixture.configPath)
        #expect(try eventually(within: 60) { try !fixture.ledger.parts(of: file.id).filter { $0.etag != nil }.isEmpty })
        running.signal(SIGTERM)
        let result = running.finish()
        #expect(result.status == 0, "\(result.stderr)")
        let report = try UploaderProcess.json(result)
        #expect(report["paused"] as? Bool == true)
        let kept = try fixture.ledger.parts(of: file.id).filter { $0.etag != nil }
        #expect((1...3).contains(kept.count))
        #expect(try fixture.ledger.file(file.id)?.state == .uploading)

        let rest = try runner(fixture) { $0.bandwidth = .unlimited }.run()
        #expect(rest.verified == 1)
        #expect(rest.bytesSent == file.sourceSize - kept.reduce(0) { $0 + $1.size })
        #expect(try fixture.client.hashObject(key: file.objectKey ?? fixture.ledger.file(file.id)!.objectKey!).sha256 == cameraHash)
    }

    @Test func prioritizedFilesGoFirst() throws {
        let fixture = try TestSite.make("priority") { $0.store() }
        for (index, name) in ["A.MP4", "B.MP4", "C.MP4"].enumerated() {
            try CameraVolume.writeRecording(at: fixture.camera + "/" + name, recordedAt: Date(timeIntervalSince1970: 1_795_000_000 + Double(index)), payloadSize: 1000, seed: UInt64(index))
        }
        try fixture.ingest()
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let c = try fixture.ledger.select(files: ["C.MP4"])
        try fixture.ledger.prioritize(c.map(\.id), priority: 10)
        #expect(try fixture.ledger.uploadQueue().map { try fixture.ledger.file($0.id)?.name } == ["C.MP4", "A.MP4", "B.MP4"])
    }

    @Test func cancelAbortsTheMultipartUploadAndKeepsTheSpoolCopy() throws {
        let fixture = try TestSite.make("cancel") { $0.store() }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        try CameraVolume.writeRecording(at: fixture.camera + "/BIG.MP4", recordedAt: Date(), payloadSize: 11 << 20, seed: 9)
        try fixture.ingest()
        let killed = try fixture.cli(["upload"], environment: ["UPLOADER_FAILPOINTS": "upload.part-recorded=kill@1"])
        #expect(killed.killedBySignal == SIGKILL)
        let file = try #require(try fixture.ledger.files().first)
        #expect(file.uploadID != nil)
        #expect(try fixture.client.listMultipartUploads(prefix: fixture.area.prefix + "/").map(\.uploadID) == [file.uploadID!])

        let cancel = try fixture.cli(["cancel", "#\(file.id)"])
        #expect(cancel.status == 0, "\(cancel.stderr)")
        #expect(try fixture.client.listMultipartUploads(prefix: fixture.area.prefix + "/").isEmpty)
        let cancelled = try #require(try fixture.ledger.file(file.id))
        #expect(cancelled.state == .cancelled)
        #expect(FileManager.default.fileExists(atPath: fixture.spool + "/objects/" + cancelled.spoolName!))
        #expect(try fixture.upload().verified == 0)

        let retry = try fixture.cli(["retry", "BIG.MP4"])
        #expect(retry.stdout.hasPrefix("queued 1 file again"))
        #expect(try fixture.upload().verified == 1)
        #expect(try fixture.storedKeys().count == 1)
    }

    @Test func abandonedMultipartUploadsAreAbortedButOursAreKept() throws {
        let fixture = try TestSite.make("stale") { $0.store() }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        try CameraVolume.writeRecording(at: fixture.camera + "/BIG.MP4", recordedAt: Date(), payloadSize: 11 << 20, seed: 10)
        try fixture.ingest()
        #expect(try fixture.cli(["upload"], environment: ["UPLOADER_FAILPOINTS": "upload.part-recorded=kill@1"]).killedBySignal == SIGKILL)
        let file = try #require(try fixture.ledger.files().first)
        let ours = try #require(file.uploadID)
        let kept = try fixture.ledger.parts(of: file.id).filter { $0.etag != nil }
        #expect(kept.count == 1)
        // An upload nobody will ever complete (a crashed other tool, an old ledger).
        let orphan = try fixture.client.createMultipartUpload(key: fixture.area.prefix + "/orphan.mp4", metadata: [:])
        let later = Date().addingTimeInterval(3 * 3600)
        let report = try runner(fixture) { $0.upload.abortStaleMultipartAfter = 3600 }.run(now: later)
        #expect(report.staleUploadsAborted == 1)
        #expect(report.verified == 1)
        #expect(!(try fixture.client.listMultipartUploads(prefix: fixture.area.prefix + "/").map(\.uploadID).contains(orphan)))
        let aborted = try fixture.ledger.events(EventFilter()).filter { $0.kind == .uploadStaleAborted }
        #expect(aborted.count == 1 && aborted[0].message.contains(orphan), "\(aborted.map(\.message))")
        // Ours was resumed, not aborted and started again: the part it kept did not travel twice.
        #expect(!aborted.contains { $0.message.contains(ours) })
        #expect(report.bytesSent == file.sourceSize - kept.reduce(0) { $0 + $1.size })
    }

    @Test func theLimiterChargesTheRateInForceAtEachRequest() throws {
        let utc = TimeZone(identifier: "UTC")!
        let timetable = try BandwidthTimetable.parse("07:00,1M 22:00,off", timeZone: utc).get()
        let limiter = BandwidthLimiter(timetable: timetable)
        let start = ContinuousClock.now
        let day = try Date("2026-11-24T08:00:00Z", strategy: Date.ISO8601FormatStyle())
        // At 1 MiB/s, 2 MiB at once must wait about 2 s (less the 0.25 s burst it may hold).
        let wait = limiter.reserve(2 << 20, at: start + .seconds(10), wallClock: day)
        #expect(abs(wait - 1.75) < 0.01)
        // The debt carries over: another 1 MiB right away waits a further second.
        #expect(abs(limiter.reserve(1 << 20, at: start + .seconds(10), wallClock: day) - 2.75) < 0.01)
        // At 22:00 the limit is lifted, for this transfer too.
        let night = try Date("2026-11-24T22:00:00Z", strategy: Date.ISO8601FormatStyle())
        #expect(limiter.reserve(100 << 20, at: start + .seconds(11), wallClock: night) == 0)
    }
}
