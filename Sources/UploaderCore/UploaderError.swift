/// The one error type users see. `message` is a single sentence that says
/// what went wrong and what to do; `cause` keeps the technical chain
/// (errno, curl code, SQLite code, S3 error) for `--verbose` and the ledger;
/// `underlying` is the same cause, typed, for code that branches on it.
public struct UploaderError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case config
        case credentials
        case ledger
        case io
        case diskFull
        case sourceVanished
        /// One camera file changed or disappeared between listing and copying.
        case sourceChanged
        case unreadable
        case hostileEntry
        case unknownDevice
        /// The spool copy cannot be read, or is not what was copied off the camera.
        case spoolCorrupted
        case verification
        case usage
        case notFound
        /// A state change the transition table does not allow from the file's
        /// current state: another process (or an admin) got there first.
        case transitionRefused
        /// Another process is working on the same thing right now.
        case busy
        /// Something the operating system must fix: folder owners and modes.
        case insecure
        /// OpenSSL refused an operation (random bytes, a key, a signature).
        case crypto
        /// We stopped the work on request (shutdown, window closed): not a failure.
        case stopped

        // The evidence store's answers, classified.
        /// Worth another attempt: connection trouble, timeouts, 5xx, SlowDown.
        case storeUnavailable
        /// Credentials, signature, permissions or clock: nothing uploads until an admin acts.
        case storeAuth
        /// The bucket does not exist: nothing uploads until an admin acts.
        case storeMissingBucket
        /// The TLS handshake failed (unknown CA, name mismatch, old protocol).
        case storeTLS
        /// The store cannot do the server-side encryption asked for (no KMS, unknown key).
        case storeEncryptionRefused
        /// The store received bytes whose SHA-256 is not the one we sent.
        case storeChecksumMismatch
        /// `If-None-Match: *` refused: an object already has this key.
        case storeObjectExists
        /// The multipart upload id is gone (aborted, expired or completed).
        case storeUploadGone
        /// The object is not (or no longer) the one just written: look again.
        case storeObjectMissing
        /// Anything else the store refused for this request.
        case storeRejected
        /// The object key was taken by other content and the file got a new one: send it again.
        case objectKeyTaken
    }

    /// The typed cause, for code that branches on it (`cause` is its text).
    public enum Underlying: Sendable, Equatable {
        /// A system call's errno.
        case errno(Int32)
        /// An SQLite result code.
        case sqlite(Int32)
        /// A refused state change: the file's state, and the one asked for.
        case transition(from: FileState?, to: FileState)
        /// Every problem found in a configuration file, located (`UploaderError.configuration`).
        case configuration(path: String, problems: [ConfigProblem])
        /// The store's answer: HTTP status, S3 error code, and how long it asked us to wait.
        case s3(status: Int, code: String, retryAfter: Double? = nil)
        /// A failure below HTTP (connection, TLS, timeout): libcurl's code and text.
        case curl(code: Int, text: String)
        /// The OpenSSL operation that failed.
        case crypto(String)
    }

    public var code: Code
    public var message: String
    public var cause: String?
    public var underlying: Underlying?
    public var origin: String

    public init(_ code: Code, _ message: String, cause: String? = nil, underlying: Underlying? = nil,
                origin: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.cause = cause ?? underlying.flatMap(Self.text(of:))
        self.underlying = underlying
        self.origin = "\(origin):\(line)"
    }

    public var description: String { message }

    /// The message plus its technical cause and where it was raised.
    public var verboseDescription: String {
        var text = message
        if let cause { text += "\n  cause: \(cause)" }
        text += "\n  at: \(origin)"
        return text
    }

    /// Whether the same request is worth another attempt in this run. The one
    /// place that answers it; how long to wait is `RetryPolicy`'s (with `retryAfter`).
    public var isRetryable: Bool {
        switch code {
        case .storeUnavailable, .storeUploadGone, .storeObjectMissing, .objectKeyTaken: true
        default: false
        }
    }

    /// Every file of the run would fail the same way: stop, leave files as they are.
    public var stopsTheRun: Bool {
        switch code {
        case .storeAuth, .storeMissingBucket, .storeTLS, .storeEncryptionRefused: true
        default: false
        }
    }

    /// The evidence store's answer, or its silence (connection, TLS, timeout):
    /// about the store, not about this PC's files.
    public var isFromTheStore: Bool {
        switch code {
        case .storeUnavailable, .storeAuth, .storeMissingBucket, .storeTLS, .storeEncryptionRefused,
             .storeChecksumMismatch, .storeObjectExists, .storeUploadGone, .storeObjectMissing, .storeRejected:
            true
        default:
            false
        }
    }

    /// How long the store asked us to wait (`Retry-After`), if it did.
    public var retryAfter: Double? {
        if case .s3(_, _, let retryAfter) = underlying { return retryAfter }
        return nil
    }

    /// The S3 error code the store answered with, if this is a store answer.
    public var storeCode: String? {
        if case .s3(_, let code, _) = underlying { return code }
        return nil
    }

    /// The technical text of a cause raised below the agent (the store, libcurl, OpenSSL).
    static func text(of underlying: Underlying) -> String? {
        switch underlying {
        case .errno, .sqlite, .transition, .configuration: nil
        case .s3(let status, let code, _): status > 0 ? "\(code) (HTTP \(status))" : code
        case .curl(let code, let text): "curl error \(code): \(text)"
        case .crypto(let what): "OpenSSL: \(what) failed"
        }
    }
}
