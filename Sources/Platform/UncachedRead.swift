#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

extension Syscall {
    /// What reads of a descriptor from `openUncached` need aligned: offsets,
    /// lengths and buffers (4096 covers every logical block size in use).
    public static let uncachedAlignment = 4096

    #if arch(x86_64)
    private static let directFlag: Int32 = 0o40000
    #else
    private static let directFlag: Int32 = 0o200000
    #endif

    /// Opens `path` read-only with O_DIRECT: every read comes from the disk,
    /// never from the page cache (dirty pages are written out first). Nil
    /// when the file system has no direct I/O (tmpfs, some FUSE).
    public static func openUncached(_ path: String) throws(Errno) -> FileDescriptor? {
        do {
            return FileDescriptor(rawValue: try retryingEINTR { Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | directFlag) })
        } catch .invalidArgument {
            return nil
        }
    }
}

extension Syscall {
    /// Turns O_DIRECT on or off for an open descriptor. False when the file
    /// system has no direct I/O (the descriptor is left as it was).
    public static func setUncached(_ fd: FileDescriptor, _ on: Bool) throws(Errno) -> Bool {
        let flags = try retryingEINTR { fcntl(fd.rawValue, F_GETFL) }
        do {
            _ = try retryingEINTR { fcntl(fd.rawValue, F_SETFL, on ? flags | directFlag : flags & ~directFlag) }
            return true
        } catch .invalidArgument {
            return false
        }
    }

    /// Starts writing the file's dirty pages in `offset..<offset+length` to
    /// the disk without waiting: a later fsync finds them written (a copy's
    /// writeback overlaps its copying instead of all coming at the end). No durability promise.
    public static func startWriteback(_ fd: FileDescriptor, offset: Int64, length: Int64) {
        _ = syncFileRange?(fd.rawValue, offset, length, 2 /* SYNC_FILE_RANGE_WRITE */)
    }

    /// glibc's sync_file_range, which its Swift module leaves out (a GNU extension).
    private static let syncFileRange: (@convention(c) (Int32, Int64, Int64, UInt32) -> Int32)? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "sync_file_range") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int64, Int64, UInt32) -> Int32).self)
    }()
}

/// Memory for large disk reads and writes: aligned for O_DIRECT and backed
/// by 2 MiB pages where the kernel allows it (transparent huge pages on
/// madvise): a direct read into 4 KiB pages pins and maps 512 of them per
/// 2 MiB, which on this kind of virtual disk ran at a third of the speed.
public enum IOBuffer {
    public static let hugePage = 2 << 20

    /// `byteCount` rounded up to whole 2 MiB pages; release with `deallocate()`.
    public static func allocate(byteCount: Int) -> UnsafeMutableRawBufferPointer {
        let size = max(hugePage, (byteCount + hugePage - 1) / hugePage * hugePage)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: hugePage)
        _ = madvise(buffer.baseAddress, size, MADV_HUGEPAGE)
        return buffer
    }
}
