import Foundation
import GRDB
import UploaderCore

/// Which files `uploader verify` looks at.
public struct VerifySelection: Sendable {
    public var ids: [Int64] = []
    public var pathContains: [String] = []
    public var serial: String?
    public var user: String?
    /// Files discovered at or after this time.
    public var since: Date?
    /// Files of this case (`uploader tag --case`).
    public var caseID: String?
    /// Files recorded in this range (the discovery time for files without a recording time).
    public var recordedFrom: Date?
    public var recordedTo: Date?

    public init() {}
}

/// One file as the ledger vouches for it: its row, the event that last
/// vouched for the row, and who the custody registry says held the camera.
public struct FileCustodyRecord: Sendable {
    public var file: MediaFile
    /// The newest event carrying a row digest for this file, or the
    /// `custody.format` event when the file last changed before it (its
    /// digest is then the file's baseline); nil: neither vouches for the row.
    public var lastEventID: Int64?
    public var lastEventDigest: String?
    /// The digest of the row as it is now.
    public var currentDigest: String
    /// The user the custody periods give for the recording time (nil: the
    /// camera is not registered, or the file has no recording time).
    public var custodyUser: String?
}

extension Ledger {
    /// Streams the selected files in id order, a page per read transaction,
    /// so neither memory nor the length of a read grows with the ledger.
    public func forEachFileRecord(_ selection: VerifySelection, pageSize: Int = 500, _ body: (FileCustodyRecord) throws -> Void) throws {
        var afterID: Int64 = 0
        while true {
            let page: [FileCustodyRecord] = try read { db in
                var clauses = ["id > ?"]
                var arguments: StatementArguments = [afterID]
                if !selection.ids.isEmpty || !selection.pathContains.isEmpty {
                    var any: [String] = []
                    if !selection.ids.isEmpty { any.append("id IN (\(selection.ids.map(String.init).joined(separator: ",")))") }
                    for part in selection.pathContains {
                        any.append("instr(source_path, ?) > 0 OR instr(coalesce(object_key, ''), ?) > 0")
                        arguments += [part, part]
                    }
                    clauses.append("(" + any.joined(separator: " OR ") + ")")
                }
                if let serial = selection.serial { clauses.append("serial = ?"); arguments += [serial] }
                if let user = selection.user { clauses.append("user_id = ?"); arguments += [user] }
                if let since = selection.since { clauses.append("discovered_at >= ?"); arguments += [since] }
                if let caseID = selection.caseID { clauses.append("case_id = ?"); arguments += [caseID] }
                if let from = selection.recordedFrom { clauses.append("coalesce(recorded_at, discovered_at) >= ?"); arguments += [from] }
                if let to = selection.recordedTo { clauses.append("coalesce(recorded_at, discovered_at) <= ?"); arguments += [to] }
                let files = try MediaFile.fetchAll(db, sql: "SELECT * FROM media_file WHERE \(clauses.joined(separator: " AND ")) ORDER BY id LIMIT \(pageSize)",
                                                   arguments: arguments)
                // A page is mostly a few cameras: each camera's registry is read once per page.
                var registry: [String: (defaultUser: String?, periods: [CustodyPeriod])] = [:]
                return try files.map { file in
                    let last = try Row.fetchOne(db.cachedStatement(sql: HotSQL.lastRowDigest), arguments: [file.id])
                    if registry[file.serial] == nil {
                        registry[file.serial] = (try Ledger.activeDevice(serial: file.serial, in: db)?.defaultUser,
                                                 try Ledger.periods(serial: file.serial, in: db).map(\.period))
                    }
                    let camera = registry[file.serial]!
                    let custodyUser = camera.defaultUser.flatMap { defaultUser in
                        file.recordedAt.flatMap { Attribution.user(recordedAt: $0, periods: camera.periods, defaultUser: defaultUser) }
                    }
                    var vouching: (id: Int64?, digest: String?) = (last?["id"], last?["row_digest"])
                    if let formatStart, (vouching.id ?? 0) < formatStart {
                        // Legacy digests are not framed: the baseline fixed at the upgrade vouches instead.
                        vouching = (formatStart, try String.fetchOne(db.cachedStatement(sql: HotSQL.baselineDigest), arguments: [file.id]))
                    }
                    return FileCustodyRecord(file: file, lastEventID: vouching.id, lastEventDigest: vouching.digest,
                                             currentDigest: try Ledger.fileRowDigest(file.id, in: db) ?? "", custodyUser: custodyUser)
                }
            }
            for record in page { try body(record) }
            guard page.count == pageSize, let last = page.last else { return }
            afterID = last.file.id
        }
    }
}
