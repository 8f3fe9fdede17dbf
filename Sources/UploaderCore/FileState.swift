/// Where one camera file is on its way to the evidence store.
///
/// `discovered → copying → spooled → uploading → uploaded → verified`, with
/// `failed` (will be retried, or waits for an admin), `quarantined` (held for
/// a person: unknown device, hostile name, corrupted spool copy…) and
/// `cancelled`.
///
/// The allowed transitions are the table below and nowhere else: the ledger
/// applies a change only with `UPDATE … WHERE state IN (sources)` and checks
/// the row count, so no process can overwrite a state it did not expect.
///
/// | to            | from                                                     |
/// |---------------|----------------------------------------------------------|
/// | copying       | discovered, copying¹, failed, quarantined                 |
/// | spooled       | copying, quarantined², uploading³, cancelled⁴             |
/// | uploading     | spooled, uploading¹, uploaded, failed                     |
/// | uploaded      | uploading                                                |
/// | verified      | uploaded                                                 |
/// | failed        | discovered, copying, spooled, uploading, uploaded, failed, cancelled⁴ |
/// | quarantined   | discovered, copying, spooled, uploading, uploaded, quarantined, failed |
/// | cancelled     | discovered, copying, spooled, uploading, failed           |
///
/// ¹ taken over from a process that died holding it. ² released when its
/// camera is registered. ³ the store refused the run (credentials, bucket):
/// back in the queue. ⁴ an admin's `retry`. `verified` is final.
public enum FileState: String, Sendable, CaseIterable, Codable {
    case discovered
    case copying
    case spooled
    case uploading
    case uploaded
    case verified
    case failed
    case quarantined
    case cancelled

    /// The states a file may be in for a change to `self`.
    public var allowedSources: Set<FileState> {
        switch self {
        case .discovered: []
        case .copying: [.discovered, .copying, .failed, .quarantined]
        case .spooled: [.copying, .quarantined, .uploading, .cancelled]
        case .uploading: [.spooled, .uploading, .uploaded, .failed]
        case .uploaded: [.uploading]
        case .verified: [.uploaded]
        case .failed: [.discovered, .copying, .spooled, .uploading, .uploaded, .failed, .cancelled]
        case .quarantined: [.discovered, .copying, .spooled, .uploading, .uploaded, .quarantined, .failed]
        case .cancelled: [.discovered, .copying, .spooled, .uploading, .failed]
        }
    }

    public func canChange(to next: FileState) -> Bool { next.allowedSources.contains(self) }

    /// On its way to the store and not yet verified: the upload queue, the
    /// backlog `status` forecasts, and what the progress line and the
    /// daemon's status count as waiting. The one definition of "waiting".
    public static let waiting: [FileState] = [.spooled, .uploading, .uploaded, .failed]
}

/// Summaries keyed by state encode as `{"verified": …}` in `--json`.
extension FileState: CodingKeyRepresentable {}

/// Why a file is held in quarantine; shown in `status` and the log.
public enum HoldReason: String, Sendable, Codable, CaseIterable {
    case unknownDevice = "unknown device"
    case hostileEntry = "hostile entry"
    case unreadable = "unreadable"
    case spoolCorrupted = "spool copy corrupted"
    /// The same camera file (path, size, time) read differently the second
    /// time: kept for a person to look at, never silently replaced.
    case cameraFileChanged = "camera file changed since first read"

    /// Whether a new dock copies the file again.
    public var copiedAgainOnDock: Bool {
        switch self {
        case .spoolCorrupted, .unreadable: true
        case .unknownDevice, .hostileEntry, .cameraFileChanged: false
        }
    }
}

/// Where a file's recording time came from, recorded in the ledger because
/// the attribution of a pooled camera depends on it.
public enum RecordingTimeSource: String, Sendable, Codable {
    case containerMetadata = "mp4-mvhd"
    case fileName = "file-name"
    case fileModificationTime = "file-mtime"
    /// A sidecar takes its recording's time (and so its officer).
    case recording = "recording"
}

