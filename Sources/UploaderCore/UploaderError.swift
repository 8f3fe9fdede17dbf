/// The one error type users see. `message` is a single sentence that says
/// what went wrong and what to do; `cause` keeps the technical chain
/// (errno, curl code, SQLite code, S3 error) for `--verbose` and the ledger.
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
        case spoolCorrupted
        case network
        case storeRejected
        case storeAuth
        case storeMissingBucket
        case verification
        case usage
        case notFound
    }

    public var code: Code
    public var message: String
    public var cause: String?
    public var origin: String

    public init(_ code: Code, _ message: String, cause: String? = nil,
                origin: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.cause = cause
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
}
