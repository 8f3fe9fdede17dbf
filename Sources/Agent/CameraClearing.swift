import Crypto
import Dock
import Foundation
import Ledger
import Platform
import Spool
import Synchronization
import SystemPackage
import Transport
import UploaderCore

/// What a dock proposes to delete from a camera: files the store verified,
/// each named with its path, the ledger's SHA-256 and the object the store
/// holds it under. Written by the (unprivileged) dock, so the dock unit's
/// root step trusts none of it: it hashes each file from the camera itself
/// and deletes it only when the store, asked by root, holds those bytes
/// under the planned key (`ClearingAuthority`).
public struct ClearPlan: Codable, Sendable, Equatable {
    public struct Item: Codable, Sendable, Equatable {
        public var id: Int64
        public var path: String
        public var size: Int64
        public var modifiedNanoseconds: Int64
        /// The ledger's SHA-256, for the custody log: the root step hashes the camera's bytes itself.
        public var sha256: String
        /// The object the store verified (the ledger's key), and its version when known:
        /// the root step asks the store itself whether it holds these bytes there.
        public var objectKey: String?
        public var versionID: String?
        /// The upload's part size when it had parts: how the store's composite checksum was made.
        public var partSize: Int64?

        public init(id: Int64, path: String, size: Int64, modifiedNanoseconds: Int64, sha256: String,
                    objectKey: String? = nil, versionID: String? = nil, partSize: Int64? = nil) {
            self.id = id
            self.path = path
            self.size = size
            self.modifiedNanoseconds = modifiedNanoseconds
            self.sha256 = sha256
            self.objectKey = objectKey
            self.versionID = versionID
            self.partSize = partSize
        }
    }

    public var serial: String
    public var devnode: String?
    public var createdAt: Date
    public var items: [Item]
    /// The dock asks for the camera's clock to be set: the root step writes only
    /// the clock file of the model it identified itself (the path here is shown, never used).
    public var setClock: ClockSetting?

    public struct ClockSetting: Codable, Sendable, Equatable {
        public var path: String
        public var format: String
        /// The camera keeps local time (else UTC).
        public var local: Bool

        public init(path: String, format: String, local: Bool) {
            self.path = path
            self.format = format
            self.local = local
        }
    }

    public init(serial: String, devnode: String?, createdAt: Date, items: [Item], setClock: ClockSetting?) {
        self.serial = serial
        self.devnode = devnode
        self.createdAt = createdAt
        self.items = items
        self.setClock = setClock
    }

}