/// What a custody-log event records. Stored as its text; alerts, metrics and
/// the views select on these, never on message text.
public enum EventKind: String, Sendable, Codable, CaseIterable {
    case deviceRegistered = "device.registered"
    case deviceRemoved = "device.removed"
    case deviceAssigned = "device.assigned"
    case deviceUnassigned = "device.unassigned"
    /// A fleet registry commit applied from the store, or ignored (bad signature, not a member, refused).
    case fleetCommit = "fleet.commit"
    case fleetRejected = "fleet.rejected"
    case fleetJoined = "fleet.joined"

    case fileDiscovered = "file.discovered"
    case fileCopying = "file.copying"
    case fileSpooled = "file.spooled"
    case fileHeld = "file.held"
    case fileReleased = "file.released"
    case fileAttributed = "file.attributed"
    case fileQuarantined = "file.quarantined"
    case fileMismatch = "file.mismatch"
    case fileFailed = "file.failed"
    case fileSuperseded = "file.superseded"
    case fileCancelled = "file.cancelled"
    case fileRetry = "file.retry"
    case filePrioritized = "file.prioritized"
    /// A verified file deleted from the camera by the clearing policy (or kept, and why).
    case cameraCleared = "camera.cleared"
    case cameraKept = "camera.kept"
    /// The camera's clock against the dock's at a dock (drift), or the dock set it.
    case cameraClock = "camera.clock"
    /// A sidecar (GPS track, metadata) linked to its recording.
    case fileLinked = "file.linked"
    /// Case, incident, category or note set (`uploader tag`; the actor is who tagged).
    case fileTagged = "file.tagged"

    case ingestStarted = "ingest.started"
    case ingestFinished = "ingest.finished"
    case spoolCleanup = "spool.cleanup"
    case spoolFull = "spool.full"
    case spoolPurged = "spool.purged"
    /// A spool copy no longer matched the camera's SHA-256 (a verification failure).
    case spoolCorrupted = "spool.corrupted"
    /// A new spool key seals new copies (`uploader key rotate`, or the first one made).
    case spoolKeyAdded = "spool.key-added"
    /// A spool key no copy needs any more was dropped from the keyring.
    case spoolKeyRetired = "spool.key-retired"

    case uploadRun = "upload.run"
    case uploadStarted = "upload.started"
    case uploadMultipart = "upload.multipart"
    case uploadRetry = "upload.retry"
    case uploadPaused = "upload.paused"
    case uploadRefused = "upload.refused"
    case uploadRekeyed = "upload.rekeyed"
    case uploadFound = "upload.found"
    case uploadCompleted = "upload.completed"
    case uploadVerified = "upload.verified"
    case uploadStaleAborted = "upload.stale-aborted"
    case uploadTakenOver = "upload.taken-over"
    /// Tags, retention or legal hold applied to a stored object (or refused by the store).
    case uploadTagged = "upload.tagged"

    case dockStarted = "dock.started"
    case dockFinished = "dock.finished"
    case dockInterrupted = "dock.interrupted"
    case dockRefused = "dock.refused"
    case dockIgnored = "dock.ignored"
    /// Written by agents before the dock unit unmounted on its own; kept to read old logs.
    case dockUnmount = "dock.unmount"
    case dockStaleMount = "dock.stale-mount"
    /// A dock waits for one of the [docking] max_concurrent_docks slots.
    case dockWaiting = "dock.waiting"

    case daemonStarted = "daemon.started"
    case daemonStopped = "daemon.stopped"
    case daemonNoUploads = "daemon.no-uploads"
    /// The daemon asked systemd to start a camera's dock unit (or could not).
    case daemonDockUnit = "daemon.dock-unit"

    /// A signed checkpoint of the custody log reached the store (or could not).
    case custodyCheckpoint = "custody.checkpoint"
    case custodyProblem = "custody.problem"
    /// A file number missing on a camera between two files seen.
    case custodyGap = "custody.gap"
    /// Files exported as an evidence bag (who did it is the event's actor).
    case custodyExport = "custody.export"
    /// The ledger's schema was upgraded (what changed is in the message).
    case ledgerMigrated = "ledger.migrated"
    /// From this event on, hashes are framed (length-prefixed fields); it fixes
    /// a digest of every file row as it stood (the custody baseline).
    case custodyFormat = "custody.format"

    case alertSent = "alert.sent"
    case alertFailed = "alert.failed"
}
