#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SystemPackage

/// Calls on paths (not descriptors): the dock unit's root steps (mount points,
/// the mount root's folders, the owner of a camera's files) and the few
/// checks of a file's mode before it is read.
extension Syscall {
    /// stat(2), following links.
    public static func status(_ path: String) throws(Errno) -> stat {
        var info = stat()
        _ = try retryingEINTR { stat(path, &info) }
        return info
    }

    /// lstat(2): a symbolic link is described, not followed.
    public static func linkStatus(_ path: String) throws(Errno) -> stat {
        var info = stat()
        _ = try retryingEINTR { lstat(path, &info) }
        return info
    }

    /// Creates the folder `path` with `mode` (less the umask). False when
    /// something already exists there (what it is is the caller's to check).
    @discardableResult
    public static func makeFolder(_ path: String, mode: mode_t) throws(Errno) -> Bool {
        if mkdir(path, mode) == 0 { return true }
        let error = Errno(rawValue: errno)
        if error == .fileExists { return false }
        throw error
    }

    /// Removes an empty folder that may not exist; any other failure is the next step's to see.
    public static func removeEmptyFolder(_ path: String) { rmdir(path) }

    /// rename(2): replaces `to` whole, in one step.
    public static func rename(_ from: String, to: String) throws(Errno) {
        _ = try retryingEINTR { Glibc.rename(from, to) }
    }

    /// The path with every link and `..` resolved, or nil when it does not resolve.
    public static func resolvedPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Sets a file's access and modification times to `date` (whole seconds).
    public static func setTimes(_ path: String, to date: Date) throws(Errno) {
        let time = timespec(tv_sec: Int(date.timeIntervalSince1970), tv_nsec: 0)
        var times = [time, time]
        _ = try retryingEINTR { utimensat(AT_FDCWD, path, &times, 0) }
    }

    /// The user and group ids of the user `name`, or nil when there is no such user.
    public static func userIDs(named name: String) -> (uid: uid_t, gid: gid_t)? {
        guard let entry = getpwnam(name) else { return nil }
        return (entry.pointee.pw_uid, entry.pointee.pw_gid)
    }
}

/// mount(2) and umount2(2), for the dock unit's root steps only.
extension Syscall {
    public struct MountFlags: OptionSet, Sendable {
        public let rawValue: UInt
        public init(rawValue: UInt) { self.rawValue = rawValue }
        public static let readOnly = MountFlags(rawValue: UInt(MS_RDONLY))
        public static let noSetUID = MountFlags(rawValue: UInt(MS_NOSUID))
        public static let noDevices = MountFlags(rawValue: UInt(MS_NODEV))
        public static let noExecution = MountFlags(rawValue: UInt(MS_NOEXEC))
        /// Changes the flags of what is mounted at the target already.
        public static let remount = MountFlags(rawValue: UInt(MS_REMOUNT))
        /// Nothing on a camera runs, and nothing there acts as a device or setuid program.
        public static let inert: MountFlags = [.noSetUID, .noDevices, .noExecution]
    }

    public static func mount(_ source: String, at target: String, fileSystem: String, flags: MountFlags, data: String?) throws(Errno) {
        _ = try retryingEINTR { Glibc.mount(source, target, fileSystem, flags.rawValue, data) }
    }

    /// Unmounts `target`; `detach` (MNT_DETACH) lets go of a mount whose
    /// device is gone, at once, and cleans up once nothing uses it.
    public static func unmount(_ target: String, detach: Bool = false) throws(Errno) {
        _ = try retryingEINTR { umount2(target, detach ? Int32(MNT_DETACH) : 0) }
    }
}

/// A pipe whose only use is to wake a thread blocked in `waitUntilReadable`.
public final class WakeUpPipe: Sendable {
    public let readEnd: FileDescriptor
    let writeEnd: FileDescriptor

    public init() throws(Errno) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw Errno(rawValue: errno) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        readEnd = FileDescriptor(rawValue: fds[0])
        writeEnd = FileDescriptor(rawValue: fds[1])
    }

    deinit {
        try? readEnd.close()
        try? writeEnd.close()
    }

    /// Wakes the waiting thread. Never blocks (a full pipe is awake already).
    public func wake() {
        _ = try? [UInt8(1)].withUnsafeBytes { try writeEnd.write($0) }
    }
}

extension Syscall {
    /// Waits, as long as it takes, until one of `descriptors` can be read (or
    /// was hung up); returns which ones. Blocking.
    public static func waitUntilReadable(_ descriptors: [FileDescriptor]) throws(Errno) -> [Bool] {
        var fds = descriptors.map { pollfd(fd: $0.rawValue, events: Int16(POLLIN), revents: 0) }
        _ = try retryingEINTR { poll(&fds, nfds_t(fds.count), -1) }
        return fds.map { $0.revents != 0 }
    }
}
