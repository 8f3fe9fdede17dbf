import Foundation
import GRDB
import UploaderCore

extension Ledger {
    /// A camera's files the store has verified and that were not deleted from
    /// it yet: the only candidates for clearing, whatever the policy.
    public func clearableFiles(serial: String) throws -> [MediaFile] {
        try read { db in
            try MediaFile.fetchAll(db, sql: """
                SELECT * FROM media_file INDEXED BY media_file_clearable
                WHERE serial = ? AND state = 'verified' AND camera_cleared_at IS NULL AND store_checksum IS NOT NULL AND sha256 IS NOT NULL
                ORDER BY id
                """, arguments: [serial])
        }
    }

    /// Cameras with files verified after `date` and not cleared from them (through the partial index).
    public func clearableSerials(verifiedAfter date: Date) throws -> [String] {
        try read { db in
            try String.fetchAll(db, sql: """
                SELECT DISTINCT serial FROM media_file INDEXED BY media_file_clearable
                WHERE state = 'verified' AND camera_cleared_at IS NULL AND verified_at > ?
                """, arguments: [date])
        }
    }

    /// Records the deletion of a file from its camera. Checked: only a file
    /// still `verified` and not yet cleared is recorded (the deletion itself
    /// was checked against the same row's hash).
    public func recordCameraCleared(_ id: Int64, message: String) throws {
        try write("record a file cleared from its camera") { db in
            try db.execute(sql: "UPDATE media_file SET camera_cleared_at = ?, updated_at = ? WHERE id = ? AND state = 'verified' AND camera_cleared_at IS NULL",
                           arguments: [Date(), Date(), id])
            guard let file = try Ledger.file(id, in: db) else { return }
            let recorded = db.changesCount == 1
            try Ledger.append(Ledger.fileEvent(file, recorded ? .notice : .error, .cameraCleared,
                                               recorded ? message : "\(message) — but the file is \(file.state.rawValue) in the ledger now: check it with `uploader verify #\(id)`"), in: db)
        }
    }
}

extension Ledger {
    /// Links sidecars to their recordings (pairs of sidecar id, recording id);
    /// a sidecar already linked keeps its link. Each new link is a custody event.
    public func linkSidecars(_ links: [(sidecar: Int64, recording: Int64)]) throws {
        guard !links.isEmpty else { return }
        try write("link sidecars to their recordings") { db in
            for link in links where link.sidecar != link.recording {
                try db.execute(sql: "UPDATE media_file SET sidecar_of = ?, updated_at = ? WHERE id = ? AND sidecar_of IS NULL",
                               arguments: [link.recording, Date(), link.sidecar])
                guard db.changesCount == 1, let file = try Ledger.file(link.sidecar, in: db), let recording = try Ledger.file(link.recording, in: db) else { continue }
                try Ledger.append(Ledger.fileEvent(file, .info, .fileLinked,
                                                   "sidecar of #\(recording.id) \(DisplayText.escaped(recording.sourcePath)): uploaded beside it and exported with it"), in: db)
            }
        }
    }

    /// A recording's sidecars.
    public func sidecars(of recording: Int64) throws -> [MediaFile] {
        try read { db in try MediaFile.fetchAll(db, sql: "SELECT * FROM media_file INDEXED BY media_file_sidecars WHERE sidecar_of = ? ORDER BY id", arguments: [recording]) }
    }
}
