#if canImport(Glibc)
import Glibc
#endif
import Foundation
import UploaderCore

/// Who this process is, in a form another process can check: the host, the
/// boot, the pid and the pid's start time (so a reused pid is not taken for
/// the dead owner), plus a nonce per claimant within the process.
public enum ProcessIdentity {
    static let bootID: String = {
        (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown-boot"
    }()

    static let hostName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()

    /// Who runs this process, for the custody log: the real user's name,
    /// and who ran sudo ("root via sudo by alice").
    public static func actorName(environment: [String: String]) -> String {
        let uid = getuid()
        let name = getpwuid(uid).map { String(cString: $0.pointee.pw_name) } ?? "uid \(uid)"
        if let sudo = environment["SUDO_USER"], !sudo.isEmpty, sudo != name {
            return "\(name) via sudo by \(sudo)"
        }
        return name
    }

    /// The name of the user who owns `path`, if it exists.
    public static func ownerName(of path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return getpwuid(info.st_uid).map { String(cString: $0.pointee.pw_name) } ?? "uid \(info.st_uid)"
    }

    /// A new owner token for one claimant (an upload run, a purge) in this process.
    public static func newOwner(_ role: String) -> ClaimOwner {
        let pid = getpid()
        let start = startTime(of: pid) ?? 0
        return ClaimOwner(host: hostName, boot: bootID, pid: pid, startTime: start,
                          nonce: "\(role)-\(UInt32.random(in: 0...UInt32.max))")
    }

    /// Whether the process that made `owner` still runs. An owner from another
    /// host or boot cannot be checked from here: it counts as alive, and its
    /// claim lapses only when its lease runs out.
    public static func isAlive(_ owner: ClaimOwner) -> Bool {
        guard owner.host == hostName else { return true }
        guard owner.boot == bootID else { return false }
        guard let start = startTime(of: owner.pid) else { return false }
        return start == owner.startTime
    }

    /// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
    static func startTime(of pid: Int32) -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After "pid (comm)" come fields 3…; the start time is field 22.
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }
}
