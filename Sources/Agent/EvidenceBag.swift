import Crypto
import Foundation
import Ledger
import Platform
import Spool
import SystemPackage
import Transport
import UploaderCore

/// What `uploader export` wrote.
public struct BagReport: Sendable, Codable {
    public var directory: String
    public var files: Int
    public var bytes: Int64
    public var checkpointEventID: Int64
    /// Selected files that were not exported, and why (not verified in the store yet).
    public var skipped: [String]
}

/// An evidence bag for court (BagIt, RFC 8493): each file downloaded from
/// the store and checked against the camera's SHA-256 while it streams,
/// SHA-256 and SHA-512 manifests, bag-info, and a `custody/` folder that
/// lets anyone recompute the chain from the files' events to a checkpoint
/// the dock signed. Blocking (files, network).
public struct BagExporter {
    let configuration: Configuration
    let ledger: Ledger

    public init(configuration: Configuration, ledger: Ledger) {
        self.configuration = configuration
        self.ledger = ledger
    }

    struct Item {
        var file: MediaFile
        var payloadPath: String
        /// For a sidecar: its recording's payload path.
        var sidecarOf: String? = nil
    }

    /// `progress`: the file being written (its bag path and size) and the bytes of it so far.
    public func export(_ selection: VerifySelection, recordedFrom: Date?, recordedTo: Date?, to directory: String, client: S3Client,
                       progress: ((_ file: String, _ done: Int64, _ size: Int64) -> Void)? = nil) throws -> BagReport {
        if let contents = try? FileManager.default.contentsOfDirectory(atPath: directory), !contents.isEmpty {
            throw UploaderError(.usage, "\(directory) is not empty: export into a new folder")
        }
        var items: [Item] = []
        var skipped: [String] = []
        try ledger.forEachFileRecord(selection) { record in
            let file = record.file
            if let from = recordedFrom, (file.recordedAt ?? file.discoveredAt) < from { return }
            if let to = recordedTo, (file.recordedAt ?? file.discoveredAt) > to { return }
            guard file.state == .verified, file.objectKey != nil, file.sha256 != nil else {
                skipped.append("#\(file.id) \(DisplayText.escaped(file.sourcePath)): \(file.state.rawValue), not verified in the store yet")
                return
            }
            let name = ObjectKeyTemplate.sanitize(file.sourcePath.split(separator: "/").last.map(String.init) ?? "file")
            items.append(Item(file: file, payloadPath: "data/\(ObjectKeyTemplate.sanitize(file.serial))/\(String(format: "%06lld", file.id))-\(name)"))
        }
        // A recording's sidecars (GPS track, metadata) go with it, named beside it.
        var included = Set(items.map(\.file.id))
        for item in items where item.file.sidecarOf == nil {
            for sidecar in try ledger.sidecars(of: item.file.id) where !included.contains(sidecar.id) {
                guard sidecar.state == .verified, sidecar.objectKey != nil, sidecar.sha256 != nil else {
                    skipped.append("#\(sidecar.id) \(DisplayText.escaped(sidecar.sourcePath)) (sidecar of #\(item.file.id)): \(sidecar.state.rawValue), not verified in the store yet")
                    continue
                }
                included.insert(sidecar.id)
                let name = ObjectKeyTemplate.sanitize(sidecar.sourcePath.split(separator: "/").last.map(String.init) ?? "file")
                items.append(Item(file: sidecar, payloadPath: "data/\(ObjectKeyTemplate.sanitize(sidecar.serial))/\(String(format: "%06lld", item.file.id))-\(name)",
                                  sidecarOf: item.payloadPath))
            }
        }
        guard !items.isEmpty else {
            throw UploaderError(.notFound, skipped.isEmpty ? "no file matches: nothing was exported" : "none of the \(skipped.count) matching files is verified in the store yet: nothing was exported")
        }
        // The newest events get a checkpoint of their own, so every file's events are covered.
        try CustodyCheckpoints.sign(configuration: configuration, ledger: ledger)
        guard let key = try DockKey.existing(configuration) else { throw UploaderError(.io, "the dock has no signing key") }
        var spans: [(Int64, Int64)] = []
        for item in items { if let span = try ledger.eventSpan(file: item.file.id) { spans.append(span) } }
        let firstEvent = spans.map(\.0).min() ?? 1
        guard let checkpoint = try ledger.firstCheckpoint(covering: spans.map(\.1).max() ?? firstEvent) else {
            throw UploaderError(.ledger, "no signed checkpoint covers these files' events yet")
        }

        let fm = FileManager.default
        do {
            return try writeBag(items, skipped: skipped, firstEvent: firstEvent, checkpoint: checkpoint, key: key, to: directory, client: client, progress: progress)
        } catch {
            // No half bag is left to be mistaken for a whole one.
            for entry in (try? fm.contentsOfDirectory(atPath: directory)) ?? [] { try? fm.removeItem(atPath: directory + "/" + entry) }
            if let failure = error as? UploaderError, failure.isFromTheStore {
                throw UploaderError(.io, "the export stopped: \(failure.message); nothing was kept in \(directory)", underlying: failure.underlying)
            }
            throw error
        }
    }

