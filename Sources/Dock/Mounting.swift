import Foundation
import SystemPackage
import Platform
import UploaderCore

/// Puts a camera's file system somewhere it can be read. The real one calls
/// mount(2); tests use a folder, since mounting cannot be emulated without root.
public protocol VolumeMounting: Sendable {
    /// Mounts the device read-only and returns the folder to ingest.
    func mount(_ device: DockedDevice, at mountPoint: String) throws -> String
    func unmount(_ mountPoint: String) throws
    /// Detaches mounts under `root` whose device is gone; returns their paths.
    func releaseStaleMounts(under root: String) -> [String]
    /// The kernel's options for a mount, for the custody log.
    func mountOptions(_ mountPoint: String) -> String?
}

extension VolumeMounting {
    public func releaseStaleMounts(under root: String) -> [String] { [] }
    public func mountOptions(_ mountPoint: String) -> String? { nil }
}

/// mount(2) with `ro,nosuid,nodev,noexec`: nothing on a camera can run,
/// and nothing the agent does can change the camera.
public struct KernelMounter: VolumeMounting {
    static let options: [String: String] = [
        "vfat": "utf8,shortname=mixed",
        "exfat": "iocharset=utf8",
        "ntfs3": "iocharset=utf8",
        "ext4": "noload",
        "ext3": "noload",
        "ext2": "",
    ]

    public init() {}

    public func mount(_ device: DockedDevice, at mountPoint: String) throws -> String {
        guard let fileSystem = device.fileSystem else {
            throw UploaderError(.unknownDevice, "\(device.devnode) has no file system udev recognises; is the camera in storage (not MTP) mode?")
        }
        guard let data = Self.options[fileSystem] else {
            throw UploaderError(.unknownDevice, "\(device.devnode) holds a \(fileSystem) file system, which uploader does not mount; supported: \(Self.options.keys.sorted().joined(separator: ", "))")
        }
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        // A mount left by a run that died (or a camera pulled mid-copy) goes first.
        if Self.isMountPoint(mountPoint) { _ = umount2(mountPoint, Int32(MNT_DETACH)) }
        let flags = UInt(MS_RDONLY) | UInt(MS_NOSUID) | UInt(MS_NODEV) | UInt(MS_NOEXEC)
        if Glibc.mount(device.devnode, mountPoint, fileSystem, flags, data) != 0 {
            let error = Errno(rawValue: errno)
            throw UploaderError(.io, "cannot mount \(device.devnode) (\(fileSystem)) read-only at \(mountPoint): \(error == .notPermitted ? "uploader dock must run as root (it does under systemd)" : "the camera may have been removed")",
                                cause: error.summary)
        }
        return mountPoint
    }

    public func unmount(_ mountPoint: String) throws {
        if umount2(mountPoint, 0) != 0 {
            let error = Errno(rawValue: errno)
            // A pulled camera leaves a mount that cannot be unmounted cleanly: detach it.
            if umount2(mountPoint, Int32(MNT_DETACH)) != 0, error != .invalidArgument {
                throw UploaderError(.io, "cannot unmount \(mountPoint)", cause: error.summary)
            }
        }
        try? FileManager.default.removeItem(atPath: mountPoint)
    }

    public func releaseStaleMounts(under root: String) -> [String] {
        var released: [String] = []
        for entry in MountTable.current().entries(under: root) where !FileManager.default.fileExists(atPath: entry.source) {
            if umount2(entry.mountPoint, Int32(MNT_DETACH)) == 0 {
                try? FileManager.default.removeItem(atPath: entry.mountPoint)
                released.append(entry.mountPoint)
            }
        }
        return released
    }

    public func mountOptions(_ mountPoint: String) -> String? {
        MountTable.current().entry(at: mountPoint)?.options
    }

    /// Whether `path` is a mount point, from the kernel's mount table.
    public static func isMountPoint(_ path: String) -> Bool {
        MountTable.current().entry(at: path) != nil
    }
}

/// For tests and for ingesting a camera somebody already mounted: "mounting"
/// a device means using the folder registered for its device node.
public struct FolderMounter: VolumeMounting {
    public var folders: [String: String]

    public init(folders: [String: String]) {
        self.folders = folders
    }

    public func mount(_ device: DockedDevice, at mountPoint: String) throws -> String {
        guard let folder = folders[device.devnode] else {
            throw UploaderError(.notFound, "no folder stands in for \(device.devnode)")
        }
        return folder
    }

    public func unmount(_ mountPoint: String) throws {}
}
