import Foundation
import SystemPackage
import Platform
import UploaderCore

/// The root side of the dock unit keeps to folders only root can change: a
/// mount root the agent's user could write to would let it point root's
/// mount(2) somewhere else through a symbolic link.
public enum PrivilegedFolder {
    /// Creates `path` (0755, root) if needed and checks it and every folder
    /// above it: real folders, owned by root, writable by nobody else (or sticky).
    public static func prepare(_ path: String) throws {
        guard path.hasPrefix("/") else {
            throw UploaderError(.config, "[docking] mount_root must be an absolute path, not \(path)")
        }
        var current = ""
        for component in path.split(separator: "/") {
            current += "/" + component
            do {
                // Not the umask's 0750: the agent's user must reach its camera's mount point.
                if try Syscall.makeFolder(current, mode: 0o755) { Syscall.setMode(current, 0o755) }
            } catch {
                throw UploaderError(.io, "cannot create \(current) for [docking] mount_root", cause: error.summary)
            }
        }
        current = ""
        for component in [""] + path.split(separator: "/").map(String.init) {
            current += component.isEmpty ? "/" : (current == "/" ? "" : "/") + component
            let info: stat
            do { info = try Syscall.linkStatus(current) } catch {
                throw UploaderError(.io, "cannot inspect \(current) for [docking] mount_root", cause: error.summary)
            }
            let mode = info.st_mode & 0o7777
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw UploaderError(.insecure, "\(current) (in [docking] mount_root \(path)) is not a real folder (a symbolic link?): nothing was mounted; point mount_root at a folder only root can change, e.g. /run/uploader/mnt")
            }
            guard info.st_uid == 0, mode & 0o022 == 0 || mode & 0o1000 != 0 else {
                throw UploaderError(.insecure, "\(current) (in [docking] mount_root \(path)) may be changed by a user other than root (owner uid \(info.st_uid), mode \(String(mode, radix: 8))): nothing was mounted; point mount_root at a folder only root can change, e.g. /run/uploader/mnt")
            }
        }
    }

    /// Leaves `report` beside the mount point, world-readable, replaced whole.
    public static func writeReport(_ report: MountReport, mountRoot: String, sysname: String) throws {
        try SideFile.writeJSON(report, to: MountReport.path(mountRoot: mountRoot, sysname: sysname), mode: 0o644)
    }

    /// The user and group who may read a mounted camera: `name`, else the
    /// owner of the state folder (the agent's user).
    public static func owner(named name: String?, default stateDirectory: String) throws -> (UInt32, UInt32) {
        if let name {
            guard let ids = Syscall.userIDs(named: name) else {
                throw UploaderError(.usage, "there is no user \(name) on this PC: create it (the package's postinst creates uploader) or pass another --owner")
            }
            return ids
        }
        do {
            let info = try Syscall.status(stateDirectory)
            return (info.st_uid, info.st_gid)
        } catch {
            throw UploaderError(.io, "the state folder \(stateDirectory) does not exist, so the agent's user is unknown: create it owned by that user (the package does) or pass --owner",
                                cause: error.summary)
        }
    }
}
