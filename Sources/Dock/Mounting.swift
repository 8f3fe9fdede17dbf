internal import CUdev
import Foundation
import SystemPackage
import Platform
import UploaderCore

/// Where a dock finds the camera's file system. The agent never mounts:
/// `uploader-dock@.service` mounts the volume as root before the dock
/// (`uploader mount`, ExecStartPre=+) and unmounts it after (`uploader
/// unmount`, ExecStopPost=+), while the dock itself runs as the unprivileged
/// `uploader` user. Tests stand a folder in for the volume.
public protocol VolumeMounting: Sendable {
    /// The folder to ingest for `device`, expected at `mountPoint`.
    func volume(for device: DockedDevice, at mountPoint: String) throws -> String
    /// Mounts the mount step detached before this dock because their camera
    /// was gone; for the custody log.
    func staleMountsReleased(for device: DockedDevice) -> [String]
    /// The kernel's options for a mount, for the custody log.
    func mountOptions(_ mountPoint: String) -> String?
}

extension VolumeMounting {
    public func staleMountsReleased(for device: DockedDevice) -> [String] { [] }
    public func mountOptions(_ mountPoint: String) -> String? { nil }
}

/// What `uploader mount` did, left beside the mount point (root-owned, 0644)
/// for the unprivileged dock to record in the ledger: the root step never
/// opens the ledger, so no ledger file can end up owned by root.
public struct MountReport: Codable, Sendable, Equatable {
    public var devnode: String
    public var mountPoint: String
    /// Why the volume could not be mounted, in words for the custody log.
    public var error: String?
    /// Stale mounts (camera pulled during an earlier dock) detached first.
    public var released: [String]

    public init(devnode: String, mountPoint: String, error: String? = nil, released: [String] = []) {
        self.devnode = devnode
        self.mountPoint = mountPoint
        self.error = error
        self.released = released
    }

    /// `<mount_root>/.<sysname>.mount.json`
    public static func path(mountRoot: String, sysname: String) -> String {
        besidePath(mountRoot: mountRoot, sysname: sysname, kind: "mount")
    }

    /// `<mount_root>/.<sysname>.<kind>.json`: what a root step leaves for the dock (root-owned folder, 0644 files).
    public static func besidePath(mountRoot: String, sysname: String, kind: String) -> String {
        mountRoot + "/." + ObjectKeyTemplate.sanitize(sysname) + ".\(kind).json"
    }

    public static func mountPoint(mountRoot: String, sysname: String) -> String {
        mountRoot + "/" + ObjectKeyTemplate.sanitize(sysname)
    }
}

/// The dock's view in production: the volume the dock unit's root step
/// mounted. It checks the kernel's mount table (the right device, read-only)
/// rather than trusting the folder, and never mounts or unmounts itself.
public struct PreparedMounts: VolumeMounting {
    let mountRoot: String

    public init(mountRoot: String) {
        self.mountRoot = mountRoot
    }

    func report(for device: DockedDevice) -> MountReport? {
        guard let report = SideFile.readJSON(MountReport.self, from: MountReport.path(mountRoot: mountRoot, sysname: device.sysname)),
              report.devnode == device.devnode else { return nil }
        return report
    }

    public func volume(for device: DockedDevice, at mountPoint: String) throws -> String {
        if let error = report(for: device)?.error {
            throw UploaderError(.io, error)
        }
        guard let entry = MountTable.current().entry(at: mountPoint) else {
            throw UploaderError(.io, "the camera's volume is not mounted at \(mountPoint): docks run as `systemctl start uploader-dock@\(SystemdUnitName.escape(device.sysname)).service`, which mounts it first (see `journalctl -u uploader-dock@\(SystemdUnitName.escape(device.sysname))`)")
        }
        guard entry.source == device.devnode else {
            throw UploaderError(.insecure, "\(mountPoint) holds \(entry.source), not \(device.devnode): nothing was read; unmount it (`umount \(mountPoint)`) and dock the camera again")
        }
        guard entry.options.split(separator: ",").contains("ro") else {
            throw UploaderError(.insecure, "\(mountPoint) is mounted writable (\(entry.options)): nothing was read; the dock only reads a read-only camera")
        }
        return mountPoint
    }

    public func mountOptions(_ mountPoint: String) -> String? {
        MountTable.current().entry(at: mountPoint)?.options
    }

