import Foundation
@testable import Ingest
import SystemPackage
import Testing
import TestBasics
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
