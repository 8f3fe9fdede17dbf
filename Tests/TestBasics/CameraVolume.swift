import Crypto
import Foundation
import Ingest
import SystemPackage

/// Camera volumes made of real files on disk.
public enum CameraVolume {
    /// Writes an MP4 recording with `recordedAt` in its `mvhd`, returns its SHA-256.
    @discardableResult
    public static func writeRecording(at path: String, recordedAt: Date?, payloadSize: Int64, seed: UInt64 = 7) throws -> SHA256Digest {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let fd = try FileDescriptor.open(FilePath(path), .writeOnly, options: [.create, .truncate], permissions: [.ownerReadWrite])
        try fd.closeAfter { try MP4Writer.write(to: fd, recordedAt: recordedAt, payloadSize: payloadSize, seed: seed) }
        return try sha256(ofFile: path)
    }

    /// Hashes a file by streaming it: the tests' independent check.
    public static func sha256(ofFile path: String) throws -> SHA256Digest {
        let fd = try FileDescriptor.open(FilePath(path), .readOnly)
        defer { try? fd.close() }
        let hasher = SHA256Hasher()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
            if count == 0 { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
        return hasher.finalize()
    }

    /// Path, SHA-256, size, mtime and mode of every file below `root`: equal
    /// fingerprints mean nobody touched the volume.
    public static func fingerprint(_ root: String) throws -> [String] {
        try files(under: root).map { try fingerprint(of: $0, in: root) }
    }

    /// One file's line of `fingerprint(_:)`: path relative to `root`, SHA-256, size, mtime, mode.
    public static func fingerprint(of path: String, in root: String) throws -> String {
        var info = stat()
        _ = lstat(root + "/" + path, &info)
        return "\(path) \(try sha256(ofFile: root + "/" + path).hex) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec) \(info.st_mode)"
    }

    /// The files in a spool's `objects/` and `tmp/` (its `locks/` hold no evidence).
    public static func evidenceFiles(inSpool spool: String) -> [String] {
        files(under: spool).filter { !$0.hasPrefix("locks/") }
    }

    /// The names (last path components) of the files below `root`, sorted.
    public static func names(under root: String) -> [String] {
        files(under: root).map { ($0 as NSString).lastPathComponent }.sorted()
    }

    /// Every regular file below `root`, relative paths, sorted.
    public static func files(under root: String) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: root) else { return [] }
        var result: [String] = []
        while let item = enumerator.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + item, isDirectory: &isDirectory), !isDirectory.boolValue {
                result.append(item)
            }
        }
        return result.sorted()
    }
}
