import Foundation
import GRDB
import UploaderCore

public struct Device: Sendable, Equatable, Codable {
    public var serial: String
    public var defaultUser: String
    public var name: String?
    public var model: String?
    public var registeredAt: Date
    public var removedAt: Date?

    init(row: Row) {
        serial = row["serial"]
        defaultUser = row["default_user"]
        name = row["name"]
        model = row["model"]
        registeredAt = row["registered_at"]
        removedAt = row["removed_at"]
    }
}

public struct CustodyRecord: Sendable, Equatable, Codable {
    public var id: Int64
    public var serial: String
    public var user: String
    public var from: Date
    public var until: Date?

    init(row: Row) {
        id = row["id"]
        serial = row["serial"]
        user = row["user_id"]
        from = row["valid_from"]
        until = row["valid_until"]
    }

    public var period: CustodyPeriod { CustodyPeriod(user: user, from: from, until: until) }
}

/// One camera file as the ledger knows it.
public struct MediaFile: Sendable, Equatable, Codable {
    public var id: Int64
    public var serial: String
    public var sourcePath: String
    public var sourceSize: Int64
    public var sourceModifiedNanoseconds: Int64
    public var state: FileState
    public var holdReason: String?
    public var sha256: String?
    public var spoolName: String?
    public var recordedAt: Date?
    public var recordedAtSource: String?
    public var user: String?
    public var partSize: Int64?
    public var objectKey: String?
    public var uploadID: String?
    public var storeChecksum: String?
    public var bytesSent: Int64
    public var attempts: Int
    public var lastError: String?
    public var nextAttemptAt: Date?
    public var discoveredAt: Date
    public var spooledAt: Date?
    public var uploadStartedAt: Date?
    public var verifiedAt: Date?
    public var updatedAt: Date
    /// Higher goes first; `uploader prioritize` sets it.
    public var priority: Int
    /// When the spool copy was deleted by the retention policy (the file was verified long before).
    public var spoolPurgedAt: Date?

    init(row: Row) {
        id = row["id"]
        priority = row["priority"] ?? 0
        spoolPurgedAt = row["spool_purged_at"]
        serial = row["serial"]
        sourcePath = row["source_path"]
        sourceSize = row["source_size"]
        sourceModifiedNanoseconds = row["source_mtime_ns"]
        state = FileState(rawValue: row["state"]) ?? .failed
        holdReason = row["hold_reason"]
        sha256 = row["sha256"]
        spoolName = row["spool_name"]
        recordedAt = row["recorded_at"]
        recordedAtSource = row["recorded_at_source"]
        user = row["user_id"]
        partSize = row["part_size"]
        objectKey = row["object_key"]
        uploadID = row["upload_id"]
        storeChecksum = row["store_checksum"]
        bytesSent = row["bytes_sent"]
        attempts = row["attempts"]
        lastError = row["last_error"]
        nextAttemptAt = row["next_attempt_at"]
        discoveredAt = row["discovered_at"]
        spooledAt = row["spooled_at"]
        uploadStartedAt = row["upload_started_at"]
        verifiedAt = row["verified_at"]
        updatedAt = row["updated_at"]
    }

    /// The file's name on the camera (last path component).
    public var name: String { String(sourcePath.split(separator: "/").last ?? Substring(sourcePath)) }
}

/// One part of a file's multipart plan.
public struct FilePart: Sendable, Equatable, Codable {
    public var fileID: Int64
    public var number: Int
    public var offset: Int64
    public var size: Int64
    public var sha256: String
    public var etag: String?

    public init(fileID: Int64, number: Int, offset: Int64, size: Int64, sha256: String, etag: String? = nil) {
        self.fileID = fileID
        self.number = number
        self.offset = offset
        self.size = size
        self.sha256 = sha256
        self.etag = etag
    }

    init(row: Row) {
        fileID = row["file_id"]
        number = row["part_number"]
        offset = row["offset"]
        size = row["size"]
        sha256 = row["sha256"]
        etag = row["etag"]
    }
}

/// One entry of the custody log.
public struct LedgerEvent: Sendable, Equatable, Codable {
    public enum Level: String, Sendable, Codable, CaseIterable, Comparable {
        case debug, info, notice, warning, error

        public static func < (lhs: Level, rhs: Level) -> Bool {
            allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
        }
    }

    public var id: Int64
    public var at: Date
    public var level: Level
    public var kind: String
    public var fileID: Int64?
    public var serial: String?
    public var user: String?
    public var message: String
    public var previousHash: String
    public var hash: String

    init(row: Row) {
        id = row["id"]
        at = row["at"]
        level = Level(rawValue: row["level"]) ?? .info
        kind = row["kind"]
        fileID = row["file_id"]
        serial = row["serial"]
        user = row["user_id"]
        message = row["message"]
        previousHash = row["prev_hash"]
        hash = row["hash"]
    }
}

/// What a caller wants written to the custody log alongside a state change.
public struct EventDraft: Sendable {
    public var level: LedgerEvent.Level
    public var kind: String
    public var fileID: Int64?
    public var serial: String?
    public var user: String?
    public var message: String

    public init(_ level: LedgerEvent.Level, _ kind: String, fileID: Int64? = nil, serial: String? = nil,
                user: String? = nil, _ message: String) {
        self.level = level
        self.kind = kind
        self.fileID = fileID
        self.serial = serial
        self.user = user
        self.message = message
    }
}
