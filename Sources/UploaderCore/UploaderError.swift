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
        /// A state change the transition table does not allow from the file's
        /// current state: another process (or an admin) got there first.
        case transitionRefused
        /// Another process is working on the same thing right now.
        case busy
        /// Something the operating system must fix: folder owners and modes.
        case insecure
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
        self.cause = cause
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
}
