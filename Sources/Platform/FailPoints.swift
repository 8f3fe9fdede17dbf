#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// Named crash points for crash-recovery tests, in the spirit of etcd's
/// gofail: `UPLOADER_FAILPOINTS="upload.part-recorded=kill@3"` makes the
/// process SIGKILL itself the third time it passes that point. Without the
/// variable a fail point costs one dictionary lookup.
public enum FailPoints {
    private static let configured: [String: Int] = {
        guard let spec = ProcessInfo.processInfo.environment["UPLOADER_FAILPOINTS"] else { return [:] }
        var points: [String: Int] = [:]
        for item in spec.split(separator: ",") {
            let pair = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2, pair[1].hasPrefix("kill") else { continue }
            let count = pair[1].split(separator: "@").dropFirst().first.flatMap { Int($0) } ?? 1
            points[pair[0]] = count
        }
        return points
    }()
    private static let hits = Mutex<[String: Int]>([:])

    public static func hit(_ name: String) {
        guard let killAt = configured[name] else { return }
        let count = hits.withLock { counts -> Int in
            counts[name, default: 0] += 1
            return counts[name]!
        }
        if count >= killAt {
            raise(SIGKILL)
        }
    }
}
