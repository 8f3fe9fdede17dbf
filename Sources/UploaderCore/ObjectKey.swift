import Foundation

/// Turns a key template like `{prefix}/{user}/{yyyy}/{mm}/{dd}/{serial}/{name}`
/// into an object key. Every substituted value is reduced to a safe character
/// set, so a hostile file name or user id can never add path segments.
public enum ObjectKeyTemplate {
    public static let tokens: Set<String> = ["prefix", "user", "serial", "name", "stem", "ext", "sha256",
                                             "yyyy", "mm", "dd", "HH", "MM", "SS", "id"]

    public struct Values: Sendable {
        public var prefix: String
        public var user: String
        public var serial: String
        public var name: String
        public var sha256: String
        public var recordedAt: Date
        public var fileID: Int64

        public init(prefix: String, user: String, serial: String, name: String, sha256: String, recordedAt: Date, fileID: Int64) {
            self.prefix = prefix
            self.user = user
            self.serial = serial
            self.name = name
            self.sha256 = sha256
            self.recordedAt = recordedAt
            self.fileID = fileID
        }
    }

    /// A message when the template cannot work, else nil.
    public static func validate(_ template: String) -> String? {
        var names: [String] = []
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            guard let close = rest[open...].firstIndex(of: "}") else { return "has a '{' without a closing '}'" }
            names.append(String(rest[rest.index(after: open)..<close]))
            rest = rest[rest.index(after: close)...]
        }
        if let unknown = names.first(where: { !tokens.contains($0) }) {
            return "unknown placeholder {\(unknown)}; known ones are \(tokens.sorted().map { "{\($0)}" }.joined(separator: " "))"
        }
        if !names.contains("name"), !names.contains("sha256"), !names.contains("id"), !names.contains("stem") {
            return "must contain {name}, {stem}, {sha256} or {id} so that two files never share a key"
        }
        return nil
    }

    public static func render(_ template: String, _ values: Values) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: values.recordedAt)
        func two(_ value: Int?) -> String { String(format: "%02d", value ?? 0) }
        let safeName = sanitize(values.name)
        let dot = safeName.lastIndex(of: ".")
        let substitutions: [String: String] = [
            "prefix": values.prefix.split(separator: "/").map { sanitize(String($0)) }.joined(separator: "/"),
            "user": sanitize(values.user),
            "serial": sanitize(values.serial),
            "name": safeName,
            "stem": dot.map { String(safeName[..<$0]) } ?? safeName,
            "ext": dot.map { String(safeName[safeName.index(after: $0)...]) } ?? "",
            "sha256": values.sha256,
            "yyyy": String(format: "%04d", parts.year ?? 0),
            "mm": two(parts.month), "dd": two(parts.day),
            "HH": two(parts.hour), "MM": two(parts.minute), "SS": two(parts.second),
            "id": String(values.fileID),
        ]
        var output = ""
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            output += rest[..<open]
            output += substitutions[String(rest[rest.index(after: open)..<close])] ?? ""
            rest = rest[rest.index(after: close)...]
        }
        output += rest
        // An empty prefix or user must not leave empty segments ("//") in the key.
        return output.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
    }

    /// Keeps letters, digits, `.`, `_` and `-`; anything else becomes `_`.
    /// A value made only of dots ("..") becomes underscores.
    public static func sanitize(_ value: String) -> String {
        var result = String(value.unicodeScalars.map { scalar -> Character in
            let allowed = (scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar))) || scalar == "." || scalar == "_" || scalar == "-"
            return allowed ? Character(scalar) : "_"
        })
        if result.isEmpty { result = "_" }
        if result.allSatisfy({ $0 == "." }) { result = String(repeating: "_", count: result.count) }
        return result
    }
}

extension ObjectKeyTemplate {
    /// `key` made distinct for one file: "~ID" (then "~ID-2", "~ID-3"…) before the
    /// extension of its last segment. Two camera files whose template values are
    /// all equal (the same name in two folders, recorded the same day) get
    /// distinct keys this way, whatever the template.
    public static func disambiguated(_ key: String, fileID: Int64, attempt: Int = 1) -> String {
        withSuffix(key, "~\(fileID)" + (attempt > 1 ? "-\(attempt)" : ""))
    }

    /// `key` with `suffix` before the extension of its last segment
    /// ("p/u/FILE.MP4" + "~x" → "p/u/FILE~x.MP4"), or at its end when it has none.
    public static func withSuffix(_ key: String, _ suffix: String) -> String {
        let segmentStart = key.lastIndex(of: "/").map { key.index(after: $0) } ?? key.startIndex
        if let dot = key[segmentStart...].lastIndex(of: "."), dot > segmentStart {
            return key[..<dot] + suffix + key[dot...]
        }
        return key + suffix
    }
}
