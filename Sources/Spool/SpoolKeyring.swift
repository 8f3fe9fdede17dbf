import Crypto
import Foundation
import Platform
import SystemPackage
import UploaderCore

/// The keys that seal spool copies: a text file of `id hex-key added-at`
/// lines, mode 0600, owned by the agent's user. The last line seals new
/// files; every earlier one still opens the files sealed with it, and goes
/// once no spool copy needs it. Made at first use. systemd's
/// `LoadCredential=spool-keys:…` (or `LoadCredentialEncrypted=`), found in
/// `$CREDENTIALS_DIRECTORY/spool-keys`, wins when present (read-only: rotate
/// the file it was made from).
public struct SpoolKeyring: Sendable {
    public struct Entry: Sendable, Equatable {
        public var key: SpoolKey
        public var addedAt: Date
    }

    public let path: String
    public let entries: [Entry]
    /// Whether it came from systemd's credential (and so cannot be rotated here).
    public let isCredential: Bool

    public var current: SpoolKey { entries.last!.key }

    public func key(id: String) -> SpoolKey? { entries.first { $0.key.id == id }?.key }

    static let credentialName = "spool-keys"
    static let preamble = """
        # uploader spool keys: AES-256 keys that seal the spool copies, one per line (id, key in hex, added).
        # The last line seals new files; earlier lines open older ones. Keep this file secret and backed up:
        # a spool copy whose key is lost can no longer be read (its upload fails; dock the camera again).

        """

    /// The keyring, made with one fresh key if there is none yet.
    public static func loadOrCreate(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SpoolKeyring {
        if let existing = try existing(path: path, environment: environment) { return existing }
        // Two first runs at once (two docks of one daemon, too) keep one keyring.
        try SideFile.createOnce(path, contents: Data(text([Entry(key: try SpoolKey.random(), addedAt: Date())]).utf8), mode: 0o600, what: "the spool keyring")
        return try read(path, isCredential: false)
    }

    /// The keyring if there is one; never creates it.
    public static func existing(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SpoolKeyring? {
        if let credentials = environment["CREDENTIALS_DIRECTORY"], FileManager.default.fileExists(atPath: credentials + "/" + credentialName) {
            return try read(credentials + "/" + credentialName, isCredential: true)
        }
        return FileManager.default.fileExists(atPath: path) ? try read(path, isCredential: false) : nil
    }

    static func read(_ path: String, isCredential: Bool) throws -> SpoolKeyring {
        var info = stat()
        if !isCredential, stat(path, &info) == 0, info.st_mode & 0o077 != 0 {
            throw UploaderError(.insecure, "the spool keyring \(path) is readable by other users: run `chmod 600 \(path)`")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw UploaderError(.io, "cannot read the spool keyring \(path): it must belong to the agent's user, mode 0600")
        }
        var entries: [Entry] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard fields.count == 3, let bytes = Hex.decode(fields[1]), bytes.count == 32, let added = Timestamps.parse(fields[2]),
                  SpoolKey(bytes: bytes).id == fields[0] else {
                throw UploaderError(.insecure, "the spool keyring \(path) is damaged at line \(number + 1) (expected: id, 64 hex digits, date): restore it from backup")
            }
            entries.append(Entry(key: SpoolKey(bytes: bytes), addedAt: added))
        }
        guard !entries.isEmpty else {
            throw UploaderError(.insecure, "the spool keyring \(path) holds no key: restore it from backup (an empty file is never replaced, so no sealed copy becomes unreadable)")
        }
        return SpoolKeyring(path: path, entries: entries, isCredential: isCredential)
    }

    static func text(_ entries: [Entry]) -> String {
        preamble + entries.map { "\($0.key.id) \(Hex.encode($0.key.bytes)) \(Timestamps.iso($0.addedAt))" }.joined(separator: "\n") + "\n"
    }

    static func write(_ entries: [Entry], to path: String) throws {
        let text = text(entries)
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(FilePath(path), .writeOnly, options: [.create, .exclusiveCreate, .closeOnExec], permissions: [.ownerReadWrite])
        } catch {
            throw UploaderError(.io, "cannot write \(path): check that the agent's user may write to its folder", cause: "\(error)")
        }
        defer { try? fd.close() }
        _ = try fd.writeAll(Array(text.utf8))
        try Syscall.fsync(fd)
    }

