/// Every exit status of `uploader`, one meaning each. docs/exit-codes.md is
/// this table for readers; a test holds the two together.
public enum ExitStatus: Int32, Sendable, CaseIterable {
    /// Everything asked for was done.
    case success = 0
    /// Some files failed (see `uploader status`), or the command could not do its work.
    case failure = 1
    /// Bad arguments or a bad configuration: nothing was done.
    case usage = 2
    /// The run stopped early (camera removed, spool disk full, stopped by a
    /// signal): what was done is kept and the next run resumes.
    case interrupted = 3
    /// A check found something wrong: a broken custody chain, a file or bag
    /// that is not what was recorded.
    case evidenceProblem = 4
    /// `dock`: not a supported camera; nothing was touched.
    case unsupportedCamera = 5
    /// `dock`: a supported camera that could not be read (no serial, file system, or mount).
    case unreadableCamera = 6
    /// The store refuses this site (credentials, bucket, TLS certificate,
    /// server-side encryption): nothing uploads until an admin acts.
    case storeRefused = 7
    /// `verify-bag`: the bag is valid inside, but no anchor vouches for its
    /// signing key, so it proves nothing about who made it.
    case unanchored = 8

    /// What a command that failed with `error` exits with.
    public init(for error: UploaderError) {
        switch error.code {
        case .config, .usage: self = .usage
        case _ where error.stopsTheRun: self = .storeRefused
        default: self = .failure
        }
    }
}