    public func staleMountsReleased(for device: DockedDevice) -> [String] {
        report(for: device)?.released ?? []
    }
}

/// mount(2) with `ro,nosuid,nodev,noexec`: nothing on a camera can run, and
/// nothing the agent does can change the camera. Run as root by `uploader
/// mount` only. FAT, exFAT and NTFS volumes are given to the agent's user
/// (owner and group may read, nobody may write); ext volumes keep their own
/// permissions.
public struct KernelMounter: Sendable {
    static let options: [String: String] = [
        "vfat": "utf8,shortname=mixed",
        "exfat": "iocharset=utf8",
        "ntfs3": "iocharset=utf8",
        "ext4": "noload",
        "ext3": "noload",
        "ext2": "",
    ]
    static let ownedFileSystems: Set<String> = ["vfat", "exfat", "ntfs3"]

    /// The agent's user and group, who may read the volume.
    let owner: (uid: UInt32, gid: UInt32)

    public init(ownerUID: UInt32, ownerGID: UInt32) {
        owner = (ownerUID, ownerGID)
    }

    func data(for fileSystem: String) -> String? {
        guard let base = Self.options[fileSystem] else { return nil }
        guard Self.ownedFileSystems.contains(fileSystem) else { return base }
        return [base, "uid=\(owner.uid)", "gid=\(owner.gid)", "fmask=0337", "dmask=0227"].filter { !$0.isEmpty }.joined(separator: ",")
    }

    public func mount(_ device: DockedDevice, at mountPoint: String) throws -> String {
        guard let fileSystem = device.fileSystem else {
            throw UploaderError(.unknownDevice, "\(device.devnode) has no file system udev recognises; is the camera in storage (not MTP) mode?")
        }
        guard let data = data(for: fileSystem) else {
            throw UploaderError(.unknownDevice, "\(device.devnode) holds a \(fileSystem) file system, which uploader does not mount; supported: \(Self.options.keys.sorted().joined(separator: ", "))")
        }
        do { try Syscall.makeFolder(mountPoint, mode: 0o750) } catch {
            throw UploaderError(.io, "cannot create the mount point \(mountPoint)", cause: error.summary)
        }
        // A mount left by a run that died (or a camera pulled mid-copy) goes first.
        if MountTable.current().entry(at: mountPoint) != nil { try? Syscall.unmount(mountPoint, detach: true) }
        do {
            try Syscall.mount(device.devnode, at: mountPoint, fileSystem: fileSystem, flags: [.readOnly, .inert], data: data)
        } catch {
            throw UploaderError(.io, "cannot mount \(device.devnode) (\(fileSystem)) read-only at \(mountPoint): \(error == .notPermitted ? "uploader mount must run as root (uploader-dock@.service runs it so)" : "the camera may have been removed or its file system is damaged")",
                                cause: error.summary, underlying: .errno(error.rawValue))
        }
        return mountPoint
    }

    /// Makes a camera's mount writable (`writable`) or read-only again, keeping
    /// nosuid,nodev,noexec and the owner options: only the clearing step does
    /// this, and only between the two calls. Checks that `devnode` is what is
    /// mounted there first.
    public func remount(_ mountPoint: String, devnode: String, writable: Bool) throws {
        // Fails closed: a source or device that does not resolve is never "the same".
        guard let entry = MountTable.current().entry(at: mountPoint),
              entry.source == devnode || Syscall.resolvedPath(entry.source).map({ $0 == Syscall.resolvedPath(devnode) }) == true else {
            throw UploaderError(.io, "\(devnode) is not what is mounted at \(mountPoint): the camera was not cleared")
        }
        do {
            try Syscall.mount(devnode, at: mountPoint, fileSystem: entry.fileSystem, flags: [.remount, .inert, writable ? [] : .readOnly], data: nil)
        } catch {
            throw UploaderError(.io, "cannot remount \(mountPoint) \(writable ? "read-write" : "read-only")", cause: error.summary, underlying: .errno(error.rawValue))
        }
    }

