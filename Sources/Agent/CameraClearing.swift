import Crypto
import Dock
import Foundation
import Ledger
import Platform
import Synchronization
import SystemPackage
import UploaderCore

/// What a dock may delete from a camera: files the store verified, each
/// named with the identity and SHA-256 the ledger holds for it. Written by
/// the (unprivileged) dock, carried out by the dock unit's root step, which
/// checks every file again before deleting it.
public struct ClearPlan: Codable, Sendable, Equatable {
    public struct Item: Codable, Sendable, Equatable {
        public var id: Int64
        public var path: String
        public var size: Int64
        public var modifiedNanoseconds: Int64
        public var sha256: String

        public init(id: Int64, path: String, size: Int64, modifiedNanoseconds: Int64, sha256: String) {
            self.id = id
            self.path = path
            self.size = size
            self.modifiedNanoseconds = modifiedNanoseconds
            self.sha256 = sha256
        }
    }

    public var serial: String
    public var devnode: String?
    public var createdAt: Date
    public var items: [Item]
    /// The model's settable clock file: written with the dock's time in the same step.
    public var setClock: ClockSetting?

    public struct ClockSetting: Codable, Sendable, Equatable {
        public var path: String
        public var format: String
        /// The camera keeps local time (else UTC).
        public var local: Bool
    }

}

/// What the root step did with each item of a plan.
public struct ClearResult: Codable, Sendable, Equatable {
    public struct Item: Codable, Sendable, Equatable {
        public var id: Int64
        public var path: String
        public var sha256: String
        public var deleted: Bool
        /// Why it was kept (nil when deleted).
        public var kept: String?
    }

    public var serial: String
    public var finishedAt: Date
    public var items: [Item]
    /// The volume could not be made writable (or back): nothing was deleted, or what was is listed.
    public var error: String?
    /// What the camera's clock file was set to (the dock's time), or why it was not.
    public var clockSet: String?
    public var clockError: String?

    public init(serial: String, finishedAt: Date, items: [Item], error: String? = nil) {
        self.serial = serial
        self.finishedAt = finishedAt
        self.items = items
        self.error = error
    }

    /// Beside the mount report, in the root-owned mount root: the dock's record step reads it.
    public static func path(mountRoot: String, sysname: String) -> String { MountReport.besidePath(mountRoot: mountRoot, sysname: sysname, kind: "clear") }
}

public enum CameraClearing {
    /// The policy for a camera of `model`: the model's `clear`, else the site's.
    public static func policy(_ configuration: Configuration, model: CameraModel?) -> CameraClearPolicy {
        model?.clear ?? configuration.cameraClear
    }

