#if canImport(Glibc)
import Glibc
#endif
import UploaderCore

/// The agent runs as the user who owns the state folder (`uploader` when
/// installed from the package). An admin who types `sudo uploader …` gets
/// that user too: a spool copy or ledger file made by root would be one the
/// agent could no longer change.
public enum AgentUser {
    /// If this process is root and `stateDirectory` belongs to another user,
    /// becomes that user (its group and supplementary groups) for good.
    /// Nothing happens when not root or when root owns the folder.
    public static func become(ownerOf stateDirectory: String) throws {
        guard geteuid() == 0 else { return }
        var info = stat()
        guard stat(stateDirectory, &info) == 0, info.st_uid != 0 else { return }
        let uid = info.st_uid
        var gid = info.st_gid
        var name: String?
        if let entry = getpwuid(uid) {
            name = String(cString: entry.pointee.pw_name)
            gid = entry.pointee.pw_gid
        }
        let groupsSet = name.map { initgroups($0, gid) == 0 } ?? (setgroups(1, [gid]) == 0)
        guard groupsSet, setgid(gid) == 0, setuid(uid) == 0 else {
            throw UploaderError(.insecure, "cannot switch to the agent's user (uid \(uid), owner of \(stateDirectory)): run the command as that user, e.g. `sudo -u \(name ?? String(uid)) uploader …`",
                                cause: String(cString: strerror(errno)), underlying: .errno(errno))
        }
    }
}
