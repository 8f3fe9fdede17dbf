import Foundation
import Ledger
import Platform
import Spool
import UploaderCore

/// What `uploader status` shows (and `--json` prints): read from the ledger's
/// counters and indexes, the spool's file system and the backlog forecast.
public struct StatusReport: Encodable, Sendable {
    public struct Uploading: Encodable, Sendable {
        public var id: Int64
        public var sourcePath: String
        public var serial: String
        public var objectKey: String?
        public var bytesSent: Int64
        public var size: Int64
        public var bytesPerSecond: Double?
        public var etaSeconds: Double?
    }

    public struct SpoolReport: Encodable, Sendable {
        public var path: String
        public var files: Int
        public var bytes: Int64
        public var freeBytes: Int64?
        public var totalBytes: Int64?
        public var usedPercent: Double?
        /// Above the high watermark: new docks leave files on the camera.
        public var holdingDocks: Bool
    }

    public var generatedAt: Date
    public var store: String
    public var ledger: String
    public var states: [FileState: StateTotals]
    public var devices: [DeviceSummary]
    public var oldestUnverified: MediaFile?
    public var uploading: [Uploading]
    public var problems: [MediaFile]
    public var spool: SpoolReport
    public var backlog: BacklogForecast
    /// Cases and the files tagged with one; tags given after upload still to reach the store.
    public var tags: TagSummary
    /// Signed custody checkpoints still to reach the store.
    public var unpublishedCheckpoints: UnpublishedCheckpoints
    /// The oldest of them waited past `CustodyCheckpoints.publishDeadline`: an alert.
    public var checkpointsOverdue: Bool

    /// Blocking (SQLite, statvfs).
    public static func make(configuration: Configuration, ledger: Ledger, now: Date = Date()) throws -> StatusReport {
        let summary = try ledger.summary()
        let uploading = summary.uploading.map { file -> Uploading in
            let elapsed = file.uploadStartedAt.map { now.timeIntervalSince($0) } ?? 0
            let rate = elapsed > 0 && file.bytesSent > 0 ? Double(file.bytesSent) / elapsed : nil
            return Uploading(id: file.id, sourcePath: file.sourcePath, serial: file.serial, objectKey: file.objectKey,
                             bytesSent: file.bytesSent, size: file.sourceSize, bytesPerSecond: rate,
                             etaSeconds: rate.map { Double(file.sourceSize - file.bytesSent) / $0 })
        }
        let spool = Spool(root: configuration.spoolDirectory)
        let space = spool.space()
        let pressure = SpoolPressure(spool: spool, highPercent: configuration.ingest.highWatermarkPercent,
                                     lowPercent: configuration.ingest.lowWatermarkPercent)
        let backlog = BacklogForecast.make(waitingBytes: summary.states.waiting.bytes, measuredRate: try ledger.measuredUploadRate(),
                                           schedule: configuration.schedule, bandwidth: configuration.bandwidth, now: now)
        return StatusReport(
            generatedAt: now, store: "\(configuration.store.endpoint)/\(configuration.store.bucket)", ledger: ledger.path,
            states: summary.states, devices: summary.devices, oldestUnverified: summary.oldestUnverified,
            uploading: uploading, problems: summary.problems,
            spool: SpoolReport(path: configuration.spoolDirectory, files: summary.spoolFiles, bytes: summary.spoolBytes,
                               freeBytes: space?.available, totalBytes: space?.total,
                               usedPercent: pressure.usedPercent, holdingDocks: pressure.isHolding),
            backlog: backlog, tags: try ledger.tagSummary(),
            unpublishedCheckpoints: try ledger.unpublishedCheckpoints(), checkpointsOverdue: try CustodyCheckpoints.overdue(ledger: ledger, now: now) != nil)
    }
}
