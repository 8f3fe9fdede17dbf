import Foundation
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

    public init(root: String) {
        self.root = root
    }

    /// Creates the folders (0750: evidence is not world-readable).
    public func prepare() throws {
        for directory in [root, temporaryDirectory, objectsDirectory] {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o750])
            } catch {
                throw UploaderError(.io, "cannot create the spool folder \(directory): check [paths] spool in the configuration and that this user may write there",
                                    cause: "\(error)")
            }
        }
    }

    public func objectPath(_ spoolName: String) -> String { objectsDirectory + "/" + spoolName }

    /// The spool name of a ledger row: its id and a sanitized extension, never
    /// anything else from the camera, so no camera file name reaches a path.
    public static func spoolName(fileID: Int64, sourcePath: String) -> String {
        let name = sourcePath.split(separator: "/").last.map(String.init) ?? ""
        let ext = name.contains(".") ? String(name.split(separator: ".").last ?? "") : ""
        let safeExt = ObjectKeyTemplate.sanitize(ext.lowercased())
        return ext.isEmpty || safeExt.contains(".") ? "\(fileID)" : "\(fileID).\(safeExt)"
    }

    /// Deletes temporary files left by a process that died mid-copy. A file
    /// another live process is writing is locked, and left alone.
    @discardableResult
    public func discardAbandonedTemporaryFiles() throws -> [String] {
        let directory = try FileDescriptor.open(FilePath(temporaryDirectory), .readOnly, options: [.directory, .closeOnExec])
        defer { try? directory.close() }
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

    public func space() -> (available: Int64, total: Int64)? {
        try? Syscall.filesystemSpace(root)
    }
}
