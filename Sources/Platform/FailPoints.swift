#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import SystemPackage

/// Named crash points for crash-recovery tests, in the spirit of etcd's
/// gofail: `UPLOADER_FAILPOINTS="upload.part-recorded=kill@3"` makes the
/// process SIGKILL itself the third time it passes that point. A point that
/// is handed a file can instead damage it: `name=flip-byte@N` flips one bit
/// at nine tenths of the file's length the Nth time (how the tests break the
/// proofs that read a file back). `name=stop@N` stops the process (SIGSTOP)
/// the Nth time, so a test can act while it waits there (another process
/// writes in between) and then let it go on (SIGCONT). Without the variable a
/// fail point costs one dictionary lookup.
public enum FailPoints {
    enum Action: String { case kill, flipByte = "flip-byte", stop }
    private static let configured: [String: (action: Action, at: Int)] = {
        guard let spec = ProcessInfo.processInfo.environment["UPLOADER_FAILPOINTS"] else { return [:] }
        var points: [String: (action: Action, at: Int)] = [:]
        for item in spec.split(separator: ",") {
            let pair = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2 else { continue }
            let parts = pair[1].split(separator: "@", maxSplits: 1)
            guard let action = parts.first.flatMap({ Action(rawValue: String($0)) }) else { continue }
            points[pair[0]] = (action, parts.dropFirst().first.flatMap { Int($0) } ?? 1)
        }
        return points
    }()
    private static let hits = Mutex<[String: Int]>([:])

    /// Passes the point `name`; `file`: what a `flip-byte` point damages.
    public static func hit(_ name: String, file: FileDescriptor? = nil) {
        guard let point = configured[name] else { return }
        let count = hits.withLock { counts -> Int in
            counts[name, default: 0] += 1
            return counts[name]!
        }
        switch point.action {
        case .kill where count >= point.at:
            raise(SIGKILL)
        case .flipByte where count == point.at:
            if let file { flipByte(of: file) }
        case .stop where count == point.at:
            raise(SIGSTOP)
        default:
            break
        }
    }

    /// Flips one bit at nine tenths of the file's length, through a
    /// read-write descriptor of its own (the one given may be read-only).
    private static func flipByte(of file: FileDescriptor) {
        guard let copy = try? FileDescriptor.open(FilePath("/proc/self/fd/\(file.rawValue)"), .readWrite, options: [.closeOnExec]) else { return }
        defer { try? copy.close() }
        guard let size = try? copy.seek(offset: 0, from: .end), size > 0 else { return }
        let offset = size * 9 / 10
        var byte: UInt8 = 0
        guard (try? withUnsafeMutableBytes(of: &byte, { try copy.read(fromAbsoluteOffset: offset, into: $0) })) == 1 else { return }
        byte ^= 0x01
        _ = try? withUnsafeBytes(of: &byte) { try copy.write(toAbsoluteOffset: offset, $0) }
    }
}
