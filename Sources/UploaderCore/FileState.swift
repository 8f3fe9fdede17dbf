/// Where one camera file is on its way to the evidence store.
///
/// `discovered → copying → spooled → uploading → uploaded → verified`, with
/// `failed` (will be retried), `quarantined` (held for a person: unknown
/// device, hostile name, corrupted spool copy…) and `cancelled`.
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

    /// States in which the spool holds a complete, verified copy.
    public static let secured: Set<FileState> = [.spooled, .uploading, .uploaded, .verified]

    /// States an upload run picks up.
    public static let uploadable: Set<FileState> = [.spooled, .uploading, .uploaded, .failed]
}

/// Why a file is held in quarantine; shown in `status` and the log.
public enum HoldReason: String, Sendable, Codable {
    case unknownDevice = "unknown device"
    case hostileEntry = "hostile entry"
    case unreadable = "unreadable"
    case spoolCorrupted = "spool copy corrupted"
    /// The same camera file (path, size, time) read differently the second
    /// time: kept for a person to look at, never silently replaced.
    case cameraFileChanged = "camera file changed since first read"
}

/// Where a file's recording time came from, recorded in the ledger because
/// the attribution of a pooled camera depends on it.
public enum RecordingTimeSource: String, Sendable, Codable {
    case containerMetadata = "mp4-mvhd"
    case fileName = "file-name"
    case fileModificationTime = "file-mtime"
}
