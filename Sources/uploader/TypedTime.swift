import ArgumentParser
import Foundation
import UploaderCore

/// Times typed on the command line. A command checks them in `validate()`
/// (a usage error: one line, exit 2, before anything is opened) and reads
/// them again in its run, where they parse.
enum TypedTime {
    /// An ISO 8601 time (`--from`, `--to`); without a zone, this PC's local time.
    static func absolute(_ text: String?, option: String) throws -> Date? {
        guard let text else { return nil }
        guard let date = Timestamps.parse(text) else {
            throw ValidationError("--\(option) \(text) is not a time: use e.g. 2026-11-23T21:00 or 2026-11-23T21:00:00Z")
        }
        return date
    }

    /// An ISO 8601 time, or how long ago (`--since 2h`, `7d`).
    static func since(_ text: String?) throws -> Date? {
        guard let text else { return nil }
        guard let date = Timestamps.parseSince(text) else {
            throw ValidationError("--since \(text) is not a time: use e.g. 2026-11-24T06:00, 2h or 7d")
        }
        return date
    }
}
