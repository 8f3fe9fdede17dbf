import Foundation
@testable import Ingest
import SystemPackage
import Testing
import TestSupport
@testable import UploaderCore

@Suite struct MP4RecordingTimeTests {
    @Test func readsTheTimeTheWriterPutIn() throws {
        let folder = TemporaryDirectory()
        let recorded = Date(timeIntervalSince1970: 1_795_000_000)
        try CameraVolume.writeRecording(at: folder.sub("a.mp4"), recordedAt: recorded, payloadSize: 300_000)
        let fd = try FileDescriptor.open(FilePath(folder.sub("a.mp4")), .readOnly)
        defer { try? fd.close() }
        let size = try fd.seek(offset: 0, from: .end)
        #expect(try MP4RecordingTime.creationTime(of: fd, fileSize: size) == recorded)
    }

    /// Builds boxes by hand: the reader must not depend on our writer's layout.
    static func box(_ type: String, _ payload: [UInt8]) -> [UInt8] {
        MP4Writer.be32(UInt32(payload.count + 8)) + Array(type.utf8) + payload
    }

    static func read(_ bytes: [UInt8]) -> Date? {
        MP4RecordingTime.creationTime(fileSize: Int64(bytes.count)) { offset, count in
            guard offset < bytes.count else { return [] }
            return Array(bytes[Int(offset)..<min(bytes.count, Int(offset) + count)])
        }
    }

    @Test func findsMoovAfterALargeMdatAndReadsVersion1() {
        // mdat first (a camera that writes moov at the end), with a 64-bit size, then a version-1 mvhd.
        let seconds1904: UInt64 = 2_082_844_800 + 1_700_000_000
        let mdat = MP4Writer.be32(1) + Array("mdat".utf8) + MP4Writer.be64(16 + 1000) + [UInt8](repeating: 0xAB, count: 1000)
        let mvhd = Self.box("mvhd", [1, 0, 0, 0] + MP4Writer.be64(seconds1904) + MP4Writer.be64(seconds1904) + [UInt8](repeating: 0, count: 20))
        let file = Self.box("ftyp", Array("isom".utf8) + [0, 0, 2, 0]) + mdat + Self.box("moov", Self.box("udta", []) + mvhd)
        #expect(Self.read(file) == Date(timeIntervalSince1970: 1_700_000_000))
    }

    @Test func aZeroTimeIsNoTime() {
        let mvhd = Self.box("mvhd", [0, 0, 0, 0] + MP4Writer.be32(0) + [UInt8](repeating: 0, count: 20))
        #expect(Self.read(Self.box("moov", mvhd)) == nil)
    }

    @Test func truncatedAndHostileFilesGiveNoTimeAndNoCrash() {
        let mvhd = Self.box("mvhd", [0, 0, 0, 0] + MP4Writer.be32(3_800_000_000) + [UInt8](repeating: 0, count: 20))
        let whole = Self.box("moov", mvhd)
        for length in 0..<whole.count - 20 {
            #expect(Self.read(Array(whole.prefix(length))) == nil)
        }
        // A box that claims to be larger than the file.
        #expect(Self.read(MP4Writer.be32(0xFFFF_FFF0) + Array("moov".utf8) + whole) == nil)
        // A box of size 4 (smaller than its own header) must not loop forever.
        #expect(Self.read(MP4Writer.be32(4) + Array("free".utf8) + whole) == nil)
    }
}

@Suite struct ObjectKeyTests {
    let values = ObjectKeyTemplate.Values(prefix: "springfield-pd", user: "officer-17", serial: "BWC-1001", name: "VID0001.MP4",
                                          sha256: "ab", recordedAt: Date(timeIntervalSince1970: 1_795_000_000), fileID: 9)

    @Test func theDefaultTemplateFilesByUserAndRecordingDay() {
        #expect(ObjectKeyTemplate.render(Configuration.defaultKeyTemplate, values) == "springfield-pd/officer-17/2026/11/18/BWC-1001/VID0001.MP4")
    }

