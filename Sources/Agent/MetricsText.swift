import Foundation
import Ledger
import UploaderCore

/// The Prometheus text exposition of the agent's state, beside the other
/// views (`status`, `log`): the ledger gives the numbers, this gives the text.
public enum MetricsText {
    public static func render(_ metrics: LedgerMetrics, now: Date = Date(), spoolUsedRatio: Double?, spoolAboveHighWatermark: Bool) -> String {
        var lines: [String] = []
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            for (labels, value) in samples {
                lines.append("\(name)\(labels.isEmpty ? "" : "{\(labels)}") \(value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value))")
            }
        }
        metric("uploader_files", "gauge", "Camera files in the ledger, by state.",
               FileState.allCases.map { ("state=\"\($0.rawValue)\"", Double(metrics.states.of($0).count)) })
        metric("uploader_file_bytes", "gauge", "Bytes of camera files in the ledger, by state.",
               FileState.allCases.map { ("state=\"\($0.rawValue)\"", Double(metrics.states.of($0).bytes)) })
        metric("uploader_oldest_unverified_age_seconds", "gauge", "Age of the oldest file not yet verified in the store (0 when none).",
               [("", metrics.oldestUnverifiedDiscoveredAt.map { max(0, now.timeIntervalSince($0)) } ?? 0)])
        metric("uploader_uploaded_bytes_total", "counter", "Bytes sent to the evidence store by upload runs.",
               [("", Double(metrics.uploadedBytes))])
        metric("uploader_upload_retries_total", "counter", "Upload attempts retried after a transient failure.",
               [("", Double(metrics.uploadRetries))])
        metric("uploader_verification_failures_total", "counter", "Copies that did not match the camera's SHA-256 (spool or store).",
               [("", Double(metrics.verificationFailures))])
        if let spoolUsedRatio {
            metric("uploader_spool_used_ratio", "gauge", "Share of the spool's file system in use.", [("", spoolUsedRatio)])
        }
        metric("uploader_spool_above_high_watermark", "gauge", "1 while docks leave files on the camera for lack of spool space.",
               [("", spoolAboveHighWatermark ? 1 : 0)])
        return lines.joined(separator: "\n") + "\n"
    }
}
