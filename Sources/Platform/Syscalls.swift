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
        let fd = try retryingEINTR { Glibc.openat(directory.rawValue, name, flags | O_CLOEXEC | O_NOFOLLOW, permissions) }
        return FileDescriptor(rawValue: fd)
    }

    public static func fstatAt(_ directory: FileDescriptor, _ name: String) throws(Errno) -> stat {
        var info = stat()
        _ = try retryingEINTR { Glibc.fstatat(directory.rawValue, name, &info, AT_SYMLINK_NOFOLLOW) }
        return info
    }

    public static func fstat(_ fd: FileDescriptor) throws(Errno) -> stat {
        var info = stat()
        _ = try retryingEINTR { Glibc.fstat(fd.rawValue, &info) }
        return info
    }

    public static func renameAt(_ fromDirectory: FileDescriptor, _ from: String,
                                _ toDirectory: FileDescriptor, _ to: String) throws(Errno) {
        _ = try retryingEINTR { Glibc.renameat(fromDirectory.rawValue, from, toDirectory.rawValue, to) }
    }

    public static func unlinkAt(_ directory: FileDescriptor, _ name: String) throws(Errno) {
        _ = try retryingEINTR { Glibc.unlinkat(directory.rawValue, name, 0) }
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
    /// A file name as text. Bytes that are not UTF-8 become U+FFFD followed by
    /// their hex value ("caf\u{FFFD}E9.MP4"), so two such names never read the
    /// same and the scanner can tell them apart (and hold them) by the U+FFFD.
    static func displayName(_ bytes: [UInt8]) -> String {
        if let valid = String(validating: bytes, as: UTF8.self) { return valid }
        var result = ""
        var index = 0
        while index < bytes.count {
            var decoded: String?
            for length in 1...4 where index + length <= bytes.count {
                if let scalar = String(validating: bytes[index..<(index + length)], as: UTF8.self) {
                    decoded = scalar
                    index += length
                    break
                }
            }
            if let decoded {
                result += decoded
            } else {
                result += "\u{FFFD}" + String(format: "%02X", bytes[index])
                index += 1
            }
        }
        return result
    }
}

extension Errno {
    /// A short description for logs, like "No space left on device (ENOSPC)".
    public var summary: String { "\(description) (errno \(rawValue))" }
}