    @Test func hostileValuesCannotAddSegments() {
        var hostile = values
        hostile.user = "../../admin"
        hostile.name = "a/../../b c?.mp4"
        hostile.serial = ".."
        let key = ObjectKeyTemplate.render(Configuration.defaultKeyTemplate, hostile)
        let segments = key.split(separator: "/")
        #expect(segments.count == 7)
        #expect(!segments.contains(".."))
        #expect(key.allSatisfy { $0.isASCII })
    }

    @Test func anEmptyPrefixLeavesNoEmptySegment() {
        var noPrefix = values
        noPrefix.prefix = ""
        #expect(ObjectKeyTemplate.render("{prefix}/{serial}/{name}", noPrefix) == "BWC-1001/VID0001.MP4")
    }

    @Test func templatesAreChecked() {
        #expect(ObjectKeyTemplate.validate("{prefix}/{officer}/{name}")?.contains("unknown placeholder {officer}") == true)
        #expect(ObjectKeyTemplate.validate("{prefix}/{user}")?.contains("never share a key") == true)
        #expect(ObjectKeyTemplate.validate("{prefix}/{name") != nil)
        #expect(ObjectKeyTemplate.validate(Configuration.defaultKeyTemplate) == nil)
    }
}

@Suite struct AttributionTests {
    let start = Date(timeIntervalSince1970: 1_795_000_000)

    @Test func aPooledCameraFileGoesToWhoeverHeldItAtRecordingTime() {
        let periods = [
            CustodyPeriod(user: "day-shift", from: start, until: start + 12 * 3600),
            CustodyPeriod(user: "night-shift", from: start + 12 * 3600, until: start + 24 * 3600),
        ]
        #expect(Attribution.user(recordedAt: start + 3600, periods: periods, defaultUser: "pool") == "day-shift")
        #expect(Attribution.user(recordedAt: start + 12 * 3600, periods: periods, defaultUser: "pool") == "night-shift")
        #expect(Attribution.user(recordedAt: start + 30 * 3600, periods: periods, defaultUser: "pool") == "pool")
    }

    @Test func aLaterOpenEndedHandOverWins() {
        let periods = [
            CustodyPeriod(user: "first", from: start, until: nil),
            CustodyPeriod(user: "second", from: start + 100, until: nil),
        ]
        #expect(Attribution.user(recordedAt: start + 50, periods: periods, defaultUser: "pool") == "first")
        #expect(Attribution.user(recordedAt: start + 500, periods: periods, defaultUser: "pool") == "second")
    }
}

@Suite struct RetryPolicyTests {
    let policy = RetryPolicy(maxAttempts: 5, baseDelay: 1, maxDelay: 30)

    @Test func backoffGrowsAndStaysUnderTheCeiling() {
        var generator = SplitMix64(seed: 3)
        for attempt in 1...10 {
            let ceiling = min(30, pow(2, Double(attempt - 1)))
            for _ in 0..<50 {
                let delay = policy.delay(afterAttempt: attempt, retryAfter: nil, using: &generator)
                #expect(delay >= 0 && delay <= ceiling)
            }
        }
    }

    @Test func retryAfterIsAFloor() {
        var generator = SplitMix64(seed: 4)
        for _ in 0..<50 {
            #expect(policy.delay(afterAttempt: 1, retryAfter: 7, using: &generator) >= 7)
        }
        // A server asking for more than our ceiling still gets what it asked for.
        #expect(policy.delay(afterAttempt: 1, retryAfter: 90, using: &generator) == 90)
    }

    @Test func retryAfterParsesSecondsAndHTTPDates() {
        #expect(RetryPolicy.parseRetryAfter("3") == 3)
        let now = Date(timeIntervalSince1970: 1_795_000_000)
        let later = RetryPolicy.parseRetryAfter("Wed, 18 Nov 2026 11:30:20 GMT", now: now)
        #expect(later.map { abs($0 - 1420) < 1 } == true)
        #expect(RetryPolicy.parseRetryAfter("soon") == nil)
    }
}
