import Foundation
import GRDB
import UploaderCore

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
        let batch = 2_000
        var done = 0
        while done < files {
            let count = min(batch, files - done)
            try write("simulate history") { db in
                for index in done..<(done + count) {
                    let serial = Self.simulatedSerial(index % devices)
                    let recent = index >= files - recentFiles
                    let at = recent ? now.addingTimeInterval(-Double(files - index) * 10)
                                    : now.addingTimeInterval(-span + span * Double(index) / Double(files))
                    let size = Int64(50_000_000 + (index % 1000) * 100_000)
                    let path = String(format: "DCIM/%03dBWC/VID%06d.MP4", (index / 1000) % 1000, index)
                    try db.execute(sql: """
                        INSERT INTO media_file (serial, source_path, source_size, source_mtime_ns, state, discovered_at, updated_at)
                        VALUES (?, ?, ?, ?, 'discovered', ?, ?)
                        """, arguments: [serial, path, size, Int64(at.timeIntervalSince1970) * 1_000_000_000, at, at])
                    let id = db.lastInsertedRowID
                    try Ledger.append(EventDraft(.info, .fileDiscovered, fileID: id, serial: serial, "found \(path) (\(size) bytes) on camera \(serial)"), in: db, at: at)
                    var file = try Ledger.change(id, to: .copying, from: [.discovered], in: db)
                    try Ledger.append(Ledger.fileEvent(file, .debug, .fileCopying, "copying into the spool"), in: db, at: at)
                    let hash = SHA256Hex.of("\(serial)/\(path)")
                    file = try Ledger.change(id, to: .spooled, from: [.copying], set: [
                        "sha256 = ?", "spool_name = ?", "part_size = ?", "recorded_at = ?", "recorded_at_source = ?", "user_id = ?", "spooled_at = ?",
                    ], [hash, "\(id).mp4", 64 << 20, at, RecordingTimeSource.containerMetadata, String(format: "officer-%04d", index % devices), at], in: db)
                    try Ledger.append(Ledger.fileEvent(file, .info, .fileSpooled, "copied and verified: sha256 \(hash)"), in: db, at: at)
                    if recent { continue }
                    try db.execute(sql: "UPDATE media_file SET claim_owner = ? WHERE id = ?", arguments: [owner.token, id])
                    file = try Ledger.change(id, to: .uploading, from: [.spooled], set: ["object_key = ?", "attempts = 1"],
                                             ["sim/\(serial)/\(id).MP4"], claim: owner, in: db)
                    try Ledger.append(Ledger.fileEvent(file, .info, .uploadStarted, "upload attempt 1"), in: db, at: at)
                    for retry in 0..<max(0, eventsPerFile - 7) {
                        try Ledger.append(Ledger.fileEvent(file, .warning, .uploadRetry, "attempt \(retry + 1) failed: SlowDown; retrying"), in: db, at: at)
                    }
                    file = try Ledger.change(id, to: .uploaded, set: ["bytes_sent = source_size"], claim: owner, in: db)
                    try Ledger.append(Ledger.fileEvent(file, .info, .uploadCompleted, "the store accepted every byte; verifying"), in: db, at: at)
                    file = try Ledger.change(id, to: .verified, set: ["store_checksum = ?", "verified_at = ?"], [hash, at],
                                             claim: owner, releasing: true, in: db)
                    try Ledger.append(Ledger.fileEvent(file, .notice, .uploadVerified, "verified in the store"), in: db, at: at)
                    try db.execute(sql: "UPDATE media_file SET spool_purged_at = ? WHERE id = ?", arguments: [at, id])
                    try Ledger.append(Ledger.fileEvent(file, .info, .spoolPurged, "spool copy deleted per retention policy"), in: db, at: at)
                }
            }
            done += count
            progress(done)
        }
    }

    static func simulatedSerial(_ index: Int) -> String { String(format: "SIM-%04d", index) }
}

/// A stand-in SHA-256 for simulated rows (64 hex digits, deterministic).
enum SHA256Hex {
    static func of(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return String(repeating: String(format: "%016llx", hash), count: 4)
    }
}
