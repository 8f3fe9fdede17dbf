import Foundation
import Platform
import UploaderCore
#if canImport(Glibc)
import Glibc
#endif
import SystemPackage


/// The local spool: `tmp/` holds copies being written (never visible as
/// evidence), `objects/` holds copies that were fsynced and verified.
/// A file reaches `objects/` only by `rename`, so it is whole or absent.
public struct Spool: Sendable {
    public let root: String
    public var temporaryDirectory: String { root + "/tmp" }
    public var objectsDirectory: String { root + "/objects" }
    /// The dock's clearing plans, one per device, for the dock unit's root step.
    public var clearDirectory: String { root + "/clear" }

    public init(root: String) {
        self.root = root
    }

    /// Creates the folders (0750: evidence is not world-readable).
    public func prepare() throws {
        for directory in [root, temporaryDirectory, objectsDirectory, root + "/locks", clearDirectory] {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o750])
            } catch {
                throw UploaderError(.io, "cannot create the spool folder \(directory): check [paths] spool in the configuration and that this user may write there\(FolderSafety.readOnlyHint(directory))",
                                    cause: "\(error)")
            }
        }
        for directory in [root, temporaryDirectory, objectsDirectory, root + "/locks", clearDirectory] {
            try FolderSafety.check(directory, what: "spool folder")
        }
    }

    public func objectPath(_ spoolName: String) -> String { objectsDirectory + "/" + spoolName }

    /// Where the dock leaves the clearing plan of the camera on device `sysname`.
    public func clearPlanPath(sysname: String) -> String { clearDirectory + "/\(ObjectKeyTemplate.sanitize(sysname)).plan.json" }

    /// The spool name of a ledger row: its id and a sanitized extension, never
    /// anything else from the camera, so no camera file name reaches a path.
    public static func spoolName(fileID: Int64, sourcePath: String) -> String {
        let name = sourcePath.split(separator: "/").last.map(String.init) ?? ""
        let ext = name.contains(".") ? String(name.split(separator: ".").last ?? "") : ""
        let safeExt = ObjectKeyTemplate.sanitize(ext.lowercased())
        return ext.isEmpty || safeExt.contains(".") ? "\(fileID)" : "\(fileID).\(safeExt)"
    }

    /// The lock that keeps creating a temporary file (create, then lock it)
    /// apart from the sweep of abandoned ones: without it, a sweep could see
    /// a file in the instant between its creation and its lock.
    var temporaryGuardPath: String { root + "/locks/tmp.guard" }

    /// Deletes temporary files left by a process that died mid-copy. A file
    /// another live process is writing is locked, and left alone.
    @discardableResult
    public func discardAbandonedTemporaryFiles() throws -> [String] {
        let directory = try FileDescriptor.open(FilePath(temporaryDirectory), .readOnly, options: [.directory, .closeOnExec])
        defer { try? directory.close() }
        let guardFile = try Syscall.openAt(FileDescriptor(rawValue: AT_FDCWD), temporaryGuardPath, O_RDONLY | O_CREAT, permissions: 0o640)
        defer { try? guardFile.close() }
        try Syscall.lock(guardFile, exclusive: true)
        var removed: [String] = []
        for name in try Syscall.directoryEntries(directory) {
            guard let fd = try? Syscall.openAt(directory, name, O_RDONLY) else { continue }
            defer { try? fd.close() }
            if try Syscall.tryLockExclusive(fd) {
                try Syscall.unlinkAt(directory, name)
                removed.append(name)
            }
        }
        return removed
    }

    /// Creates a temporary file that did not exist (`O_EXCL`) and locks it
    /// before anyone can take it for abandoned. A leftover of the same name
    /// that no live process holds is replaced; one that is held means another
    /// process copies the same file right now (`.busy`).
    public func createTemporaryFile(_ name: String, in directory: FileDescriptor) throws -> FileDescriptor {
        let guardFile = try Syscall.openAt(FileDescriptor(rawValue: AT_FDCWD), temporaryGuardPath, O_RDONLY | O_CREAT, permissions: 0o640)
        defer { try? guardFile.close() }
        try Syscall.lock(guardFile, exclusive: false)
        for _ in 0..<2 {
            let created: FileDescriptor? = try Self.createExclusive(name, in: directory)
            if let created {
                if try Syscall.tryLockExclusive(created) { return created }
                try? created.close()
                break
            }
            let leftover = try Syscall.openAt(directory, name, O_RDONLY)
            let abandoned = try Syscall.tryLockExclusive(leftover)
            if abandoned { try Syscall.unlinkAt(directory, name) }
            try? leftover.close()
            if !abandoned { break }
        }
        throw UploaderError(.busy, "another uploader process is copying the same camera file (\(name)); it is left to that process")
    }

    /// Creates `name` only if it does not exist; nil when it does.
    static func createExclusive(_ name: String, in directory: FileDescriptor) throws(Errno) -> FileDescriptor? {
        switch Result(catching: { () throws(Errno) -> FileDescriptor in
            try Syscall.openAt(directory, name, O_WRONLY | O_CREAT | O_EXCL, permissions: 0o640)
        }) {
        case .success(let fd): return fd
        case .failure(.fileExists): return nil
        case .failure(let error): throw error
        }
    }

    /// Deletes one spool copy, and nothing else: `name` must be a plain file
    /// name (no folder, no link) of a regular file directly in `objects/`.
    /// Returns false when it was already gone.
    @discardableResult
    public func removeObject(_ name: String) throws -> Bool {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != "..", !name.contains("\0") else {
            throw UploaderError(.insecure, "refusing to delete \"\(name)\" from the spool: the ledger names no plain spool file; check the ledger's integrity with `uploader log --verify`")
        }
        let directory: FileDescriptor
        switch Result(catching: { () throws(Errno) -> FileDescriptor in
            try Syscall.openAt(FileDescriptor(rawValue: AT_FDCWD), objectsDirectory, O_RDONLY | O_DIRECTORY)
        }) {
        case .success(let fd): directory = fd
        case .failure(let error):
            throw UploaderError(.io, "cannot open the spool folder \(objectsDirectory) (it must be a folder, not a link)", cause: error.summary, underlying: .errno(error.rawValue))
        }
        defer { try? directory.close() }
        let info: stat
        switch Result(catching: { () throws(Errno) -> stat in try Syscall.fstatAt(directory, name) }) {
        case .success(let found): info = found
        case .failure(.noSuchFileOrDirectory): return false
        case .failure(let error):
            throw UploaderError(.io, "cannot inspect the spool copy \(name)", cause: error.summary, underlying: .errno(error.rawValue))
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw UploaderError(.insecure, "refusing to delete \(objectsDirectory)/\(name): it is not a regular file (someone replaced the spool copy); look at it, then run `uploader purge` again")
        }
        switch Result(catching: { () throws(Errno) in try Syscall.unlinkAt(directory, name) }) {
        case .success: break
        case .failure(.noSuchFileOrDirectory): return false
        case .failure(let error):
            throw UploaderError(.io, "cannot delete the spool copy \(name)", cause: error.summary, underlying: .errno(error.rawValue))
        }
        return true
    }

    /// Holds the per-camera lock: one ingest of a camera at a time, across
    /// every process on this PC. Waits for another holder (polling `stop`).
    /// The lock lasts until the returned descriptor is closed.
    public func lockCamera(_ serial: String, stop: (@Sendable () -> Bool)? = nil) throws -> FileDescriptor {
        let locks = root + "/locks"
        // A hash keeps any serial (slashes, dots, long) a plain file name.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in serial.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let name = "camera-" + String(hash, radix: 16) + ".lock"
        let directory = try FileDescriptor.open(FilePath(locks), .readOnly, options: [.directory, .closeOnExec])
        defer { try? directory.close() }
        let fd = try Syscall.openAt(directory, name, O_RDONLY | O_CREAT, permissions: 0o640)
        while try !Syscall.tryLockExclusive(fd) {
            if stop?() == true {
                try? fd.close()
                throw UploaderError(.sourceVanished, "stopped while waiting for another process to finish with camera \(serial)")
            }
            usleep(100_000)
        }
        return fd
    }

    /// An exclusive lock on `locks/NAME` if nobody holds it; nil if another
    /// process (or this one) does. Released by closing the descriptor, or by
    /// the kernel when the holder dies.
    public func tryLock(_ name: String) throws -> FileDescriptor? {
        let directory = try FileDescriptor.open(FilePath(root + "/locks"), .readOnly, options: [.directory, .closeOnExec])
        defer { try? directory.close() }
        let fd = try Syscall.openAt(directory, ObjectKeyTemplate.sanitize(name), O_RDONLY | O_CREAT, permissions: 0o640)
        guard try Syscall.tryLockExclusive(fd) else {
            try? fd.close()
            return nil
        }
        return fd
    }

    /// One of `count` slots shared by every process on this PC (at most
    /// `count` holders at once). Waits for a free one, polling `stop`; calls
    /// `waiting` once if it has to wait.
    public func lockSlot(_ family: String, count: Int, stop: (@Sendable () -> Bool)? = nil, waiting: () -> Void = {}) throws -> FileDescriptor {
        var announced = false
        while true {
            for slot in 0..<max(1, count) {
                if let fd = try tryLock("\(family)-slot-\(slot).lock") { return fd }
            }
            if stop?() == true {
                throw UploaderError(.sourceVanished, "stopped while waiting for a free \(family) slot")
            }
            if !announced {
                announced = true
                waiting()
            }
            usleep(200_000)
        }
    }

    public func space() -> (available: Int64, total: Int64)? {
        try? Syscall.filesystemSpace(root)
    }
}