    /// Changes the keyring under its lock: read afresh, changed by `change`,
    /// written aside and renamed over (a crash leaves the old or the new file).
    static func update(path: String, _ change: ([Entry]) throws -> [Entry]) throws -> SpoolKeyring {
        let lock = try FileDescriptor.open(FilePath(path + ".lock"), .readOnly, options: [.create, .closeOnExec], permissions: [.ownerReadWrite])
        defer { try? lock.close() }
        try Syscall.lock(lock, exclusive: true)
        let before = try read(path, isCredential: false)
        let after = try change(before.entries)
        precondition(!after.isEmpty, "a keyring always keeps its current key")
        let temporary = path + ".\(getpid()).tmp"
        unlink(temporary)
        try write(after, to: temporary)
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw UploaderError(.io, "cannot replace the spool keyring \(path)", cause: String(cString: strerror(errno)))
        }
        let folder = (path as NSString).deletingLastPathComponent
        if let directory = try? FileDescriptor.open(FilePath(folder.isEmpty ? "." : folder), .readOnly, options: [.directory, .closeOnExec]) {
            try? Syscall.fsync(directory)
            try? directory.close()
        }
        return try read(path, isCredential: false)
    }

    /// A new key seals new files from now on; the old ones stay for the files sealed with them.
    public func rotated() throws -> SpoolKeyring {
        guard !isCredential else {
            throw UploaderError(.usage, "the spool keyring comes from systemd's credential \(path): run `uploader key rotate --keyring FILE` on the file it is made from, then renew the credential")
        }
        let key = try SpoolKey.random()
        return try Self.update(path: path) { $0 + [Entry(key: key, addedAt: Date())] }
    }

    /// Held (shared) by every process sealing copies with this keyring, from
    /// before it reads the current key until its copies are in the ledger:
    /// a key is retired only while nobody holds it, so no copy can be sealed
    /// with a key that has just gone. Close the descriptor to let go.
    public func holdForSealing() throws -> FileDescriptor? {
        guard !isCredential else { return nil }
        let fd = try FileDescriptor.open(FilePath(path + ".users"), .readOnly, options: [.create, .closeOnExec], permissions: [.ownerReadWrite])
        do { try Syscall.lock(fd, exclusive: false) } catch {
            try? fd.close()
            throw error
        }
        return fd
    }

    /// Drops the keys `unused` says no spool copy needs, never the current
    /// one; nothing when a process is sealing copies now (the next purge tries again).
    public func retiring(where unused: (SpoolKey) throws -> Bool) throws -> (keyring: SpoolKeyring, retired: [SpoolKey]) {
        guard !isCredential, entries.count > 1 else { return (self, []) }
        var anyUnused = false
        for entry in entries.dropLast() where try unused(entry.key) { anyUnused = true }
        guard anyUnused else { return (self, []) }
        let users = try FileDescriptor.open(FilePath(path + ".users"), .readOnly, options: [.create, .closeOnExec], permissions: [.ownerReadWrite])
        defer { try? users.close() }
        guard try Syscall.tryLockExclusive(users) else { return (self, []) }
        var retired: [SpoolKey] = []
        let after = try Self.update(path: path) { entries in
            let current = entries.last!
            retired = []
            for entry in entries where entry != current {
                if try unused(entry.key) { retired.append(entry.key) }
            }
            return entries.filter { entry in !retired.contains(entry.key) }
        }
        return (after, retired)
    }
}
