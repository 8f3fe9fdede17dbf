import Foundation
import SystemPackage
import UploaderCore

/// Small files written whole: JSON handed between the dock unit's steps
/// (mount report, clearing plan and result), and keys made at first run.
public enum SideFile {
    /// Writes `value` as JSON, aside and then renamed over `path`: a reader
    /// sees the old file or the new one, never half of one.
    public static func writeJSON<Value: Encodable>(_ value: Value, to path: String, mode: mode_t) throws {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        try write(try encoder.encode(value), to: path, mode: mode)
    }

    /// Writes `contents` aside with `mode` from the start (a secret is never
    /// readable by others, not even for a moment), then renames it over `path`.
    public static func write(_ contents: Data, to path: String, mode: mode_t) throws {
        let temporary = uniqueTemporary(for: path)
        guard FileManager.default.createFile(atPath: temporary, contents: contents, attributes: [.posixPermissions: Int(mode)]),
              rename(temporary, path) == 0 else {
            let error = Errno(rawValue: errno)
            unlink(temporary)
            throw UploaderError(.io, "cannot write \(path): check that this user may write to its folder", cause: error.summary)
        }
    }

    /// The JSON at `path`, or nil when it is missing or not a `Value`.
    public static func readJSON<Value: Decodable>(_ type: Value.Type, from path: String) -> Value? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(type, from: data)
    }

    /// Creates `path` with `contents` unless it exists: written aside under a
    /// name of its own, then linked into place, so two first runs at once (two
    /// processes, or two threads of one) keep one file. `what` names it in errors.
    public static func createOnce(_ path: String, contents: Data, mode: mode_t, what: String) throws {
        let temporary = uniqueTemporary(for: path)
        guard FileManager.default.createFile(atPath: temporary, contents: contents, attributes: [.posixPermissions: Int(mode)]) else {
            throw UploaderError(.io, "cannot write \(what) \(path): check that the agent's user may write to its folder")
        }
        defer { unlink(temporary) }
        if link(temporary, path) != 0, errno != EEXIST {
            throw UploaderError(.io, "cannot create \(what) \(path)", cause: Errno(rawValue: errno).summary)
        }
    }

    static func uniqueTemporary(for path: String) -> String {
        path + ".\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
    }
}
