import Crypto
import Foundation
import Ledger
import Platform
import SystemPackage
import Transport
import UploaderCore

/// What `uploader verify` concludes about one file.
public struct FileVerdict: Sendable, Codable {
    public var id: Int64
    public var serial: String
    public var sourcePath: String
    public var state: String
    public var objectKey: String?
    /// What is wrong, each with the event since which it is wrong where known.
    public var problems: [String]
    /// What could not be checked, and why (not a failure).
    public var notes: [String]
    public var ok: Bool { problems.isEmpty }
}

/// Checks one file against everything that vouches for it: the event that
/// last recorded its row, the custody registry, the spool copy and the
/// object in the store. Blocking (files, network): on a thread of its own.
public struct CustodyVerifier {
    let configuration: Configuration
    let spool: Spool

    public init(configuration: Configuration) {
        self.configuration = configuration
        spool = Spool(root: configuration.spoolDirectory)
    }

    public func check(_ record: FileCustodyRecord, store: S3Client?) -> FileVerdict {
        let file = record.file
        var verdict = FileVerdict(id: file.id, serial: file.serial, sourcePath: DisplayText.terminalSafe(file.sourcePath), state: file.state.rawValue,
                                  objectKey: file.objectKey, problems: [], notes: [])
        if let digest = record.lastEventDigest {
            if digest != record.currentDigest {
                verdict.problems.append("the ledger row (state, hash, size, user, key or recording time) was changed after event \(record.lastEventID ?? 0) without an event: it is not what the custody log recorded")
            }
        } else {
            verdict.notes.append("row not covered: the file last changed before the custody log covered rows")
        }
        if let user = file.user, let custodyUser = record.custodyUser, user != custodyUser, file.holdReason == nil {
            verdict.problems.append("filed under \(user), but the custody registry says \(custodyUser) held camera \(file.serial) at the recording time")
        }
        if let name = file.spoolName, file.spoolPurgedAt == nil, let expected = file.sha256 {
            switch hashSpoolCopy(name) {
            case .success(let digest) where digest == expected: break
            case .success(let digest): verdict.problems.append("the spool copy \(name) has SHA-256 \(digest), not the camera's \(expected)")
            case .failure(let error): verdict.problems.append("the spool copy \(name) cannot be read: \(error.message)")
            }
        }
        if file.state == .verified, let key = file.objectKey {
            if let store {
                checkObject(file, key: key, store: store, into: &verdict)
            } else {
                verdict.notes.append("store not checked (--offline or no credentials)")
            }
        }
        return verdict
    }

    func checkObject(_ file: MediaFile, key: String, store: S3Client, into verdict: inout FileVerdict) {
        let head: ObjectHead?
        do {
            head = try store.headObject(key: key)
        } catch {
            verdict.notes.append("store not reachable for \(key): \(error)")
            return
        }
        guard let head else {
            verdict.problems.append("the object \(key) is gone from the store")
            return
        }
        if head.size != file.sourceSize {
            verdict.problems.append("the store holds \(key) with \(head.size) bytes, not \(file.sourceSize)")
        }
        if let checksum = head.checksumSHA256, let recorded = file.storeChecksum, !recorded.hasPrefix("sha256:"), checksum != recorded {
            verdict.problems.append("the store's checksum of \(key) is \(checksum), not the \(recorded) verified at upload: the object was replaced")
        }
        let expected = UploadRunner.metadata(for: file, hostName: configuration.hostName)
        for name in ["sha256", "device-serial", "user", "recorded-at", "source-path"] where head.metadata[name] != expected[name] {
            verdict.problems.append("the object's \(name) metadata is \(head.metadata[name].map { "\"\($0)\"" } ?? "missing"), not \"\(expected[name] ?? "")\": the object was replaced")
        }
    }

    func hashSpoolCopy(_ name: String) -> Result<String, UploaderError> {
        Result {
            let fd: FileDescriptor
            do {
                fd = try FileDescriptor.open(FilePath(spool.objectPath(name)), .readOnly, options: [.closeOnExec, .noFollow])
            } catch {
                throw UploaderError(.io, "it is missing or not a regular file", cause: "\(error)")
            }
            defer { try? fd.close() }
            let hasher = SHA256Hasher()
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let count = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
                if count == 0 { break }
                buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0.prefix(count))) }
            }
            return hasher.finalize().hex
        }.mapError { ($0 as? UploaderError) ?? UploaderError(.io, "read failed", cause: "\($0)") }
    }
}
