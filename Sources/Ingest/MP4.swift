import Foundation
import UploaderCore
import SystemPackage

/// Reads the recording time from an ISO BMFF (MP4/MOV) file's `moov/mvhd`
/// box, walking box headers with positioned reads: it never loads the file,
/// only a few dozen bytes per box.
public enum MP4RecordingTime {
    /// Seconds between 1904-01-01 (the ISO BMFF epoch) and 1970-01-01.
    static let secondsFrom1904To1970: UInt64 = 2_082_844_800
    static let maximumBoxesVisited = 512

    /// `readAt(offset, count)` returns up to `count` bytes at `offset` (fewer at end of file).
    public static func creationTime(fileSize: Int64, readAt: (Int64, Int) throws -> [UInt8]) rethrows -> Date? {
        var visited = 0
        guard let moov = try findBox("moov", in: 0..<fileSize, visited: &visited, readAt: readAt) else { return nil }
        guard let mvhd = try findBox("mvhd", in: moov.payload, visited: &visited, readAt: readAt) else { return nil }
        let header = try readAt(mvhd.payload.lowerBound, 12)
        guard header.count >= 8 else { return nil }
        let version = header[0]
        let seconds1904: UInt64
        if version == 1 {
            guard header.count >= 12 else { return nil }
            seconds1904 = bigEndian(header[4..<12])
        } else {
            seconds1904 = bigEndian(header[4..<8])
        }
        // Many cameras write 0 when their clock was never set: that is no time at all.
        guard seconds1904 > secondsFrom1904To1970 else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(seconds1904 - secondsFrom1904To1970))
    }

    public static func creationTime(of fd: FileDescriptor, fileSize: Int64) throws -> Date? {
        try creationTime(fileSize: fileSize) { offset, count in
            var buffer = [UInt8](repeating: 0, count: count)
            let read = try buffer.withUnsafeMutableBytes { try fd.read(fromAbsoluteOffset: offset, into: $0) }
            return Array(buffer.prefix(read))
        }
    }

    struct Box {
        var type: String
        var payload: Range<Int64>
    }

    static func findBox(_ wanted: String, in range: Range<Int64>, visited: inout Int,
                        readAt: (Int64, Int) throws -> [UInt8]) rethrows -> Box? {
        var offset = range.lowerBound
        while offset + 8 <= range.upperBound, visited < maximumBoxesVisited {
            visited += 1
            let header = try readAt(offset, 16)
            guard header.count >= 8 else { return nil }
            var size = Int64(bigEndian(header[0..<4]))
            let type = String(decoding: header[4..<8], as: UTF8.self)
            var headerLength: Int64 = 8
            if size == 1 {
                guard header.count >= 16 else { return nil }
                size = Int64(clamping: bigEndian(header[8..<16]))
                headerLength = 16
            } else if size == 0 {
                size = range.upperBound - offset
            }
            guard size >= headerLength, offset + size <= range.upperBound else { return nil }
            if type == wanted {
                return Box(type: type, payload: (offset + headerLength)..<(offset + size))
            }
            offset += size
        }
        return nil
    }

    static func bigEndian<C: Collection>(_ bytes: C) -> UInt64 where C.Element == UInt8 {
        bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// Writes small but structurally real MP4 files (ftyp, moov/mvhd with a
/// recording time, mdat): the demo's and the tests' camera media. The
/// payload is generated in chunks from a seed, so a large file costs no memory.
public enum MP4Writer {
    public static func write(to fd: FileDescriptor, recordedAt: Date?, payloadSize: Int64, seed: UInt64) throws {
        var header: [UInt8] = []
        // ftyp: major brand isom, minor version 512, compatible isom/iso2/avc1/mp41.
        append(box: "ftyp", payload: Array("isom".utf8) + be32(512) + Array("isomiso2avc1mp41".utf8), to: &header)
        var mvhd: [UInt8] = [0, 0, 0, 0]
        let created = recordedAt.map { UInt32(clamping: UInt64($0.timeIntervalSince1970) + MP4RecordingTime.secondsFrom1904To1970) } ?? 0
        mvhd += be32(created) + be32(created) + be32(1000) + be32(UInt32(clamping: payloadSize / 1000))
        mvhd += be32(0x0001_0000) + [0x01, 0x00] + [UInt8](repeating: 0, count: 10)
        mvhd += be32(0x0001_0000) + be32(0) + be32(0) + be32(0) + be32(0x0001_0000) + be32(0) + be32(0) + be32(0) + be32(0x4000_0000)
        mvhd += [UInt8](repeating: 0, count: 24) + be32(2)
        var moovPayload: [UInt8] = []
        append(box: "mvhd", payload: mvhd, to: &moovPayload)
        append(box: "moov", payload: moovPayload, to: &header)
        let mdatSize = payloadSize + 16
        header += be32(1) + Array("mdat".utf8) + be64(UInt64(mdatSize))
        try header.withUnsafeBytes { _ = try fd.writeAll($0) }

        var generator = SplitMix64(seed: seed)
        var remaining = payloadSize
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while remaining > 0 {
            let count = Int(min(remaining, Int64(chunk.count)))
            chunk.withUnsafeMutableBytes { raw in
                let words = raw.bindMemory(to: UInt64.self)
                for index in 0..<(count + 7) / 8 where index < words.count { words[index] = generator.next() }
            }
            try chunk.withUnsafeBytes { _ = try fd.writeAll(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            remaining -= Int64(count)
        }
    }

    static func append(box type: String, payload: [UInt8], to output: inout [UInt8]) {
        output += be32(UInt32(payload.count + 8)) + Array(type.utf8) + payload
    }

    static func be32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
    static func be64(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
}
