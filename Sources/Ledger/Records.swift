import Crypto
import Foundation
import GRDB
import UploaderCore

// Enum columns are stored as their text.
extension FileState: DatabaseValueConvertible {}
extension HoldReason: DatabaseValueConvertible {}
extension RecordingTimeSource: DatabaseValueConvertible {}
extension EventKind: DatabaseValueConvertible {}
extension LedgerEvent.Level: DatabaseValueConvertible {}

/// Maps Swift property names to the schema's column names (and back), so a
/// record is `Codable` + `FetchableRecord` with no hand-written `init(row:)`,
/// and its JSON keeps the Swift names.
protocol ColumnNamed: FetchableRecord, TableRecord, Decodable {
    /// Swift property name → column name, for the names that differ.
    static var columnNames: [String: String] { get }
}

extension ColumnNamed {
    static var propertyNames: [String: String] {
        Dictionary(uniqueKeysWithValues: columnNames.map { ($1, $0) })
    }

    public static var databaseColumnDecodingStrategy: DatabaseColumnDecodingStrategy {
        let properties = propertyNames
        return .custom { column in AnyCodingKey(properties[column] ?? column) }
    }
}

struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

public struct Device: Sendable, Equatable, Codable, ColumnNamed {
    public static let databaseTableName = "device"
    static let columnNames = ["defaultUser": "default_user", "registeredAt": "registered_at", "removedAt": "removed_at"]

    public var serial: String
    public var defaultUser: String
    public var name: String?
    public var model: String?
    public var registeredAt: Date
    public var removedAt: Date?
}

public struct CustodyRecord: Sendable, Equatable, Codable, ColumnNamed {
    public static let databaseTableName = "custody_period"
    static let columnNames = ["user": "user_id", "from": "valid_from", "until": "valid_until", "createdAt": "created_at"]

    public var id: Int64
    public var serial: String
    public var user: String
    public var from: Date
    public var until: Date?

    public var period: CustodyPeriod { CustodyPeriod(user: user, from: from, until: until) }
}

/// One camera file as the ledger knows it.
public struct MediaFile: Sendable, Equatable, Codable, ColumnNamed {
    public static let databaseTableName = "media_file"
    static let columnNames = [
        "sourcePath": "source_path", "sourceSize": "source_size", "sourceModifiedNanoseconds": "source_mtime_ns",
        "holdReason": "hold_reason", "spoolName": "spool_name", "recordedAt": "recorded_at",
        "recordedAtSource": "recorded_at_source", "user": "user_id", "partSize": "part_size", "objectKey": "object_key",
        "uploadID": "upload_id", "storeChecksum": "store_checksum", "bytesSent": "bytes_sent", "lastError": "last_error",
        "nextAttemptAt": "next_attempt_at", "discoveredAt": "discovered_at", "spooledAt": "spooled_at",
        "uploadStartedAt": "upload_started_at", "verifiedAt": "verified_at", "updatedAt": "updated_at",
        "spoolPurgedAt": "spool_purged_at", "claimOwner": "claim_owner", "claimUntil": "claim_until", "spoolKeyID": "spool_key_id",
        "caseID": "case_id", "tagNote": "tag_note", "retainUntil": "retain_until", "lockMode": "lock_mode", "legalHold": "legal_hold",
        "storeTagsPending": "store_tags_pending", "cameraClearedAt": "camera_cleared_at", "sidecarOf": "sidecar_of", "cameraRecordedAt": "recorded_at_camera",
        "storeVersionID": "store_version_id",
    ]

