#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage

/// Thin wrappers around the few POSIX calls swift-system does not cover.
/// Every call retries EINTR here and nowhere else, and reports `Errno`.
public enum Syscall {
    @inline(__always)
    static func retryingEINTR<T: FixedWidthInteger>(_ body: () -> T) throws(Errno) -> T {
        while true {
            let result = body()
            if result == -1 {
                let error = Errno(rawValue: errno)
                if error == .interrupted { continue }
                throw error
            }
            return result
        }
    }

    public static func fsync(_ fd: FileDescriptor) throws(Errno) {
        _ = try retryingEINTR { Glibc.fsync(fd.rawValue) }
    }

    /// Tells the kernel to drop the file's cached pages, so the next read
    /// comes from the disk and not from the copy we just wrote.
    public static func dropCachedPages(_ fd: FileDescriptor) throws(Errno) {
        let result = posix_fadvise(fd.rawValue, 0, 0, POSIX_FADV_DONTNEED)
        if result != 0 { throw Errno(rawValue: result) }
    }

    public static func adviseSequential(_ fd: FileDescriptor) {
        _ = posix_fadvise(fd.rawValue, 0, 0, POSIX_FADV_SEQUENTIAL)
    }

    /// Opens `name` relative to the directory `directory`, never following a
    /// symbolic link in the last component.
    public static func openAt(_ directory: FileDescriptor, _ name: String, _ flags: Int32,
                              permissions: mode_t = 0) throws(Errno) -> FileDescriptor {
        let raw = rawName(name)
        let fd = try retryingEINTR { raw.withUnsafeBufferPointer { Glibc.openat(directory.rawValue, $0.baseAddress!, flags | O_CLOEXEC | O_NOFOLLOW, permissions) } }
        return FileDescriptor(rawValue: fd)
    }

    public static func fstatAt(_ directory: FileDescriptor, _ name: String) throws(Errno) -> stat {
        var info = stat()
        let raw = rawName(name)
        _ = try retryingEINTR { raw.withUnsafeBufferPointer { Glibc.fstatat(directory.rawValue, $0.baseAddress!, &info, AT_SYMLINK_NOFOLLOW) } }
        return info
    }

    public static func fstat(_ fd: FileDescriptor) throws(Errno) -> stat {
        var info = stat()
        _ = try retryingEINTR { Glibc.fstat(fd.rawValue, &info) }
        return info
    }

    public static func renameAt(_ fromDirectory: FileDescriptor, _ from: String,
                                _ toDirectory: FileDescriptor, _ to: String) throws(Errno) {
        let (rawFrom, rawTo) = (rawName(from), rawName(to))
        _ = try retryingEINTR {
            rawFrom.withUnsafeBufferPointer { from in rawTo.withUnsafeBufferPointer { to in
                Glibc.renameat(fromDirectory.rawValue, from.baseAddress!, toDirectory.rawValue, to.baseAddress!)
            } }
        }
    }

    public static func unlinkAt(_ directory: FileDescriptor, _ name: String) throws(Errno) {
        // The name's raw bytes: a camera name that is not UTF-8 is never another file's.
        let raw = rawName(name)
        _ = try retryingEINTR { raw.withUnsafeBufferPointer { Glibc.unlinkat(directory.rawValue, $0.baseAddress!, 0) } }
    }

    public static func pread(_ fd: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer,
                             at offset: Int64) throws(Errno) -> Int {
        try retryingEINTR { Glibc.pread(fd.rawValue, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    /// Takes an exclusive advisory lock; false when another process holds it.
    /// The kernel drops the lock when the holder dies, which is what lets a
    /// restart tell an abandoned temporary file from one being written.
    public static func tryLockExclusive(_ fd: FileDescriptor) throws(Errno) -> Bool {
        while true {
            if flock(fd.rawValue, LOCK_EX | LOCK_NB) == 0 { return true }
            let error = Errno(rawValue: errno)
            if error == .interrupted { continue }
            if error == .wouldBlock { return false }
            throw error
        }
    }

    /// The one safe walk below a volume's root: opens `relativePath` one
    /// component at a time, each relative to its parent's descriptor with
    /// O_NOFOLLOW, so no symbolic link is followed at any level and nothing
    /// outside `root` is reached. "..", "." and empty paths are refused with
    /// EXDEV (what openat2's RESOLVE_BENEATH answers). `ignoringCase` finds
    /// each component among the directory's entries whatever its case (FAT).
    public static func openBeneath(_ root: FileDescriptor, _ relativePath: String, directory: Bool = false,
                                   ignoringCase: Bool = false) throws(Errno) -> FileDescriptor {
        let components = relativePath.split(separator: "/").map(String.init)
        guard !components.isEmpty, !components.contains(".."), !components.contains(".") else { throw Errno.improperLink }
        var current = root
        var opened: [FileDescriptor] = []
        defer { for fd in opened { try? fd.close() } }
        func actualName(_ component: String, in directory: FileDescriptor) throws(Errno) -> String {
            guard ignoringCase else { return component }
            let wanted = component.lowercased()
            guard let match = try directoryEntries(directory).first(where: { $0.lowercased() == wanted }) else { throw Errno.noSuchFileOrDirectory }
            return match
        }
        for component in components.dropLast() {
            current = try openAt(current, try actualName(component, in: current), O_RDONLY | O_DIRECTORY)
            opened.append(current)
        }
        return try openAt(current, try actualName(components.last!, in: current), O_RDONLY | (directory ? O_DIRECTORY : 0))
    }

    /// Takes a shared or exclusive advisory lock, waiting for it.
    public static func lock(_ fd: FileDescriptor, exclusive: Bool) throws(Errno) {
        _ = try retryingEINTR { flock(fd.rawValue, exclusive ? LOCK_EX : LOCK_SH) }
    }

    /// Opens (creating it with `mode`) the lock file at `path` and waits for
    /// its exclusive lock, held until the returned descriptor is closed. Nil
    /// when it cannot be opened: the caller goes on without it, as before locks.
    public static func lockedFile(_ path: String, mode: mode_t) -> FileDescriptor? {
        let fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, mode)
        guard fd >= 0 else { return nil }
        let file = FileDescriptor(rawValue: fd)
        try? lock(file, exclusive: true)
        return file
    }

    /// Sets the permission bits of `path`; a failure leaves them as they were.
    public static func setMode(_ path: String, _ mode: mode_t) { chmod(path, mode) }

    /// Free and total bytes of the filesystem holding `path`.
    public static func filesystemSpace(_ path: String) throws(Errno) -> (available: Int64, total: Int64) {
        var info = statvfs()
        _ = try retryingEINTR { statvfs(path, &info) }
        return (Int64(info.f_bavail) * Int64(info.f_frsize), Int64(info.f_blocks) * Int64(info.f_frsize))
    }

    /// Lists a directory's entries (without `.` and `..`) through its descriptor.
    public static func directoryEntries(_ directory: FileDescriptor) throws(Errno) -> [String] {
        let duplicate = try retryingEINTR { Glibc.dup(directory.rawValue) }
        guard let stream = fdopendir(duplicate) else {
            let error = Errno(rawValue: errno)
            _ = Glibc.close(duplicate)
            throw error
        }
        defer { closedir(stream) }
        rewinddir(stream)
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw Errno(rawValue: errno) }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                displayName(Array(raw.prefix(while: { $0 != 0 })))
            }
            if name == "." || name == ".." { continue }
            names.append(name)
        }
        return names.sorted()
    }
}