    /// Unmounts (detaching a mount whose camera is gone) and removes the mount
    /// point. Returns whether something was mounted there.
    @discardableResult
    public func unmount(_ mountPoint: String) throws -> Bool {
        guard MountTable.current().entry(at: mountPoint) != nil else {
            Syscall.removeEmptyFolder(mountPoint)
            return false
        }
        do { try Syscall.unmount(mountPoint) } catch {
            // A pulled camera leaves a mount that cannot be unmounted cleanly: detach it.
            if (try? Syscall.unmount(mountPoint, detach: true)) == nil, error != .invalidArgument {
                throw UploaderError(.io, "cannot unmount \(mountPoint)", cause: error.summary, underlying: .errno(error.rawValue))
            }
        }
        Syscall.removeEmptyFolder(mountPoint)
        return true
    }

    /// Detaches mounts under `root` whose device is gone; returns their paths.
    public func releaseStaleMounts(under root: String) -> [String] {
        var released: [String] = []
        for entry in MountTable.current().entries(under: root) where !FileManager.default.fileExists(atPath: entry.source) {
            if (try? Syscall.unmount(entry.mountPoint, detach: true)) != nil {
                Syscall.removeEmptyFolder(entry.mountPoint)
                released.append(entry.mountPoint)
            }
        }
        return released
    }
}

/// For tests and for ingesting a camera somebody already mounted: "mounting"
/// a device means using the folder registered for its device node.
public struct FolderMounter: VolumeMounting {
    public var folders: [String: String]

    public init(folders: [String: String]) {
        self.folders = folders
    }

    public func volume(for device: DockedDevice, at mountPoint: String) throws -> String {
        guard let folder = folders[device.devnode] else {
            throw UploaderError(.notFound, "no folder stands in for \(device.devnode)")
        }
        return folder
    }
}

/// The only devices the dock unit's root steps act on: a partition of a USB
/// disk, named as udev names it and the polkit rule admits (`/dev/sdb1`):
/// never a path made of the unit's instance name (`/dev/../../etc`), a link
/// (`/dev/disk/by-label/sdb1`) or a whole disk (`/dev/sda`).
public enum DockPartition {
    /// `sdb1` for `/dev/sdb1`; a usage error for any other argument.
    public static func sysname(_ devnode: String) throws -> String {
        let rest = Array(devnode.utf8).dropFirst(7)
        let letters = rest.prefix { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") }
        let digits = rest.dropFirst(letters.count)
        guard devnode.hasPrefix("/dev/sd"), !letters.isEmpty, !digits.isEmpty, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            throw UploaderError(.usage, "\(DisplayText.escaped(devnode)) is not a partition of a USB disk (/dev/sdb1): the dock unit's root steps act on nothing else")
        }
        return String(devnode.dropFirst(5))
    }
}

extension UdevContext {
    /// `devnode` as udev knows it, checked to be a partition on a USB device.
    public func usbPartition(devnode: String) throws -> DockedDevice {
        let sysname = try DockPartition.sysname(devnode)
        guard let device = udev_device_new_from_subsystem_sysname(udev, "block", sysname) else {
            throw UploaderError(.notFound, "\(devnode) is not a block device udev knows: was the camera unplugged?")
        }
        defer { udev_device_unref(device) }
        guard udev_device_get_devtype(device).map({ String(cString: $0) }) == "partition" else {
            throw UploaderError(.unknownDevice, "\(devnode) is not a partition: the dock unit's root steps act on a camera's partition only")
        }
        guard let docked = Self.describe(device), docked.devnode == devnode else {
            throw UploaderError(.unknownDevice, "\(devnode) is not on a USB device; only USB cameras are docked")
        }
        return docked
    }
}

/// systemd unit names for a device: `uploader-dock@sdb1.service`.
public enum SystemdUnitName {
    /// systemd-escape for an instance name: letters, digits, ':', '_' and '.'
    /// (not leading) stay; '/' becomes '-'; anything else is `\xNN`.
    public static func escape(_ instance: String) -> String {
        var result = ""
        for (index, byte) in instance.utf8.enumerated() {
            let character = Character(UnicodeScalar(byte))
            if byte == UInt8(ascii: "/") {
                result.append("-")
            } else if byte < 0x80, character.isLetter || character.isNumber || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "_")
                        || (byte == UInt8(ascii: ".") && index > 0) {
                result.append(character)
            } else {
                result += String(format: "\\x%02x", byte)
            }
        }
        return result
    }

    public static func dock(sysname: String) -> String {
        "uploader-dock@\(escape(sysname)).service"
    }
}
