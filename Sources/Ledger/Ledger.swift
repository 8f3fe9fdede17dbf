import Crypto
import Foundation
import GRDB
import Synchronization
import UploaderCore
import Platform

/// The transfer ledger: one SQLite file (WAL) holding devices, custody
/// periods, one row per camera file, the multipart part plans and the
/// hash-chained custody log.
///
/// Every state change is one transaction that also appends its event to the
/// log, so the log can never say something the rows do not, or vice versa.
/// One `Ledger` (one `DatabasePool`) per file per process.
public final class Ledger: Sendable {
    public let path: String
    let pool: DatabasePool
    /// The `custody.format` event: it and every later event hash framed fields (nil: none yet).
    public let formatStart: Int64?
    /// Whether a claim's holder still runs (a dead holder's files are taken over).
    let isAlive: @Sendable (ClaimOwner) -> Bool

    public static let genesisHash = String(repeating: "0", count: 64)

    /// Opens (and migrates) the ledger. `readOnly` is for the viewing commands.
    public init(path: String, readOnly: Bool = false,
                isAlive: @escaping @Sendable (ClaimOwner) -> Bool = ProcessIdentity.isAlive) throws {
        self.path = path
        self.isAlive = isAlive
        var configuration = GRDB.Configuration()
        configuration.readonly = readOnly
        configuration.busyMode = .timeout(15)
        configuration.foreignKeysEnabled = true
        if readOnly, !FileManager.default.fileExists(atPath: path) {
            throw UploaderError(.ledger, "there is no ledger at \(path) yet: nothing has been ingested with this configuration")
        }
        do {
            if !readOnly {
                do {
                    try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                            withIntermediateDirectories: true)
                } catch {
                    throw UploaderError(.ledger, "cannot create the state folder \((path as NSString).deletingLastPathComponent): check [paths] state in the configuration and that this user may write there\(FolderSafety.readOnlyHint((path as NSString).deletingLastPathComponent))",
                                        cause: "\(error)")
                }
            }
            let folder = (path as NSString).deletingLastPathComponent
            try FolderSafety.check(folder.isEmpty ? "." : folder, what: "state folder", forWriting: !readOnly)
            // One process opens a writable ledger at a time, until it is migrated:
            // a new ledger's first opens race to switch it to WAL (SQLite then
            // answers "database is locked" at once, past any busy timeout), and two
            // first runs (two docks on a new PC) would both apply the same migration.
            let lock = readOnly ? nil : Syscall.lockedFile(path + ".migrate.lock", mode: 0o640)
            defer { try? lock?.close() }
            pool = try DatabasePool(path: path, configuration: configuration)
            // The custody log is not for every user of the PC to read.
            if !readOnly { Syscall.setMode(path, 0o640) }
            if !readOnly {
                if try !pool.read({ try Schema.migrator.hasCompletedMigrations($0) }) {
                    try Schema.migrator.migrate(pool)
                }
            } else if try !pool.read({ try Schema.migrator.hasCompletedMigrations($0) }) {
                // A viewer cannot upgrade the schema, and must not guess at an old one.
                throw UploaderError(.ledger, "the ledger \(path) was written by an older uploader and needs an upgrade: run `uploader housekeeping` once as the agent's user (the daemon and every upload or ingest do it too)")
            }
            formatStart = try pool.read { try Int64.fetchOne($0, sql: HotSQL.formatStart) }
        } catch let error as UploaderError {
            throw error
        } catch {
            throw Ledger.translate(error, doing: "open the ledger \(path)")
        }
    }

    // MARK: - Plumbing

    /// A bulk load (the benchmark's simulated history) from here on: no fsync per transaction.
    package func startBulkLoad() throws {
        try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = OFF") }
    }

    @discardableResult
    package func write<T>(_ action: String, _ body: (Database) throws -> T) throws -> T {
        BlockingCallCheck.assertNotInTask("ledger: \(action)")
        do {
            return try pool.write(body)
        } catch let error as UploaderError {
            throw error
        } catch {
            throw Ledger.translate(error, doing: action)
        }
    }

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        BlockingCallCheck.assertNotInTask("ledger read")
        do {
            return try pool.read(body)
        } catch {
            throw Ledger.translate(error, doing: "read the ledger \(path)")
        }
    }

    static func translate(_ error: Error, doing action: String) -> UploaderError {
        if let dbError = error as? DatabaseError {
            switch dbError.resultCode {
            case .SQLITE_FULL:
                return UploaderError(.diskFull, "the disk holding the ledger is full: free space, then run the command again", cause: "\(dbError)", underlying: .sqlite(dbError.extendedResultCode.rawValue))
            case .SQLITE_READONLY, .SQLITE_CANTOPEN, .SQLITE_PERM:
                return UploaderError(.ledger, "cannot \(action): check that the state directory exists and this user may write to it", cause: "\(dbError)", underlying: .sqlite(dbError.extendedResultCode.rawValue))
            case .SQLITE_BUSY, .SQLITE_LOCKED:
                return UploaderError(.ledger, "the ledger is busy (another uploader holds it): try again in a moment", cause: "\(dbError)", underlying: .sqlite(dbError.extendedResultCode.rawValue))
            case .SQLITE_CORRUPT, .SQLITE_NOTADB:
                return UploaderError(.ledger, "the ledger \(action.contains("open") ? "file" : "") is damaged: restore it from backup; the spool files are untouched", cause: "\(dbError)", underlying: .sqlite(dbError.extendedResultCode.rawValue))
            default:
                return UploaderError(.ledger, "cannot \(action)", cause: "\(dbError)", underlying: .sqlite(dbError.extendedResultCode.rawValue))
            }
        }
        return UploaderError(.ledger, "cannot \(action)", cause: "\(error)")
    }

    /// Who runs this process, for the custody log: the real user's name and,
    /// under sudo, who ran sudo. Set once at start (before the process becomes
    /// the agent's user); nil leaves events without an actor.
    public static let actor = Mutex<String?>(nil)

    /// Appends one event to the custody log, chained to the one before it.
    /// An event about a file carries the digest of the file's row as it is
    /// now (after the change it records), inside the hashed content: a row
    /// edited behind the ledger's back no longer matches its last event.
    @discardableResult
    package static func append(_ draft: EventDraft, in db: Database, at date: Date = Date()) throws -> String {
        // Cached statements: every state change appends an event, a bulk load millions.
        let previous = try String.fetchOne(db.cachedStatement(sql: HotSQL.lastEvent)) ?? genesisHash
        let atText = String.fromDatabaseValue(date.databaseValue)!
        // Only the migrations before v12 append legacy events; the upgrade's own event is the first framed one.
        let framed = try Bool.fetchOne(db.cachedStatement(sql: HotSQL.framed)) ?? false
        let format: ChainFormat = draft.kind == .custodyFormat || framed ? .framed : .legacy
        let rowDigest = try draft.fileID.flatMap { try fileRowDigest($0, in: db) }
        let actor = actor.withLock { $0 }
        let hash = eventHash(format: format, previous: previous, at: atText, level: draft.level.rawValue, kind: draft.kind.rawValue,
                             fileID: draft.fileID, serial: draft.serial, user: draft.user, message: draft.message,
                             rowDigest: rowDigest, actor: actor)
        try db.cachedStatement(sql: """
            INSERT INTO event (at, level, kind, file_id, serial, user_id, message, prev_hash, hash, row_digest, actor)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [atText, draft.level.rawValue, draft.kind.rawValue, draft.fileID, draft.serial, draft.user,
                                     draft.message, previous, hash, rowDigest, actor])
        return hash
    }

    /// The hash of one event. Legacy events (before the `custody.format`
    /// event) hash as they always did: before v7 without row digest and actor,
    /// from v7 with both. Framed events cover every field unambiguously.
    public static func eventHash(format: ChainFormat, previous: String, at: String, level: String, kind: String, fileID: Int64?,
                                 serial: String?, user: String?, message: String, rowDigest: String?, actor: String?) -> String {
        switch format {
        case .legacy:
            var fields = [previous, at, level, kind, fileID.map(String.init) ?? "", serial ?? "", user ?? "", message]
            if rowDigest != nil || actor != nil { fields += [rowDigest ?? "", actor ?? ""] }
            return SHA256Hasher.hash(fields.joined(separator: String(ChainFormat.legacySeparator))).hex
        case .framed:
            return ChainFormat.framedDigest(tag: "uploader.custody-event/2", [previous, at, level, kind, fileID.map(String.init), serial, user,
                                                                             message, rowDigest, actor])
        }
    }

    /// What an event vouches for about its file: identity, state, hash,
    /// size, holder, key, recording time and hold reason, as stored.
    static func fileRowDigest(_ id: Int64, in db: Database) throws -> String? {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: HotSQL.fileRowDigestFields), arguments: [id]) else { return nil }
        return rowDigest(row)
    }

    static func rowDigest(_ row: Row) -> String {
        rowDigest(fields: rowDigestFields(row))
    }

    /// The digest of a row's fields as `rowDigestFields` gives them (also for
    /// `verify-bag`, which has the fields but no ledger). Legacy digests
    /// (events before the `custody.format` event) covered the first eleven
    /// fields joined by U+001F; framed ones cover them all, unambiguously.
    public static func rowDigest(format: ChainFormat = .framed, fields: [String]) -> String {
        switch format {
        case .legacy:
            return SHA256Hasher.hash(fields.prefix(RowDigestField.legacyCount).joined(separator: String(ChainFormat.legacySeparator))).hex
        case .framed:
            return ChainFormat.framedDigest(tag: "uploader.file-row/2", fields)
        }
    }

    static func rowDigestFields(_ row: Row) -> [String] {
        (0..<row.count).map { index -> String in
            let value: DatabaseValue = row[index]
            switch value.storage {
            case .null: return "\u{0}"
            case .int64(let number): return String(number)
            case .double(let number): return String(number)
            case .string(let text): return text
            case .blob(let data): return data.base64EncodedString()
            }
        }
    }

    /// Appends an event that goes with no state change.
    public func log(_ draft: EventDraft) throws {
        try write("write to the custody log") { db in try Ledger.append(draft, in: db) }
    }

    // MARK: - Devices and custody

    /// Registers a camera; releases any of its files that were held as
    /// "unknown device". Returns how many files were released.
    @discardableResult
    public func addDevice(serial: String, defaultUser: String, name: String?, model: String?) throws -> Int {
        try Ledger.checkIdentifier(serial, "the serial")
        try Ledger.checkIdentifier(defaultUser, "the user")
        return try write("register device \(serial)") { db in
            try Ledger.addDevice(serial: serial, defaultUser: defaultUser, name: name, model: model, in: db)
        }
    }

    /// `addDevice` inside a transaction of the caller's (a fleet commit applied with its record).
    package static func addDevice(serial: String, defaultUser: String, name: String?, model: String?, because origin: String? = nil,
                                  in db: Database) throws -> Int {
        try Ledger.checkIdentifier(serial, "the serial")
        try Ledger.checkIdentifier(defaultUser, "the user")
        let now = Date()
        if let existing = try Device.fetchOne(db, sql: "SELECT * FROM device WHERE serial = ?", arguments: [serial]) {
            if existing.removedAt == nil {
                throw UploaderError(.usage, "device \(serial) is already registered: use `uploader device assign` to change who holds it")
            }
            try db.execute(sql: "UPDATE device SET default_user = ?, name = ?, model = ?, registered_at = ?, removed_at = NULL WHERE serial = ?",
                           arguments: [defaultUser, name, model, now, serial])
        } else {
            try db.execute(sql: "INSERT INTO device (serial, default_user, name, model, registered_at) VALUES (?, ?, ?, ?, ?)",
                           arguments: [serial, defaultUser, name, model, now])
        }
        try Ledger.append(EventDraft(.notice, .deviceRegistered, serial: serial, user: defaultUser,
                                     "device \(serial) registered to \(defaultUser)\(name.map { " (\($0))" } ?? "")"), in: db)
        return try Ledger.releaseHeldFiles(serial: serial, because: origin, in: db)
    }

    /// Refuses what would break a signed header or mislead a reader: empty
    /// values, control characters, leading or trailing spaces.
    static func checkIdentifier(_ value: String, _ what: String) throws {
        try DisplayText.checkIdentifier(value, what)
    }

    public func removeDevice(serial: String) throws {
        try write("remove device \(serial)") { db in try Ledger.removeDevice(serial: serial, in: db) }
    }

    package static func removeDevice(serial: String, in db: Database) throws {
        try db.execute(sql: "UPDATE device SET removed_at = ? WHERE serial = ? AND removed_at IS NULL", arguments: [Date(), serial])
        guard db.changesCount == 1 else {
            throw UploaderError(.notFound, "no registered device has serial \(serial): see `uploader device list`")
        }
        try Ledger.append(EventDraft(.notice, .deviceRemoved, serial: serial,
                                     "device \(serial) removed from the registry; its files and history stay in the ledger"), in: db)
    }

    /// Gives a registered camera a display name (`device rename`).
    public func renameDevice(serial: String, name: String) throws {
        try write("rename device \(serial)") { db in try Ledger.describeDevice(serial: serial, name: name, in: db) }
    }

    /// Records a registered camera's model (`device model`).
    public func setDeviceModel(serial: String, model: String) throws {
        try write("set the model of device \(serial)") { db in try Ledger.describeDevice(serial: serial, model: model, in: db) }
    }

    /// A registered camera's name or model, inside the caller's transaction (also a fleet commit's).
    package static func describeDevice(serial: String, name: String? = nil, model: String? = nil, because origin: String? = nil,
                                       in db: Database) throws {
        guard let device = try activeDevice(serial: serial, in: db) else {
            throw UploaderError(.notFound, "no registered device has serial \(DisplayText.escaped(serial)): see `uploader device list`")
        }
        var said: [String] = []
        if let name {
            try checkIdentifier(name, "the name")
            try db.execute(sql: "UPDATE device SET name = ? WHERE serial = ? AND removed_at IS NULL", arguments: [name, serial])
            said.append("renamed from \(device.name ?? "no name") to \(name)")
        }
        if let model {
            try checkIdentifier(model, "the model")
            try db.execute(sql: "UPDATE device SET model = ? WHERE serial = ? AND removed_at IS NULL", arguments: [model, serial])
            said.append("model changed from \(device.model ?? "none") to \(model)")
        }
        try append(EventDraft(.notice, .deviceRegistered, serial: serial, user: device.defaultUser,
                              "device \(serial) \(said.joined(separator: ", "))\(origin.map { " (\($0))" } ?? "")"), in: db)
    }

    /// Ends the camera's open custody period at `end` (the camera came back), and
    /// re-attributes files recorded after it that have not started uploading.
    @discardableResult
    public func endPeriod(serial: String, at end: Date) throws -> (period: CustodyRecord, reattributed: Int) {
        try write("end the custody period of \(serial)") { db in
            guard let open = try Ledger.periods(serial: serial, in: db).first(where: { $0.until == nil }) else {
                throw UploaderError(.notFound, "device \(DisplayText.escaped(serial)) has no open custody period: see `uploader device show \(DisplayText.escaped(serial))`")
            }
            return (open, try Ledger.endPeriod(open, serial: serial, at: end, in: db))
        }
    }

    /// Ends an open period inside the caller's transaction (also a fleet commit's); how many files were re-attributed.
    package static func endPeriod(_ period: CustodyRecord, serial: String, at end: Date, in db: Database) throws -> Int {
        guard period.until == nil, end > period.from else {
            throw UploaderError(.usage, "custody period #\(period.id) of \(period.user) (from \(Timestamps.iso(period.from))) is not open, or starts after \(Timestamps.iso(end)): see `uploader device show \(serial)`")
        }
        try db.execute(sql: "UPDATE custody_period SET valid_until = ? WHERE id = ? AND valid_until IS NULL AND removed_at IS NULL", arguments: [end, period.id])
        guard db.changesCount == 1 else { throw UploaderError(.notFound, "custody period #\(period.id) of \(serial) is no longer open") }
        try append(EventDraft(.notice, .deviceUnassigned, serial: serial, user: period.user,
                              "custody period #\(period.id) of \(period.user) (from \(Timestamps.iso(period.from))) ended at \(Timestamps.iso(end))"), in: db)
        return try reattribute(serial: serial, in: db)
    }

    public func devices(includeRemoved: Bool = false) throws -> [Device] {
        try read { db in
            try Device.fetchAll(db, sql: "SELECT * FROM device \(includeRemoved ? "" : "WHERE removed_at IS NULL") ORDER BY serial")
        }
    }

    public func device(serial: String) throws -> Device? {
        try read { db in try Ledger.activeDevice(serial: serial, in: db) }
    }

    static func activeDevice(serial: String, in db: Database) throws -> Device? {
        try Device.fetchOne(db, sql: "SELECT * FROM device WHERE serial = ? AND removed_at IS NULL", arguments: [serial])
    }

    /// What `assign` did, for the admin.
    public struct Assignment: Sendable {
        public var reattributed: Int
        /// An open period of the previous holder that this hand-over ended.
        public var endedPeriod: CustodyRecord?
    }

    /// Records that `user` holds the camera from `from` until `until`, and
    /// re-attributes files recorded in that period that have not started
    /// uploading. Periods never overlap: an open period that started earlier
    /// is ended at `from` (a hand-over, said in the log); any other overlap is
    /// refused, so no recording time has two holders.
    public func assign(serial: String, user: String, from: Date, until: Date?) throws -> Assignment {
        try write("assign device \(serial)") { db in try Ledger.assign(serial: serial, user: user, from: from, until: until, in: db) }
    }

    /// `assign` inside the caller's transaction; `fleetCommit` names the fleet commit that made the period.
    package static func assign(serial: String, user: String, from: Date, until: Date?, fleetCommit: Int64? = nil,
                               in db: Database) throws -> Assignment {
        try Ledger.checkIdentifier(user, "the user")
        if let until, until <= from {
            throw UploaderError(.usage, "--to must be later than --from")
        }
        guard try Ledger.activeDevice(serial: serial, in: db) != nil else {
            throw UploaderError(.notFound, "no registered device has serial \(serial): register it first with `uploader device add \(serial) --user ID`")
        }
        let new = CustodyPeriod(user: user, from: from, until: until)
        var ended: CustodyRecord?
        for existing in try Ledger.periods(serial: serial, in: db) where existing.period.overlaps(new) {
            if existing.until == nil, existing.from < from, ended == nil {
                try db.execute(sql: "UPDATE custody_period SET valid_until = ? WHERE id = ?", arguments: [from, existing.id])
                try Ledger.append(EventDraft(.notice, .deviceUnassigned, serial: serial, user: existing.user,
                                             "custody period #\(existing.id) of \(existing.user) (from \(Timestamps.iso(existing.from))) ended at \(Timestamps.iso(from)): the camera went to \(user)"), in: db)
                ended = existing
                continue
            }
            throw UploaderError(.usage, "the period overlaps custody period #\(existing.id) (\(existing.user) from \(Timestamps.iso(existing.from)) to \(existing.until.map(Timestamps.iso) ?? "open end")): remove it with `uploader device unassign \(serial) \(existing.id)` or choose times that do not overlap")
        }
        try db.execute(sql: "INSERT INTO custody_period (serial, user_id, valid_from, valid_until, created_at, fleet_commit) VALUES (?, ?, ?, ?, ?, ?)",
                       arguments: [serial, user, from, until, Date(), fleetCommit])
        let range = "\(Timestamps.iso(from)) to \(until.map(Timestamps.iso) ?? "open end")"
        try Ledger.append(EventDraft(.notice, .deviceAssigned, serial: serial, user: user,
                                     "device \(serial) held by \(user) from \(range) (custody period #\(db.lastInsertedRowID))"), in: db)
        return Assignment(reattributed: try Ledger.reattribute(serial: serial, in: db), endedPeriod: ended)
    }

    /// Withdraws a custody period entered by mistake; files not yet uploaded
    /// follow the periods that remain. The period stays in the ledger, marked removed.
    @discardableResult
    public func unassign(serial: String, periodID: Int64) throws -> (period: CustodyRecord, reattributed: Int) {
        try write("remove a custody period of \(serial)") { db in try Ledger.unassign(serial: serial, periodID: periodID, in: db) }
    }

    package static func unassign(serial: String, periodID: Int64, in db: Database) throws -> (period: CustodyRecord, reattributed: Int) {
        guard let period = try CustodyRecord.fetchOne(db, sql: "SELECT * FROM custody_period WHERE id = ? AND serial = ? AND removed_at IS NULL",
                                                      arguments: [periodID, serial]) else {
            throw UploaderError(.notFound, "device \(serial) has no custody period #\(periodID): see `uploader device show \(serial)`")
        }
        try db.execute(sql: "UPDATE custody_period SET removed_at = ? WHERE id = ?", arguments: [Date(), periodID])
        try Ledger.append(EventDraft(.notice, .deviceUnassigned, serial: serial, user: period.user,
                                     "custody period #\(periodID) (\(period.user) from \(Timestamps.iso(period.from)) to \(period.until.map(Timestamps.iso) ?? "open end")) removed"), in: db)
        return (period, try Ledger.reattribute(serial: serial, in: db))
    }

    public func custody(serial: String) throws -> [CustodyRecord] {
        try read { db in try Ledger.periods(serial: serial, in: db) }
    }

    static func periods(serial: String, in db: Database) throws -> [CustodyRecord] {
        try CustodyRecord.fetchAll(db, sql: HotSQL.periods, arguments: [serial])
    }

    static func attributedUser(serial: String, recordedAt: Date, in db: Database) throws -> String? {
        guard let device = try activeDevice(serial: serial, in: db) else { return nil }
        return Attribution.user(recordedAt: recordedAt, periods: try periods(serial: serial, in: db).map(\.period),
                                defaultUser: device.defaultUser)
    }

    /// Files whose key is not fixed yet follow the custody periods as they are now.
    static func reattribute(serial: String, in db: Database) throws -> Int {
        let files = try MediaFile.fetchAll(db, sql: """
            SELECT * FROM media_file
            WHERE serial = ? AND object_key IS NULL AND recorded_at IS NOT NULL AND state IN ('spooled','failed','discovered','copying')
            """, arguments: [serial])
        var changed = 0
        for file in files {
            guard let recordedAt = file.recordedAt,
                  let user = try attributedUser(serial: serial, recordedAt: recordedAt, in: db), user != file.user else { continue }
            try db.execute(sql: "UPDATE media_file SET user_id = ?, updated_at = ? WHERE id = ? AND object_key IS NULL",
                           arguments: [user, Date(), file.id])
            guard db.changesCount == 1 else { continue }
            try append(EventDraft(.notice, .fileAttributed, fileID: file.id, serial: serial, user: user,
                                  "attributed to \(user) (recorded \(Timestamps.iso(recordedAt)))"), in: db)
            changed += 1
        }
        return changed
    }

    static func releaseHeldFiles(serial: String, because origin: String? = nil, in db: Database) throws -> Int {
        let held = try MediaFile.fetchAll(db, sql: """
            SELECT * FROM media_file WHERE serial = ? AND state = 'quarantined' AND hold_reason = ? AND spool_name IS NOT NULL
            """, arguments: [serial, HoldReason.unknownDevice])
        for file in held {
            let user = try file.recordedAt.flatMap { try attributedUser(serial: serial, recordedAt: $0, in: db) }
            let released = try change(file.id, to: .spooled, from: [.quarantined],
                                      set: ["hold_reason = NULL", "user_id = ?", "last_error = NULL"], [user], in: db)
            try append(fileEvent(released, .notice, .fileReleased,
                                 "released from quarantine: device \(serial) is now registered\(origin.map { " (\($0))" } ?? ""); attributed to \(user ?? "?")"), in: db)
        }
        return held.count
    }
}