    /// The files of `serial` to delete from the camera at `volume`: verified
    /// in the store, and still on the camera under the same path, size and
    /// time the ledger recorded (a file replaced since stays). Blocking.
    public static func plan(serial: String, volume: String, ledger: Ledger, devnode: String? = nil) throws -> ClearPlan {
        let root = try FileDescriptor.open(FilePath(volume), .readOnly, options: [.directory, .closeOnExec])
        defer { try? root.close() }
        var items: [ClearPlan.Item] = []
        for file in try ledger.clearableFiles(serial: serial) {
            guard let sha256 = file.sha256, file.storeChecksum != nil, file.state == .verified else { continue }
            guard let fd = try? Syscall.openBeneath(root, file.sourcePath) else { continue }
            defer { try? fd.close() }
            guard let info = try? Syscall.fstat(fd), info.st_mode & S_IFMT == S_IFREG, Int64(info.st_size) == file.sourceSize,
                  Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec) == file.sourceModifiedNanoseconds else { continue }
            items.append(ClearPlan.Item(id: file.id, path: file.sourcePath, size: file.sourceSize,
                                        modifiedNanoseconds: file.sourceModifiedNanoseconds, sha256: sha256))
        }
        return ClearPlan(serial: serial, devnode: devnode, createdAt: Date(), items: items, setClock: nil)
    }

    /// Deletes each planned file that is still exactly what the plan says:
    /// a regular file reached without links, same size and time, and re-read
    /// from the device (its cached pages dropped first) to the same SHA-256;
    /// the very file hashed (same inode) is the one unlinked. Blocking.
    public static func apply(_ plan: ClearPlan, volume: String) -> ClearResult {
        var result = ClearResult(serial: plan.serial, finishedAt: Date(), items: [])
        let root: FileDescriptor
        do {
            root = try FileDescriptor.open(FilePath(volume), .readOnly, options: [.directory, .closeOnExec])
        } catch {
            result.error = "cannot open the camera volume \(volume): \(error)"
            return result
        }
        defer { try? root.close() }
        for item in plan.items {
            let kept = deleteIfUnchanged(item, root: root)
            result.items.append(ClearResult.Item(id: item.id, path: item.path, sha256: item.sha256, deleted: kept == nil, kept: kept))
        }
        if let clock = plan.setClock {
            let text = FileNameTime.render(Date(), pattern: clock.format, timeZone: clock.local ? .current : TimeZone(identifier: "UTC")!)
            do {
                try writeClock(text + "\r\n", path: clock.path, root: root)
                result.clockSet = text
            } catch {
                result.clockError = "\(error)"
            }
        }
        result.finishedAt = Date()
        return result
    }

    /// Replaces the camera's clock file (reached without links, its name found whatever its case).
    static func writeClock(_ text: String, path: String, root: FileDescriptor) throws {
        let components = path.split(separator: "/").map(String.init)
        guard let name = components.last else { throw Errno.invalidArgument }
        let parent = components.count == 1 ? try Syscall.openAt(root, ".", O_RDONLY | O_DIRECTORY)
            : try Syscall.openBeneath(root, components.dropLast().joined(separator: "/"), directory: true, ignoringCase: true)
        defer { try? parent.close() }
        // FAT ignores case: write the file the camera has, whatever case it gave the name.
        let existing = (try? Syscall.directoryEntries(parent))?.first { $0.lowercased() == name.lowercased() } ?? name
        let fd = try Syscall.openAt(parent, existing, O_WRONLY | O_CREAT | O_TRUNC, permissions: 0o644)
        defer { try? fd.close() }
        _ = try fd.writeAll(Array(text.utf8))
        try Syscall.fsync(fd)
    }

    /// Nil when deleted; otherwise why the file stays on the camera.
    static func deleteIfUnchanged(_ item: ClearPlan.Item, root: FileDescriptor) -> String? {
        let components = item.path.split(separator: "/").map(String.init)
        guard let name = components.last else { return "empty path" }
        let parent: FileDescriptor
        do {
            parent = components.count == 1 ? try Syscall.openAt(root, ".", O_RDONLY | O_DIRECTORY)
                : try Syscall.openBeneath(root, components.dropLast().joined(separator: "/"), directory: true)
        } catch {
            return "its folder cannot be reached without following a link (\(error))"
        }
        defer { try? parent.close() }
        let fd: FileDescriptor
        do {
            fd = try Syscall.openAt(parent, name, O_RDONLY)
        } catch {
            return "it is gone from the camera or is not a plain file (\(error))"
        }
        defer { try? fd.close() }
        guard let before = try? Syscall.fstat(fd), before.st_mode & S_IFMT == S_IFREG else { return "it is not a regular file" }
        guard Int64(before.st_size) == item.size,
              Int64(before.st_mtim.tv_sec) * 1_000_000_000 + Int64(before.st_mtim.tv_nsec) == item.modifiedNanoseconds else {
            return "its size or time changed since the ledger recorded it"
        }
        // From the device, not the page cache: the bytes on the camera are what is checked.
        try? Syscall.dropCachedPages(fd)
        guard let read = try? FileHashes.of(PlainFileReader(fd), sha512: false) else { return "it could not be read back" }
        guard read.size == item.size, read.sha256 == item.sha256 else {
            return "it reads back with another SHA-256 than the one the store verified"
        }
        // The name must still lead to the file just hashed.
        guard let now = try? Syscall.fstatAt(parent, name), now.st_ino == before.st_ino, now.st_dev == before.st_dev else {
            return "it was replaced while it was being checked"
        }
        do {
            try Syscall.unlinkAt(parent, name)
        } catch {
            return "deleting it failed (\(error.summary))"
        }
        try? Syscall.fsync(parent)
        return nil
    }

    /// Records each deletion (and each file kept, with why) as a custody event.
    public static func record(_ result: ClearResult, ledger: Ledger) throws -> (deleted: Int, kept: Int) {
        var counts = (deleted: 0, kept: 0)
        for item in result.items {
            if item.deleted {
                try ledger.recordCameraCleared(item.id, message: "deleted from camera \(result.serial): \(DisplayText.escaped(item.path)) (SHA-256 \(item.sha256) verified in the store and re-read from the camera)")
                counts.deleted += 1
            } else {
                try ledger.note(item.id, level: .warning, kind: .cameraKept, "kept on camera \(result.serial): \(DisplayText.escaped(item.path)): \(item.kept ?? "?")")
                counts.kept += 1
            }
        }
        if let error = result.error {
            try ledger.log(EventDraft(.error, .cameraKept, serial: result.serial, "clearing camera \(result.serial) stopped: \(error)"))
        }
        if let time = result.clockSet {
            try ledger.log(EventDraft(.notice, .cameraClock, serial: result.serial, "set camera \(result.serial)'s clock to the dock's time, \(time) (it takes it at the next power-on)"))
        } else if let error = result.clockError {
            try ledger.log(EventDraft(.warning, .cameraClock, serial: result.serial, "could not set camera \(result.serial)'s clock: \(error)"))
        }
        return counts
    }
}


/// Same-dock clearing: a camera still docked when an upload run verified
/// some of its files is docked again (its dock unit started once more), so
/// the unit's clearing steps delete them without waiting for the next dock.
/// Each look considers only the files verified since the last one: a file
/// kept on the camera (changed there) does not have it docked again and again.
public final class RedockForClearing: Sendable {
    let lastLook: Mutex<Date>

    public init(startedAt: Date = Date()) { lastLook = Mutex(startedAt) }

    /// The connected cameras to dock again now, with the serial and how many
    /// files of it may go. `volumes` (udev) is asked only when the policy is on
    /// and files were verified since the last look. Blocking (SQLite, udev).
    public func camerasToRedock(_ volumes: () throws -> [DockedDevice], models: CameraModels, configuration: Configuration, ledger: Ledger,
                                now: Date = Date()) -> [(device: DockedDevice, serial: String, files: Int)] {
        guard configuration.cameraClear == .afterVerified || models.models.contains(where: { $0.clear == .afterVerified }) else { return [] }
        let since = lastLook.withLock { look in defer { look = now }; return look }
        guard let serials = try? Set(ledger.clearableSerials(verifiedAfter: since)), !serials.isEmpty,
              let connected = try? volumes() else { return [] }
        return connected.compactMap { device in
            guard let model = models.model(for: device.id), CameraClearing.policy(configuration, model: model) == .afterVerified,
                  case .usb = model.serialSource, let serial = device.usbSerial, serials.contains(serial),
                  let files = try? ledger.clearableFiles(serial: serial) else { return nil }
            return (device, serial, files.count)
        }
    }
}