extension Syscall {
    /// The escape for a byte of a file name that is not text: U+FFFD and the
    /// byte in two hex digits. A name is text in the ledger, the log and object
    /// keys; `rawName` turns it back into the exact bytes for the kernel.
    static let byteEscape: Character = "\u{FFFD}"

    /// A file name as text. Bytes that are not UTF-8 (and the bytes of a
    /// literal U+FFFD, so the mapping stays reversible) become U+FFFD plus their
    /// hex value: "caf\u{FFFD}E9.MP4". Two names never read the same, and
    /// `rawName` gives back the original bytes.
    static func displayName(_ bytes: [UInt8]) -> String {
        if let valid = String(validating: bytes, as: UTF8.self), !valid.contains(byteEscape) { return valid }
        var result = ""
        var index = 0
        func escape(_ byte: UInt8) { result.append(byteEscape); result += String(format: "%02X", byte) }
        while index < bytes.count {
            var advanced = false
            for length in 1...4 where index + length <= bytes.count {
                if let scalar = String(validating: bytes[index..<(index + length)], as: UTF8.self) {
                    if scalar.contains(byteEscape) {
                        bytes[index..<(index + length)].forEach(escape)
                    } else {
                        result += scalar
                    }
                    index += length
                    advanced = true
                    break
                }
            }
            if !advanced {
                escape(bytes[index])
                index += 1
            }
        }
        return result
    }

    /// The bytes of a file name given as `displayName` made it, NUL-terminated.
    static func rawName(_ name: String) -> [CChar] {
        guard name.contains(byteEscape) else { return Array(name.utf8CString) }
        var bytes: [UInt8] = []
        var rest = Substring(name)
        while let escape = rest.firstIndex(of: byteEscape) {
            bytes += Array(rest[..<escape].utf8)
            let hex = rest[rest.index(after: escape)...].prefix(2)
            if hex.count == 2, let byte = UInt8(hex, radix: 16) {
                bytes.append(byte)
                rest = rest[rest.index(escape, offsetBy: 3)...]
            } else {
                bytes += Array(String(byteEscape).utf8)
                rest = rest[rest.index(after: escape)...]
            }
        }
        bytes += Array(rest.utf8)
        return bytes.map { CChar(bitPattern: $0) } + [0]
    }
}

/// What the command line asks of the operating system.
extension Syscall {
    /// Set once as a command starts: spool copies, the ledger and every file
    /// the agent makes are never for other users, and a closed pipe (an alert
    /// command that does not read its input) is an error to handle, not death.
    public static func prepareCommandProcess() {
        umask(0o027)
        signal(SIGPIPE, SIG_IGN)
    }

    /// Whether `fd` is a terminal (where a person reads, not a file or a pipe).
    public static func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

    /// Whether this process runs as root (the dock unit's `+` steps, an admin with sudo).
    public static var isRoot: Bool { geteuid() == 0 }

    /// Deletes a file that may not exist; any other failure is the next step's to see.
    public static func removeIfPresent(_ path: String) { unlink(path) }

    /// The owner of `path` (following links), or nil when it cannot be read.
    public static func owner(of path: String) -> (uid: uid_t, gid: gid_t)? {
        guard let info = try? status(path) else { return nil }
        return (info.st_uid, info.st_gid)
    }

    /// Gives `path` to the owner of `folder` (root writes a file the agent's user
    /// must read). Nothing to do when that owner is root or cannot be read.
    public static func giveToOwner(of folder: String, _ path: String) throws(Errno) {
        guard let owner = owner(of: folder), owner.uid != 0 else { return }
        guard chown(path, owner.uid, owner.gid) == 0 else { throw Errno(rawValue: errno) }
    }
}

extension Errno {
    /// A short description for logs, like "No space left on device (ENOSPC)".
    public var summary: String { "\(description) (errno \(rawValue))" }
}
