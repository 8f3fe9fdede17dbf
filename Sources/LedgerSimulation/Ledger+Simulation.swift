import Crypto
import Foundation
import GRDB
import Ledger
import UploaderCore

// Benchmark-only: linked by `uploader-ledger-simulation` and the tests, never by `uploader`.

extension Ledger {
    /// Fills the ledger with the history of a long-serving docking PC, for the
    /// ledger-scale benchmark: `devices` cameras, `files` camera files taken
    /// through the same checked transitions and hash-chained events as real
    /// runs (discovered → copying → spooled → uploading → uploaded → verified,
    /// most of them purged), plus retry notes up to `eventsPerFile` events per
    /// file. Bulk mode: many files per transaction. `recentFiles` of them are
    /// still spooled, discovered in the last hour.
    public func simulateHistory(devices: Int, files: Int, eventsPerFile: Int, recentFiles: Int = 200,
                                now: Date = Date(), progress: (Int) -> Void = { _ in }) throws {
        let span: TimeInterval = 2 * 365 * 86400
        let owner = ClaimOwner(host: "simulation", boot: "-", pid: 0, startTime: 0, nonce: "history")
        for device in 0..<devices {
            try addDevice(serial: Self.simulatedSerial(device), defaultUser: String(format: "officer-%04d", device), name: nil, model: "simulated")
        }
        // A bulk load: the same statements, many files per transaction, no fsync per batch.
        try startBulkLoad()
        let batch = 10_000
        var done = 0
        while done < files {
            let count = min(batch, files - done)
            try write("simulate history") { db in
                for index in done..<(done + count) {
                    let serial = Self.simulatedSerial(index % devices)
                    let user = String(format: "officer-%04d", index % devices)
                    let recent = index >= files - recentFiles
                    let at = recent ? now.addingTimeInterval(-Double(files - index) * 10)
                                    : now.addingTimeInterval(-span + span * Double(index) / Double(files))
                    let size = Int64(50_000_000 + (index % 1000) * 100_000)
                    let path = String(format: "DCIM/%03dBWC/VID%06d.MP4", (index / 1000) % 1000, index)
                    try db.cachedStatement(sql: """
                        INSERT INTO media_file (serial, source_path, source_size, source_mtime_ns, state, discovered_at, updated_at)
                        VALUES (?, ?, ?, ?, 'discovered', ?, ?)
                        """).execute(arguments: [serial, path, size, Int64(at.timeIntervalSince1970) * 1_000_000_000, at, at])
                    let id = db.lastInsertedRowID
                    func event(_ level: LedgerEvent.Level, _ kind: EventKind, _ message: String, user: String? = user) throws {
                        try Ledger.append(EventDraft(level, kind, fileID: id, serial: serial, user: user, message), in: db, at: at)
                    }
                    try event(.info, .fileDiscovered, "found \(path) (\(size) bytes) on camera \(serial)", user: nil)
                    try Ledger.apply(id, to: .copying, from: [.discovered], in: db)
                    try event(.debug, .fileCopying, "copying into the spool", user: nil)
                    let hash = SHA256Hasher.hash("\(serial)/\(path)").hex
                    try Ledger.apply(id, to: .spooled, from: [.copying], set: [
                        "sha256 = ?", "spool_name = ?", "part_size = ?", "recorded_at = ?", "recorded_at_source = ?", "user_id = ?", "spooled_at = ?",
                    ], [hash, "\(id).mp4", 64 << 20, at, RecordingTimeSource.containerMetadata, user, at], in: db)
                    try event(.info, .fileSpooled, "copied and verified: sha256 \(hash)")
                    if recent { continue }
                    try db.cachedStatement(sql: "UPDATE media_file SET claim_owner = ? WHERE id = ?").execute(arguments: [owner.token, id])
                    try Ledger.apply(id, to: .uploading, from: [.spooled], set: ["object_key = ?", "attempts = 1"],
                                     ["sim/\(serial)/\(id).MP4"], claim: owner, in: db)
                    try event(.info, .uploadStarted, "upload attempt 1")
                    for retry in 0..<max(0, eventsPerFile - 7) {
                        try event(.warning, .uploadRetry, "attempt \(retry + 1) failed: SlowDown; retrying")
                    }
                    try Ledger.apply(id, to: .uploaded, set: ["bytes_sent = source_size"], claim: owner, in: db)
                    try event(.info, .uploadCompleted, "the store accepted every byte; verifying")
                    try Ledger.apply(id, to: .verified, set: ["store_checksum = ?", "verified_at = ?"], [hash, at],
                                     claim: owner, releasing: true, in: db)
                    try event(.notice, .uploadVerified, "verified in the store")
                    try db.cachedStatement(sql: "UPDATE media_file SET spool_purged_at = ? WHERE id = ?").execute(arguments: [at, id])
                    try event(.info, .spoolPurged, "spool copy deleted per retention policy")
                }
            }
            done += count
            progress(done)
        }
    }

    static func simulatedSerial(_ index: Int) -> String { String(format: "SIM-%04d", index) }
}
