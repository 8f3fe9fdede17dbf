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