    func writeBag(_ items: [Item], skipped: [String], firstEvent: Int64, checkpoint: CheckpointRecord, key: Ed25519PrivateKey, to directory: String,
               client: S3Client, progress: ((_ file: String, _ done: Int64, _ size: Int64) -> Void)?) throws -> BagReport {
        let fm = FileManager.default
        for folder in [directory, directory + "/data", directory + "/custody/files"] {
            try fm.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
        }
        var manifest256 = "", manifest512 = ""
        var totalBytes: Int64 = 0
        var info = [
            "Source-Organization: \(configuration.store.prefix.isEmpty ? configuration.store.bucket : configuration.store.prefix)",
            "Bagging-Date: \(String(Timestamps.iso(Date()).prefix(10)))",
            "Bag-Software-Agent: uploader \(UploaderVersion.current)",
            "External-Description: body-worn camera evidence exported by dock \(configuration.hostName) from \(configuration.store.bucket)",
            "Dock: \(configuration.hostName)",
            "Dock-Key-Fingerprint: \(key.publicKey.fingerprint)",
            "Custody-Checkpoint: custody/checkpoint.json (event \(checkpoint.eventID), head \(checkpoint.chainHead))",
        ]
        for (index, item) in items.enumerated() {
            let file = item.file
            let label = "[\(index + 1)/\(items.count)] \(item.payloadPath)"
            let (size, sha256, sha512) = try download(file, to: directory + "/" + item.payloadPath, client: client) { progress?(label, $0, file.sourceSize) }
            guard size == file.sourceSize, sha256 == file.sha256 else {
                throw UploaderError(.verification, "the store's copy of #\(file.id) (\(file.objectKey ?? "")) has \(size) bytes and SHA-256 \(sha256), not the camera's \(file.sourceSize) and \(file.sha256 ?? ""): the export stopped; run `uploader verify #\(file.id)`")
            }
            totalBytes += size
            manifest256 += "\(sha256)  \(item.payloadPath)\n"
            manifest512 += "\(sha512)  \(item.payloadPath)\n"
            let model = (try? ledger.device(serial: file.serial))??.model
            info.append("Evidence-File: \(item.payloadPath); camera \(file.serial)\(model.map { " (\($0))" } ?? ""); officer \(file.user ?? "unknown"); recorded \(file.recordedAt.map(Timestamps.iso) ?? "unknown") (\(file.recordedAtSource?.rawValue ?? "?")); ingested \(file.spooledAt.map(Timestamps.iso) ?? "?"); verified \(file.verifiedAt.map(Timestamps.iso) ?? "?"); object \(file.objectKey ?? "")\(item.sidecarOf.map { "; sidecar of \($0)" } ?? "")")
            let custody = BagFileCustody(id: file.id, payload: item.payloadPath, sha256: sha256, rowFields: try ledger.rowDigestFields(file: file.id) ?? [])
            try write(directory + "/custody/files/\(file.id).json", Array(try JSONEncoder.sorted.encode(custody)))
        }
        info.insert("Payload-Oxum: \(totalBytes).\(items.count)", at: 3)
        try write(directory + "/bagit.txt", Array("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n".utf8))
        try write(directory + "/bag-info.txt", Array((info.map(BagText.tagLine).joined(separator: "\n") + "\n").utf8))
        try write(directory + "/manifest-sha256.txt", Array(manifest256.utf8))
        try write(directory + "/manifest-sha512.txt", Array(manifest512.utf8))
        try write(directory + "/custody/checkpoint.json", Array(checkpoint.body.utf8))
        try write(directory + "/custody/dock-key.pem", Array(key.publicKey.pem.utf8))
        // The chain from the first of these files' events to the signed head, one event per line.
        let chainPath = directory + "/custody/chain.jsonl"
        fm.createFile(atPath: chainPath, contents: nil, attributes: [.posixPermissions: 0o640])
        let chain = try FileHandle(forWritingTo: URL(fileURLWithPath: chainPath))
        try ledger.forEachChainEvent(from: firstEvent, through: checkpoint.eventID) { event in
            try chain.write(contentsOf: try JSONEncoder.sorted.encode(event) + Data("\n".utf8))
        }
        try chain.close()
        // The tag manifest covers every file outside data/.
        var tags = ""
        for path in try BagText.tagFiles(in: directory) {
            tags += "\(try FileHashes.of(directory + "/" + path, sha512: false).sha256)  \(path)\n"
        }
        try write(directory + "/tagmanifest-sha256.txt", Array(tags.utf8))
        return BagReport(directory: directory, files: items.count, bytes: totalBytes, checkpointEventID: checkpoint.eventID, skipped: skipped)
    }

