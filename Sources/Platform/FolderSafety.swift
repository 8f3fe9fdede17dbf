import Foundation
#if canImport(Glibc)
import Glibc
#endif
import UploaderCore

/// The spool and state folders hold evidence and its record: another user who
/// can write there could rename, replace or delete a copy. The agent refuses
/// to use a folder that is a link, that another user owns, or that its group
/// or others may write to.
public enum FolderSafety {
    /// Checks `path` (which must exist). `forWriting`: this process will write
    /// there, so it must own the folder too.
    public static func check(_ path: String, what: String, forWriting: Bool = true) throws {
        let info: stat
        do { info = try Syscall.linkStatus(path) } catch {
            throw UploaderError(.io, "cannot inspect the \(what) \(path): check [paths] in the configuration",
                                cause: String(cString: strerror(error.rawValue)), underlying: .errno(error.rawValue))
        }
        if info.st_mode & S_IFMT == S_IFLNK {
            throw UploaderError(.insecure, "the \(what) \(path) is a symbolic link: point [paths] at the real folder")
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw UploaderError(.insecure, "the \(what) \(path) is not a folder: check [paths] in the configuration")
        }
        let mode = info.st_mode & 0o7777
        let user = geteuid()
        if forWriting, info.st_uid != user {
            throw UploaderError(.insecure, "the \(what) \(path) belongs to uid \(info.st_uid), not to this agent's user (uid \(user)): run `chown \(user) \(path)` or run the agent as its owner")
        }
        let foreignWrite: mode_t = forWriting ? 0o022 : 0o002
        if mode & foreignWrite != 0 {
            throw UploaderError(.insecure, "the \(what) \(path) may be written by other users (mode \(String(mode, radix: 8))): run `chmod 0750 \(path)`")
        }
    }
}

extension FolderSafety {
    /// Words to add to an error about writing `path` when its file system is
    /// read-only for this process: under the package's units that means the
    /// sandbox (ProtectSystem=strict), not a broken disk.
    public static func readOnlyHint(_ path: String) -> String {
        var current = path
        while !current.isEmpty {
            var info = statvfs()
            if statvfs(current, &info) == 0 {
                guard info.f_flag & UInt(ST_RDONLY) != 0 else { return "" }
                return "; \(current) is read-only for the agent: its systemd units may write only /var/spool/uploader and /var/lib/uploader, so add the folder with `systemctl edit uploader.service` (and uploader-dock@.service, uploader-upload.service): [Service] ReadWritePaths=\(path)"
            }
            let parent = (current as NSString).deletingLastPathComponent
            if parent == current { break }
            current = parent
        }
        return ""
    }
}
