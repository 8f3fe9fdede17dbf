import Foundation
import Spool
import Transport
import Ledger
import Logging
import UploaderCore
import Platform

/// Sends the failure-only alerts (command and/or webhook) for the conditions
/// that hold now, each at most once per `repeat_hours`, and records every
/// sent alert in the custody log. Blocking: runs on a thread of its own.
public struct AlertDispatcher {
    let configuration: Configuration
    let ledger: Ledger
    let logger: Logger

    public init(configuration: Configuration, ledger: Ledger, logger: Logger) {
        self.configuration = configuration
        self.ledger = ledger
        self.logger = logger
    }

    /// The alerts due now; `send: false` only lists them. `adding`: conditions
    /// the caller found (the daemon's credentials that cannot be loaded).
    @discardableResult
    public func run(now: Date = Date(), send: Bool = true, adding found: [Alert] = []) throws -> [Alert] {
        let monitoring = configuration.monitoring
        let pressure = SpoolPressure(spool: Spool(root: configuration.spoolDirectory), highPercent: configuration.ingest.highWatermarkPercent,
                                     lowPercent: configuration.ingest.lowWatermarkPercent)
        var conditions = try ledger.alertConditions(now: now, oldestUnverifiedHours: monitoring.oldestUnverifiedHours,
                                                    dockedIdleMinutes: monitoring.dockedIdleMinutes, spoolAboveHighWatermark: pressure.isHolding)
        if let unpublished = try CustodyCheckpoints.alert(ledger: ledger, now: now) { conditions.append(unpublished) }
        conditions += try ledger.fleetAlertConditions()
        conditions += try ledger.fleetSnapshotAlertConditions()
        conditions += found
        var due: [Alert] = []
        for alert in conditions {
            if let last = try ledger.lastAlert(key: alert.key), now.timeIntervalSince(last) < monitoring.repeatHours * 3600 { continue }
            due.append(alert)
        }
        guard send else { return due }
        for alert in due {
            var channels: [String] = []
            if let command = monitoring.alertCommand {
                if runCommand(command, alert: alert) { channels.append("command") }
            }
            if let webhook = monitoring.alertWebhook {
                if post(webhook, alert: alert) { channels.append("webhook") }
            }
            if channels.isEmpty, monitoring.alertCommand != nil || monitoring.alertWebhook != nil {
                // Not recorded as sent: the next check tries again.
                try ledger.log(EventDraft(.error, .alertFailed, fileID: alert.fileID, serial: alert.serial,
                                          "[\(alert.key)] could not be delivered: \(alert.message)"))
                continue
            }
            try ledger.recordAlertSent(alert, via: channels.isEmpty ? ["log"] : channels)
        }
        return due
    }

    func json(_ alert: Alert) -> Data {
        let payload: [String: Any] = [
            "source": "uploader", "host": configuration.hostName, "key": alert.key, "message": alert.message,
            "serial": alert.serial ?? NSNull(), "file_id": alert.fileID.map { NSNumber(value: $0) } ?? NSNull(),
            "at": Timestamps.iso(Date()),
        ]
        return (try? JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys])) ?? Data()
    }

    func runCommand(_ command: String, alert: Alert) -> Bool {
        // Only what a command needs: never the store's credentials (UPLOADER_SECRET_ACCESS_KEY…)
        // or anything else of the agent's environment.
        let inherited = ProcessInfo.processInfo.environment
        var environment = ["PATH": inherited["PATH"] ?? "/usr/local/bin:/usr/bin:/bin", "LANG": inherited["LANG"] ?? "C.UTF-8"]
        environment["UPLOADER_ALERT_KEY"] = alert.key
        environment["UPLOADER_ALERT_MESSAGE"] = alert.message
        environment["UPLOADER_ALERT_HOST"] = configuration.hostName
        do {
            let outcome = try Syscall.runChild("/bin/sh", arguments: ["-c", command], environment: environment, input: Array(json(alert)))
            if outcome.status != 0 { logger.error("alert command exited \(outcome.status)") }
            return outcome.status == 0
        } catch {
            logger.error("alert command could not start: \(error)")
            return false
        }
    }

    func post(_ url: String, alert: Alert) -> Bool {
        do {
            let status = try WebhookPost.send(Array(json(alert)), to: url, connectTimeout: configuration.upload.connectTimeout,
                                              stallTimeout: configuration.upload.stallTimeout, caBundle: configuration.store.caBundle)
            if !(200..<300).contains(status) { logger.error("alert webhook answered HTTP \(status)") }
            return (200..<300).contains(status)
        } catch {
            logger.error("alert webhook failed: \(error)")
            return false
        }
    }
}

/// Writes the Prometheus textfile (atomically, for node-exporter's textfile collector).
public enum MetricsFile {
    public static func text(configuration: Configuration, ledger: Ledger) throws -> String {
        let pressure = SpoolPressure(spool: Spool(root: configuration.spoolDirectory), highPercent: configuration.ingest.highWatermarkPercent,
                                     lowPercent: configuration.ingest.lowWatermarkPercent)
        return MetricsText.render(try ledger.metricsSnapshot(), spoolUsedRatio: pressure.usedPercent.map { $0 / 100 },
                                  spoolAboveHighWatermark: pressure.isHolding)
    }

    public static func write(configuration: Configuration, ledger: Ledger) throws {
        guard let path = configuration.monitoring.metricsTextfile else { return }
        let text = try self.text(configuration: configuration, ledger: ledger)
        let temporary = path + ".tmp"
        try Data(text.utf8).write(to: URL(fileURLWithPath: temporary))
        do { try Syscall.rename(temporary, to: path) } catch {
            throw UploaderError(.io, "cannot write the metrics file \(path): check [monitoring] metrics_textfile")
        }
    }
}