    /// Streams the object into `path` (via `.partial`), hashing as it comes.
    func download(_ file: MediaFile, to path: String, client: S3Client, progress: @escaping (Int64) -> Void) throws -> (Int64, String, String) {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o750])
        let partial = path + ".partial"
        let fd = try FileDescriptor.open(FilePath(partial), .writeOnly, options: [.create, .truncate, .closeOnExec], permissions: [.ownerReadWrite, .groupRead])
        var closed = false
        defer {
            if !closed { try? fd.close(); Syscall.removeIfPresent(partial) }
        }
        let sha256 = SHA256Hasher(), sha512 = SHA512Hasher()
        var size: Int64 = 0
        var writeError: Error?
        try client.getObject(key: file.objectKey!, versionID: file.storeVersionID) { bytes in
            guard writeError == nil else { return }
            sha256.update(bytes)
            sha512.update(bytes)
            size += Int64(bytes.count)
            do { _ = try fd.writeAll(bytes) } catch { writeError = error }
            progress(size)
        }
        if let writeError { throw UploaderError(.io, "cannot write \(path): is the disk full?", cause: "\(writeError)") }
        try? Syscall.fsync(fd)
        try fd.close()
        closed = true
        do { try Syscall.rename(partial, to: path) } catch { throw UploaderError(.io, "cannot rename \(partial)", cause: error.summary) }
        return (size, sha256.finalize().hex, sha512.finalizeHex())
    }

    func write(_ path: String, _ bytes: [UInt8]) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o640]) else {
            throw UploaderError(.io, "cannot write \(path): check the folder and the free space")
        }
    }
}

extension BagExporter {
    /// `uploader export`: the bag, then the custody event that says where it went.
    public func exportRecorded(_ selection: VerifySelection, recordedFrom: Date?, recordedTo: Date?, to directory: String, client: S3Client,
                               progress: ((_ file: String, _ done: Int64, _ size: Int64) -> Void)? = nil) throws -> BagReport {
        let report = try export(selection, recordedFrom: recordedFrom, recordedTo: recordedTo, to: directory, client: client, progress: progress)
        try ledger.log(EventDraft(.notice, .custodyExport, "exported \(report.files) files (\(ByteCount.format(report.bytes))) as an evidence bag in \(directory), custody to the checkpoint at event \(report.checkpointEventID)"))
        return report
    }

    /// Under sudo, opening the ledger makes this process the agent's user: the
    /// bag's folder is made first, as root, and given to that user. Nothing to
    /// do for any other user.
    public static func prepareFolder(_ directory: String, configuration: Configuration) throws {
        guard Syscall.isRoot else { return }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
        try? Syscall.giveToOwner(of: configuration.stateDirectory, directory)
    }
}

/// What a bag says about one of its files: the ledger row's fields (their
/// digest must equal the row digest of the file's last event in the chain).
public struct BagFileCustody: Codable, Sendable {
    public var id: Int64
    public var payload: String
    public var sha256: String
    public var rowFields: [String]
}

enum BagText {
    /// A bag-info line: no line breaks inside a value.
    static func tagLine(_ line: String) -> String {
        line.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
    }

    /// Every file of the bag outside data/ but the tag manifests themselves, sorted.
    static func tagFiles(in directory: String) throws -> [String] {
        var result: [String] = []
        let enumerator = FileManager.default.enumerator(atPath: directory)
        while let path = enumerator?.nextObject() as? String {
            if path == "data" { enumerator?.skipDescendants(); continue }
            var isDirectory: ObjCBool = false
            FileManager.default.fileExists(atPath: directory + "/" + path, isDirectory: &isDirectory)
            if isDirectory.boolValue || path.hasPrefix("tagmanifest-") { continue }
            result.append(path)
        }
        return result.sorted()
    }
}

/// The one streaming hash of a file the agent reads back: the spool copy
/// for `verify`, a bag's payload for `verify-bag` (which also wants SHA-512).
public enum FileHashes {
    public static func of(_ path: String, sha512 wantsSHA512: Bool = true) throws -> (size: Int64, sha256: String, sha512: String?) {
        let fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec, .noFollow])
        defer { try? fd.close() }
        return try of(PlainFileReader(fd), sha512: wantsSHA512)
    }

    /// The hashes of what `reader` yields (a sealed spool copy: its camera bytes, each chunk authenticated).
    public static func of(_ reader: any PositionalReader, sha512 wantsSHA512: Bool = true) throws -> (size: Int64, sha256: String, sha512: String?) {
        let sha256 = SHA256Hasher()
        let sha512 = wantsSHA512 ? SHA512Hasher() : nil
        var size: Int64 = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try reader.read(into: $0, at: size) }
            if count == 0 { break }
            buffer.withUnsafeBytes {
                let chunk = UnsafeRawBufferPointer(rebasing: $0.prefix(count))
                sha256.update(chunk)
                sha512?.update(chunk)
            }
            size += Int64(count)
        }
        return (size, sha256.finalize().hex, sha512?.finalizeHex())
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
