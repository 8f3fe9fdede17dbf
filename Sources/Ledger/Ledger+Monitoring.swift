import Foundation
import GRDB
import UploaderCore

/// Something an admin must hear about. `key` identifies the condition, so
/// the same alert is not sent again and again.
public struct Alert: Sendable, Codable, Equatable {
    public var key: String
    public var message: String
    public var fileID: Int64?
    public var serial: String?
}

extension Ledger {
    /// The failure-only alert conditions that hold now.
    public func alertConditions(now: Date, oldestUnverifiedHours: Double, dockedIdleMinutes: Double,
                                spoolAboveHighWatermark: Bool) throws -> [Alert] {
        try read { db in
            var alerts: [Alert] = []
            let stuck = try MediaFile.fetchAll(db, sql: HotSQL.stuckFiles, arguments: [HoldReason.spoolCorrupted.rawValue, HoldReason.cameraFileChanged.rawValue,
                                 HoldReason.unreadable.rawValue, HoldReason.hostileEntry.rawValue])
            for file in stuck {
                let why = file.holdReason.map { "quarantined (\($0.rawValue))" } ?? "failed and will not be retried on its own"
                alerts.append(Alert(key: "file-\(file.id)-\(file.state.rawValue)", message: "\(file.serial) \(DisplayText.escaped(file.sourcePath)) \(why): \(file.lastError ?? "")",
                                    fileID: file.id, serial: file.serial))
            }
            if let oldest = try MediaFile.fetchOne(db, sql: HotSQL.oldestUnverified),
               now.timeIntervalSince(oldest.discoveredAt) > oldestUnverifiedHours * 3600 {
                alerts.append(Alert(key: "oldest-unverified-\(oldest.id)",
                                    message: String(format: "the oldest file not yet verified (%@ on %@, %@) was found %.0f hours ago",
                                                    DisplayText.escaped(oldest.sourcePath), oldest.serial, oldest.state.rawValue, now.timeIntervalSince(oldest.discoveredAt) / 3600),
                                    fileID: oldest.id, serial: oldest.serial))
            }
            // A dock that started long ago and has neither finished nor copied anything since.
            for dock in try Row.fetchAll(db, sql: HotSQL.idleDocks,
                                         arguments: [now.addingTimeInterval(-dockedIdleMinutes * 60)]) {
                let serial: String = dock["serial"]
                let at: Date = dock["at"]
                alerts.append(Alert(key: "dock-idle-\(dock["event_id"] as Int64)",
                                    message: "camera \(serial) has been docked since \(Timestamps.iso(at)) with nothing copied", serial: serial))
            }
            // A gap in a camera's file numbers is told once, ever.
            for gap in try Row.fetchAll(db, sql: """
                SELECT serial, number, message FROM file_gap
                WHERE NOT EXISTS (SELECT 1 FROM alert WHERE alert.key = 'gap-' || file_gap.serial || '-' || file_gap.number)
                LIMIT 100
                """) {
                let serial: String = gap["serial"]
                alerts.append(Alert(key: "gap-\(serial)-\(gap["number"] as Int64)", message: gap["message"], serial: serial))
            }
            if spoolAboveHighWatermark {
                alerts.append(Alert(key: "spool-high-watermark", message: "the spool is above its high watermark: docked cameras keep their files until uploads are verified and purged"))
            }
            return alerts
        }
    }

    /// When an alert with this key was last sent.
    public func lastAlert(key: String) throws -> Date? {
        try read { db in
            try Date.fetchOne(db, sql: HotSQL.lastAlert, arguments: [key])
        }
    }

    /// Records a sent alert: in the custody log, and in the alert table that de-duplicates by key.
    public func recordAlertSent(_ alert: Alert, via channels: [String]) throws {
        try write("record a sent alert") { db in
            try Ledger.append(EventDraft(.warning, .alertSent, fileID: alert.fileID, serial: alert.serial,
                                         "[\(alert.key)] \(alert.message) (sent to \(channels.joined(separator: ", ")))"), in: db)
            try db.execute(sql: """
                INSERT INTO alert (key, last_sent_at, times_sent, message) VALUES (?, ?, 1, ?)
                ON CONFLICT (key) DO UPDATE SET last_sent_at = excluded.last_sent_at, times_sent = times_sent + 1, message = excluded.message
                """, arguments: [alert.key, Date(), alert.message])
        }
    }

    /// What the metrics textfile reports from the ledger (rendered by `MetricsText`).
    public func metricsSnapshot() throws -> LedgerMetrics {
        try read { db in
            var states: [FileState: StateTotals] = [:]
            for row in try Row.fetchAll(db, sql: HotSQL.stateTotals) {
                guard let state = FileState(rawValue: row["state"]) else { continue }
                states[state] = StateTotals(count: row["n"], bytes: row["bytes"])
            }
            func events(_ kinds: [EventKind]) throws -> Int {
                try Int.fetchOne(db, sql: HotSQL.eventCount(kinds)) ?? 0
            }
            return LedgerMetrics(
                states: states,
                oldestUnverifiedDiscoveredAt: try MediaFile.fetchOne(db, sql: HotSQL.oldestUnverified)?.discoveredAt,
                uploadedBytes: try Int64.fetchOne(db, sql: "SELECT COALESCE(SUM(bytes_sent), 0) FROM upload_run") ?? 0,
                uploadRetries: try events([.uploadRetry]),
                verificationFailures: try events([.fileMismatch, .spoolCorrupted]))
        }
    }
}

/// The ledger's counters behind the Prometheus metrics.
public struct LedgerMetrics: Sendable, Equatable {
    public var states: [FileState: StateTotals]
    public var oldestUnverifiedDiscoveredAt: Date?
    public var uploadedBytes: Int64
    public var uploadRetries: Int
    public var verificationFailures: Int
}