extension ClearPlan {
    /// The plan as root reads it from the uploader user's spool: a regular
    /// file reached without a link at its name, of a plan's size, or nothing
    /// (never a link to another file, a FIFO that blocks, or /dev/zero).
    public static func readUntrusted(from path: String, limit: Int = 16 << 20) -> ClearPlan? {
        guard let fd = try? FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec, .noFollow, .nonBlocking]) else { return nil }
        defer { try? fd.close() }
        guard let info = try? Syscall.fstat(fd), info.st_mode & S_IFMT == S_IFREG, Int(info.st_size) <= limit else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var count = 0
        while count < bytes.count {
            guard let read = try? bytes.withUnsafeMutableBytes({ try fd.read(fromAbsoluteOffset: Int64(count), into: UnsafeMutableRawBufferPointer(rebasing: $0[count...])) }),
                  read > 0 else { break }
            count += read
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(ClearPlan.self, from: Data(bytes.prefix(count)))
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

/// What the root step goes by, all of it its own: the policy and the clock
/// file from the root-owned configuration and camera model (the device
/// identified through udev), and the store, asked with the configured
/// endpoint, bucket and credentials. Of the plan, only the names it proposes.
public struct ClearingAuthority {
    /// `[camera] clear`, or the model's `clear`.
    public var policy: CameraClearPolicy
    /// The model's settable clock file, if it has one.
    public var clock: ClearPlan.ClockSetting?
    /// Asked about every file before it is deleted; nil: nothing is deleted.
    public var store: S3Client?
    /// Why there is no store to ask.
    public var storeProblem: String?
    /// `[store] prefix`: where the store's checksum check is probed.
    public var storePrefix = ""

    public init(policy: CameraClearPolicy, clock: ClearPlan.ClockSetting?, store: S3Client?, storeProblem: String? = nil) {
        self.policy = policy
        self.clock = clock
        self.store = store
        self.storeProblem = storeProblem
    }

    /// As the root step makes it: from the configuration and camera model it
    /// loaded itself, with the store's credentials. Blocking (reads the credentials).
    public init(configuration: Configuration, model: CameraModel?) {
        policy = CameraClearing.policy(configuration, model: model)
        if let model, let clock = model.clock, clock.settable {
            self.clock = ClearPlan.ClockSetting(path: clock.path, format: clock.format, local: model.cameraClock == .local)
        }
        storePrefix = configuration.store.prefix
        do {
            store = S3Client(configuration: configuration, credentials: try Credentials.load(configuration.store.credentials))
        } catch {
            storeProblem = (error as? UploaderError)?.message ?? "\(error)"
        }
    }
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
                                        modifiedNanoseconds: file.sourceModifiedNanoseconds, sha256: sha256,
                                        objectKey: file.objectKey, versionID: file.storeVersionID, partSize: file.partSize))
        }
        return ClearPlan(serial: serial, devnode: devnode, createdAt: Date(), items: items, setClock: nil)
    }

    /// Deletes each planned file that the store verifiably holds: a regular
    /// file reached without links (by its raw name), same size and time,
    /// re-read from the device (its cached pages dropped first), whose SHA-256
    /// and size the store's own checksum for the planned object (and version)
    /// confirms; the very file hashed (same inode) is the one unlinked. Nothing
    /// when `authority`'s policy is not after-verified. Blocking.
    public static func apply(_ plan: ClearPlan, volume: String, authority: ClearingAuthority) -> ClearResult {
        var result = ClearResult(serial: plan.serial, finishedAt: Date(), items: [])
        guard authority.policy == .afterVerified else {
            result.error = "[camera] clear is \"\(authority.policy.rawValue)\" for this camera in the root-owned configuration: nothing was deleted or written (the plan was ignored)"
            return result
        }
        let root: FileDescriptor
        do {
            root = try FileDescriptor.open(FilePath(volume), .readOnly, options: [.directory, .closeOnExec])
        } catch {
            result.error = "cannot open the camera volume \(volume): \(error)"
            return result
        }
        defer { try? root.close() }
        // A store that takes any checksum it is sent holds only what the writer
        // claimed: its checksum confirms nothing, the object is read back (asked
        // once, by root; a store that cannot be asked is not trusted either).
        let trustChecksums = plan.items.isEmpty || ((try? authority.store?.probeChecksumEnforcement(under: authority.storePrefix).enforced) ?? false)
        for item in plan.items {
            let outcome = deleteIfHeld(item, root: root, authority: authority, trustChecksums: trustChecksums)
            result.items.append(ClearResult.Item(id: item.id, path: item.path, sha256: outcome.sha256 ?? item.sha256,
                                                 deleted: outcome.kept == nil, kept: outcome.kept))
        }
        if plan.setClock != nil, let clock = authority.clock {
            let text = FileNameTime.render(Date(), pattern: clock.format, timeZone: clock.local ? .current : TimeZone(identifier: "UTC")!)
            do {
                try writeClock(text + "\r\n", path: clock.path, root: root)
                result.clockSet = text
            } catch {
                result.clockError = (error as? UploaderError)?.message ?? "\(error)"
            }
        }
        result.finishedAt = Date()
        return result
    }

    /// Rewrites the camera's clock file in place: the one the camera has
    /// (reached without links, its name found whatever its case), a regular
    /// file; never created.
    static func writeClock(_ text: String, path: String, root: FileDescriptor) throws {
        let components = path.split(separator: "/").map(String.init)
        guard let name = components.last else { throw Errno.invalidArgument }
        let parent: FileDescriptor
        do {
            parent = components.count == 1 ? try Syscall.openAt(root, ".", O_RDONLY | O_DIRECTORY)
                : try Syscall.openBeneath(root, components.dropLast().joined(separator: "/"), directory: true, ignoringCase: true)
        } catch {
            throw UploaderError(.notFound, "the camera has no clock file \(path) (its folder: \(error)): none is created")
        }
        defer { try? parent.close() }
        // FAT ignores case: write the file the camera has, whatever case it gave the name.
        guard let existing = try Syscall.directoryEntries(parent).first(where: { $0.lowercased() == name.lowercased() }) else {
            throw UploaderError(.notFound, "the camera has no clock file \(path): none is created")
        }
        let fd = try Syscall.openAt(parent, existing, O_WRONLY | O_NONBLOCK)
        defer { try? fd.close() }
        guard try Syscall.fstat(fd).st_mode & S_IFMT == S_IFREG else {
            throw UploaderError(.insecure, "the clock file \(path) on the camera is not a regular file: not written")
        }
        try fd.resize(to: 0)
        _ = try fd.writeAll(Array(text.utf8))
        try Syscall.fsync(fd)
    }

    /// The camera's bytes as the store's checksum is made of them: the whole
    /// file's SHA-256 and, for an upload in parts of `partSize`, each part's.
    static func deviceHashes(_ fd: FileDescriptor, partSize: Int64?) throws -> (size: Int64, whole: SHA256Digest, parts: [SHA256Digest]) {
        let reader = PlainFileReader(fd)
        let whole = SHA256Hasher()
        if let partSize, partSize <= 0 { throw Errno.invalidArgument }
        let parts = partSize.map(PartDigests.init)
        var size: Int64 = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try reader.read(into: $0, at: size) }
            if count == 0 { break }
            buffer.withUnsafeBytes { bytes in
                let chunk = UnsafeRawBufferPointer(rebasing: bytes.prefix(count))
                whole.update(chunk)
                parts?.update(chunk)
            }
            size += Int64(count)
        }
        return (size, whole.finalize(), parts?.finalize() ?? [])
    }

    /// Whether the store holds an object under `key` (that version, when
    /// given) with exactly these bytes: its own checksum, compared as upload
    /// verification compares it. Asked by the caller (the root step), not taken from the plan.
    static func storeHolds(_ read: (size: Int64, whole: SHA256Digest, parts: [SHA256Digest]), key: String, versionID: String?,
                           store: S3Client, trustChecksums: Bool) throws -> Bool {
        let head = try versionID.map { try store.headObject(key: key, versionID: $0) } ?? store.headObject(key: key)
        guard let head else { return false }
        let expected = UploadRunner.expectedChecksum(partDigests: read.parts, whole: read.whole)
        return try UploadRunner.storeHolds(head, size: read.size, sha256: read.whole.hex, expected: expected, trustChecksum: trustChecksums) {
            // A store that keeps no checksum: that version read back and hashed.
            let hasher = SHA256Hasher()
            var size: Int64 = 0
            try store.getObject(key: key, versionID: versionID) { bytes in
                hasher.update(bytes)
                size += Int64(bytes.count)
            }
            return (size, hasher.finalize())
        }
    }

    /// `kept` nil when deleted; otherwise why the file stays on the camera.
    /// `sha256`: what the camera's bytes hashed to, when they were read.
    static func deleteIfHeld(_ item: ClearPlan.Item, root: FileDescriptor, authority: ClearingAuthority,
                             trustChecksums: Bool = true) -> (kept: String?, sha256: String?) {
        guard let store = authority.store else {
            return ("the store cannot be asked whether it holds it (\(authority.storeProblem ?? "no store")): nothing is deleted unconfirmed", nil)
        }
        guard let key = item.objectKey, !key.isEmpty else { return ("the plan names no object in the store for it", nil) }
        let components = item.path.split(separator: "/").map(String.init)
        guard let name = components.last else { return ("empty path", nil) }
        let parent: FileDescriptor
        do {
            parent = components.count == 1 ? try Syscall.openAt(root, ".", O_RDONLY | O_DIRECTORY)
                : try Syscall.openBeneath(root, components.dropLast().joined(separator: "/"), directory: true)
        } catch {
            return ("its folder cannot be reached without following a link (\(error))", nil)
        }
        defer { try? parent.close() }
        // Every call below takes the name's raw bytes (Syscall.rawName), never its displayed text.
        let fd: FileDescriptor
        do {
            fd = try Syscall.openAt(parent, name, O_RDONLY | O_NONBLOCK)
        } catch {
            return ("it is gone from the camera or is not a plain file (\(error))", nil)
        }
        defer { try? fd.close() }
        guard let before = try? Syscall.fstat(fd), before.st_mode & S_IFMT == S_IFREG else { return ("it is not a regular file", nil) }
        guard Int64(before.st_size) == item.size,
              Int64(before.st_mtim.tv_sec) * 1_000_000_000 + Int64(before.st_mtim.tv_nsec) == item.modifiedNanoseconds else {
            return ("its size or time changed since the ledger recorded it", nil)
        }
        // From the device, not the page cache: the bytes on the camera are what is checked.
        try? Syscall.dropCachedPages(fd)
        guard let read = try? deviceHashes(fd, partSize: item.partSize), read.size == Int64(before.st_size) else {
            return ("it could not be read back", nil)
        }
        let held: Bool
        do {
            held = try storeHolds(read, key: key, versionID: item.versionID, store: store, trustChecksums: trustChecksums)
        } catch {
            return ("the store could not confirm \(key) (\((error as? UploaderError)?.message ?? "\(error)"))", read.whole.hex)
        }
        guard held else {
            return ("it reads back with another SHA-256 than the one the store verified (the store holds no object with SHA-256 \(read.whole.hex) and size \(read.size) under \(key)\(item.versionID.map { " version \($0)" } ?? ""))", read.whole.hex)
        }
        // The name must still lead to the file just hashed.
        guard let now = try? Syscall.fstatAt(parent, name), now.st_ino == before.st_ino, now.st_dev == before.st_dev else {
            return ("it was replaced while it was being checked", read.whole.hex)
        }
        do {
            try Syscall.unlinkAt(parent, name)
        } catch {
            return ("deleting it failed (\(error.summary))", read.whole.hex)
        }
        try? Syscall.fsync(parent)
        return (nil, read.whole.hex)
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
