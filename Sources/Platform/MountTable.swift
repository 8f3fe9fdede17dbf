import Foundation

/// The kernel's mount table for this process (`/proc/self/mountinfo`), read in
/// one place. Paths there escape space, tab, newline and backslash as octal
/// (`\040`, `\011`, `\012`, `\134`); they are unescaped here, once.
public struct MountTable: Sendable {
    public struct Entry: Sendable, Equatable {
        public var mountPoint: String
        public var options: String
        public var source: String
        public var fileSystem: String
    }

    public var entries: [Entry]

    /// The current table; empty if it cannot be read.
    public static func current() -> MountTable {
        let text = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        return MountTable(parsing: text)
    }

    /// Parses mountinfo lines: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL…] - FSTYPE SOURCE SUPEROPTIONS`.
    public init(parsing text: String) {
        entries = text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            guard fields.count > 6, let dash = fields[6...].firstIndex(of: "-"), dash + 2 < fields.count else { return nil }
            return Entry(mountPoint: Self.unescape(fields[4]), options: fields[5],
                         source: Self.unescape(fields[dash + 2]), fileSystem: fields[dash + 1])
        }
    }

    public func entry(at mountPoint: String) -> Entry? {
        entries.last { $0.mountPoint == mountPoint }
    }

    /// Mounts strictly below `root`.
    public func entries(under root: String) -> [Entry] {
        let prefix = root.hasSuffix("/") ? root : root + "/"
        return entries.filter { $0.mountPoint.hasPrefix(prefix) }
    }

    static func unescape(_ field: String) -> String {
        guard field.contains("\\") else { return field }
        var bytes: [UInt8] = []
        let utf8 = Array(field.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "\\"), index + 3 < utf8.count,
               let value = UInt8(String(decoding: utf8[(index + 1)...(index + 3)], as: UTF8.self), radix: 8) {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