    public var id: Int64
    public var serial: String
    public var sourcePath: String
    public var sourceSize: Int64
    public var sourceModifiedNanoseconds: Int64
    public var state: FileState
    public var holdReason: HoldReason?
    public var sha256: String?
    public var spoolName: String?
    public var recordedAt: Date?
    public var recordedAtSource: RecordingTimeSource?
    public var user: String?
    public var partSize: Int64?
    public var objectKey: String?
    public var uploadID: String?
    public var storeChecksum: String?
    /// The store's version id of the object verified for this file (nil: a store
    /// without versioning, or verified before v12): verify, export and clearing address it.
    public var storeVersionID: String?
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
    /// The process working on the file now (an upload or a purge), see `ClaimOwner`.
    public var claimOwner: String?
    public var claimUntil: Date?
    /// The spool key that sealed the spool copy; nil: the copy is in the clear.
    public var spoolKeyID: String?
    /// `uploader tag`: the case, incident, category and note; nil when never tagged.
    public var caseID: String?
    public var incident: String?
    public var category: String?
    public var tagNote: String?
    /// What the store was made to enforce: Object Lock retention and legal hold.
    public var retainUntil: Date?
    public var lockMode: String?
    public var legalHold: Bool
    /// Tags given after upload, not yet applied to the stored object.
    public var storeTagsPending: Bool
    /// When the dock deleted the file from the camera ([camera] clear = "after-verified").
    public var cameraClearedAt: Date?
    /// The recording this file belongs to (a GPS track or metadata file with its stem).
    public var sidecarOf: Int64?
    /// The recording time as the camera's clock gave it, when the dock
    /// measured that clock off and `recordedAt` is the corrected time.
    public var cameraRecordedAt: Date?

    /// The camera file this row records, as the copy engine takes it.
    public var cameraFile: CameraFile { CameraFile(id: id, serial: serial, sourcePath: sourcePath, sourceSize: sourceSize) }

    /// The file's name on the camera (last path component).
    public var name: String { cameraFile.name }
}

/// One part of a file's multipart plan.
public struct FilePart: Sendable, Equatable, Codable, ColumnNamed {
    public static let databaseTableName = "file_part"
    static let columnNames = ["fileID": "file_id", "number": "part_number", "uploadedAt": "uploaded_at"]

    public var fileID: Int64
    public var number: Int
    public var offset: Int64
    public var size: Int64
    public var sha256: SHA256Digest
    public var etag: String?

    public init(fileID: Int64, number: Int, offset: Int64, size: Int64, sha256: SHA256Digest, etag: String? = nil) {
        self.fileID = fileID
        self.number = number
        self.offset = offset
        self.size = size
        self.sha256 = sha256
        self.etag = etag
    }
}

/// One entry of the custody log.
public struct LedgerEvent: Sendable, Equatable, Codable, ColumnNamed {
    public static let databaseTableName = "event"
    static let columnNames = ["fileID": "file_id", "user": "user_id", "previousHash": "prev_hash", "rowDigest": "row_digest"]

    public enum Level: String, Sendable, Codable, CaseIterable, Comparable {
        case debug, info, notice, warning, error

        public static func < (lhs: Level, rhs: Level) -> Bool {
            allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
        }
    }

    public var id: Int64
    public var at: Date
    public var level: Level
    public var kind: EventKind
    public var fileID: Int64?
    public var serial: String?
    public var user: String?
    public var message: String
    public var previousHash: String
    public var hash: String
    /// SHA-256 over the file's row after this event (schema v7 on).
    public var rowDigest: String?
    /// The operating-system user who acted (schema v7 on).
    public var actor: String?
}

/// What a caller wants written to the custody log alongside a state change.
public struct EventDraft: Sendable {
    public var level: LedgerEvent.Level
    public var kind: EventKind
    public var fileID: Int64?
    public var serial: String?
    public var user: String?
    public var message: String

    public init(_ level: LedgerEvent.Level, _ kind: EventKind, fileID: Int64? = nil, serial: String? = nil,
                user: String? = nil, _ message: String) {
        self.level = level
        self.kind = kind
        self.fileID = fileID
        self.serial = serial
        self.user = user
        self.message = message
    }
}

/// A digest is stored as the lowercase hex the custody log shows.
extension SHA256Digest: DatabaseValueConvertible {
    public var databaseValue: DatabaseValue { hex.databaseValue }

    public static func fromDatabaseValue(_ value: DatabaseValue) -> SHA256Digest? {
        String.fromDatabaseValue(value).flatMap(SHA256Digest.init(hex:))
    }
}
