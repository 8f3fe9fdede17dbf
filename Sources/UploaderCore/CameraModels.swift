import Foundation
import TOMLKit

/// One supported camera model, read from the models file: how to recognise
/// it on the USB bus, where its media lives, how to read its serial and its
/// recording times. Admins add models by editing data, never code.
public struct CameraModel: Sendable, Equatable {
    public enum SerialSource: Sendable, Equatable {
        /// The USB serial (udev `ID_SERIAL_SHORT` / sysfs `serial`).
        case usb
        /// The first line of a file on the volume, for cameras whose USB serial is generic.
        case file(String)
    }

    public enum RecordingTimeSource: Sendable, Equatable {
        /// MP4/MOV `mvhd`, else the file time.
        case container
        /// A time in the file name, e.g. `YYYYMMDD_hhmmss`; else the file time.
        case fileName(String)
        case fileTime
    }

    public var id: String
    public var name: String
    /// `(vendor, product)` pairs, lowercase hex.
    public var usbIDs: [USBID]
    /// Folders on the volume that hold media; empty means the whole volume.
    public var mediaFolders: [String]
    /// Shell-style patterns (case-insensitive) such as `*.mp4`.
    public var filePatterns: [String]
    public var serialSource: SerialSource
    public var recordingTime: RecordingTimeSource
    public var cameraClock: Configuration.CameraClock
    /// How the camera numbers its files (`VID####`), if it does: a number
    /// missing between two files seen is a custody warning.
    public var fileNumber: FileNumberPattern? = nil
    /// The retention category of this model's files when nobody tagged them (`[categories.NAME]`).
    public var category: String? = nil
    /// Overrides `[camera] clear` for this model.
    public var clear: CameraClearPolicy? = nil
    /// Where the camera reports its clock (and, if settable, reads it back).
    public var clock: CameraClockFile? = nil

    public func matches(_ id: USBID) -> Bool { usbIDs.contains(id) }
}

/// A camera's file numbering: literal text and one run of `#` digits,
/// matched case-insensitively against a file name without its extension
/// (`VID####` matches `VID0042.MP4`).
public struct FileNumberPattern: Sendable, Equatable {
    public let prefix: String
    public let digits: Int
    public let suffix: String

    public init?(_ text: String) {
        let runs = text.split(separator: "#", omittingEmptySubsequences: false)
        guard let first = text.firstIndex(of: "#"), let last = text.lastIndex(of: "#") else { return nil }
        let hashes = text[first...last]
        guard hashes.allSatisfy({ $0 == "#" }), (1...9).contains(hashes.count), runs.count == hashes.count + 1 else { return nil }
        prefix = String(text[..<first]).uppercased()
        suffix = String(text[text.index(after: last)...]).uppercased()
        digits = hashes.count
        guard !prefix.contains("."), !suffix.contains("."), !prefix.contains("/"), !suffix.contains("/") else { return nil }
    }

    /// The number in a file name (`DCIM/100BWC/VID0042.MP4` → 42), if it follows the pattern.
    public func number(inPath path: String) -> Int? {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        let stem = (name.lastIndex(of: ".").map { String(name[..<$0]) } ?? name).uppercased()
        guard stem.count == prefix.count + digits + suffix.count, stem.hasPrefix(prefix), stem.hasSuffix(suffix) else { return nil }
        let middle = stem.dropFirst(prefix.count).dropLast(suffix.count)
        guard middle.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(middle)
    }

    public func name(_ number: Int) -> String {
        let text = String(number)
        return prefix + String(repeating: "0", count: max(0, digits - text.count)) + text + suffix
    }
}

public struct USBID: Sendable, Hashable, CustomStringConvertible {
    public var vendor: String
    public var product: String

    public init(vendor: String, product: String) {
        self.vendor = vendor.lowercased()
        self.product = product.lowercased()
    }

    /// Parses `"2b4c:0001"`.
    public init?(_ text: String) {
        let parts = text.split(separator: ":")
        guard parts.count == 2, parts.allSatisfy({ $0.count == 4 && $0.allSatisfy(\.isHexDigit) }) else { return nil }
        self.init(vendor: String(parts[0]), product: String(parts[1]))
    }

    public var description: String { "\(vendor):\(product)" }
}

public struct CameraModels: Sendable, Equatable {
    public var models: [CameraModel]
    public var sourcePath: String

    public func model(for id: USBID) -> CameraModel? { models.first { $0.matches(id) } }

    public static func parse(_ text: String, path: String) throws -> CameraModels {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw UploaderError.configuration(path: path, problems: [ConfigProblem(line: error.source.begin.line, key: "syntax", message: error.description)])
        }
        var problems: [ConfigProblem] = []
        var models: [CameraModel] = []
        let entries = table["model"]?.tomlValue.array.map { Array($0) } ?? []
        if entries.isEmpty {
            problems.append(ConfigProblem(line: nil, key: "model", message: "no [[model]] entries; at least one is needed"))
        }
        let modelLines = text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            .filter { $0.element.trimmingCharacters(in: .whitespaces) == "[[model]]" }.map { $0.offset + 1 }
        var seenIDs: Set<USBID> = []
        for (index, entry) in entries.enumerated() {
            let line = index < modelLines.count ? modelLines[index] : nil
            func problem(_ key: String, _ message: String) {
                problems.append(ConfigProblem(line: line, key: "model[\(index + 1)].\(key)", message: message))
            }
            guard let model = entry.table else { problem("", "must be a table"); continue }
            func string(_ key: String, default value: String? = nil) -> String {
                if let text = model[key]?.tomlValue.string { return text }
                if let value { return value }
                problem(key, "is missing")
                return ""
            }
            func strings(_ key: String) -> [String] {
                guard let array = model[key]?.tomlValue.array else { return [] }
                let texts = array.compactMap(\.string)
                if texts.count != array.count { problem(key, "must be a list of strings") }
                return texts
            }
            let id = string("id")
            let usbIDs = strings("usb_ids").compactMap { text -> USBID? in
                guard let parsed = USBID(text) else { problem("usb_ids", "\"\(text)\" is not vendor:product in hex, like \"2b4c:0001\""); return nil }
                return parsed
            }
            for usbID in usbIDs where !seenIDs.insert(usbID).inserted {
                problem("usb_ids", "\(usbID) is listed by two models; a camera must match one model")
            }
            let serialText = string("serial", default: "usb")
            let serial: CameraModel.SerialSource
            if serialText == "usb" {
                serial = .usb
            } else if serialText.hasPrefix("file:"), serialText.count > 5 {
                serial = .file(String(serialText.dropFirst(5)))
            } else {
                problem("serial", "must be \"usb\" or \"file:PATH\" (a file on the camera holding its serial)")
                serial = .usb
            }
            let timeText = string("recording_time", default: "container")
            let recording: CameraModel.RecordingTimeSource
            switch timeText {
            case "container": recording = .container
            case "file-time": recording = .fileTime
            case let text where text.hasPrefix("filename:"):
                let pattern = String(text.dropFirst("filename:".count))
                if FileNameTime.validate(pattern) != nil { problem("recording_time", FileNameTime.validate(pattern)!) }
                recording = .fileName(pattern)
            default:
                problem("recording_time", "must be \"container\", \"file-time\" or \"filename:YYYYMMDD_hhmmss\"")
                recording = .container
            }
            let clockText = string("camera_clock", default: "utc")
            let clock = Configuration.CameraClock(rawValue: clockText) ?? {
                problem("camera_clock", "must be \"utc\" or \"local\"")
                return .utc
            }()
            var fileNumber: FileNumberPattern?
            if let text = model["file_number"]?.tomlValue.string {
                fileNumber = FileNumberPattern(text)
                if fileNumber == nil { problem("file_number", "must be the file name's numbering with one run of # for the digits, like \"VID####\"") }
            } else if model["file_number"] != nil {
                problem("file_number", "must be a string like \"VID####\"")
            }
            var clear: CameraClearPolicy?
            if let text = model["clear"]?.tomlValue.string {
                clear = CameraClearPolicy(rawValue: text)
                if clear == nil { problem("clear", "must be \"never\" or \"after-verified\"") }
            }
            var clockFile: CameraClockFile?
            if let path = model["clock_file"]?.tomlValue.string {
                let format = string("clock_format", default: "YYYY-MM-DD hh:mm:ss")
                if let problemText = FileNameTime.validate(format) { problem("clock_format", problemText) }
                clockFile = CameraClockFile(path: path, format: format, settable: model["clock_settable"]?.tomlValue.bool ?? false)
            }
            models.append(CameraModel(id: id, name: string("name", default: id), usbIDs: usbIDs,
                                      mediaFolders: strings("media_folders"), filePatterns: strings("file_patterns"),
                                      serialSource: serial, recordingTime: recording, cameraClock: clock, fileNumber: fileNumber,
                                      category: model["category"]?.tomlValue.string, clear: clear, clock: clockFile))
        }
        if !problems.isEmpty { throw UploaderError.configuration(path: path, problems: problems) }
        return CameraModels(models: models, sourcePath: path)
    }
}

/// How a camera model reports its clock: a file on the volume holding the
/// camera's time when docked (first line, in `format`, in the model's
/// camera_clock zone). `settable`: the camera reads the file back at power-on,
/// so the dock may write its own time there (only when the clearing policy
/// lets the dock write to the camera).
public struct CameraClockFile: Sendable, Equatable, Codable {
    public var path: String
    public var format: String
    public var settable: Bool

    public init(path: String, format: String, settable: Bool) {
        self.path = path
        self.format = format
        self.settable = settable
    }
}

/// Reads a recording time out of a file name with a pattern of `YYYY`, `MM`,
/// `DD`, `hh`, `mm`, `ss` and literal characters, found anywhere in the name.
public enum FileNameTime {
    static let fields = ["YYYY": 4, "MM": 2, "DD": 2, "hh": 2, "mm": 2, "ss": 2]

    public static func validate(_ pattern: String) -> String? {
        let tokens = tokenize(pattern)
        let names = tokens.compactMap { if case .field(let name, _) = $0 { return name } else { return nil } }
        for required in ["YYYY", "MM", "DD"] where !names.contains(required) {
            return "a file-name time pattern needs at least YYYY, MM and DD (and usually hh, mm, ss)"
        }
        return nil
    }

    enum Token: Equatable {
        case field(String, Int)
        case literal(Character)
    }

    static func tokenize(_ pattern: String) -> [Token] {
        var tokens: [Token] = []
        var rest = Substring(pattern)
        outer: while !rest.isEmpty {
            for (name, width) in fields where rest.hasPrefix(name) {
                tokens.append(.field(name, width))
                rest = rest.dropFirst(name.count)
                continue outer
            }
            tokens.append(.literal(rest.first!))
            rest = rest.dropFirst()
        }
        return tokens
    }

    /// `date` written in `pattern` (the inverse of `date(in:)`), in `timeZone`.
    public static func render(_ date: Date, pattern: String, timeZone: TimeZone) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let values = ["YYYY": parts.year!, "MM": parts.month!, "DD": parts.day!, "hh": parts.hour!, "mm": parts.minute!, "ss": parts.second!]
        return tokenize(pattern).map { token in
            switch token {
            case .literal(let character): String(character)
            case .field(let name, let width): String(format: "%0\(width)d", values[name]!)
            }
        }.joined()
    }

    /// The time in `name` as wall-clock components, interpreted in `timeZone`.
    public static func date(in name: String, pattern: String, timeZone: TimeZone) -> Date? {
        let tokens = tokenize(pattern)
        let characters = Array(name)
        let length = tokens.reduce(0) { total, token in
            if case .field(_, let width) = token { return total + width }
            return total + 1
        }
        guard characters.count >= length else { return nil }
        for start in 0...(characters.count - length) {
            var values: [String: Int] = [:]
            var position = start
            var matched = true
            for token in tokens {
                switch token {
                case .literal(let character):
                    if characters[position] != character { matched = false }
                    position += 1
                case .field(let field, let width):
                    let digits = String(characters[position..<position + width])
                    guard digits.allSatisfy(\.isNumber), let value = Int(digits) else { matched = false; break }
                    values[field] = value
                    position += width
                }
                if !matched { break }
            }
            guard matched else { continue }
            var components = DateComponents()
            components.timeZone = timeZone
            components.year = values["YYYY"]
            components.month = values["MM"]
            components.day = values["DD"]
            components.hour = values["hh"] ?? 0
            components.minute = values["mm"] ?? 0
            components.second = values["ss"] ?? 0
            guard let month = components.month, (1...12).contains(month), let day = components.day, (1...31).contains(day),
                  (0...23).contains(components.hour!), (0...59).contains(components.minute!), (0...60).contains(components.second!) else { continue }
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = timeZone
            return calendar.date(from: components)
        }
        return nil
    }
}

/// What an ingest copies and how it dates files: from a camera model when
/// docking, from the configuration for `uploader ingest`.
public struct IngestProfile: Sendable, Equatable {
    public var mediaFolders: [String]
    public var filePatterns: [String]
    public var recordingTime: CameraModel.RecordingTimeSource
    public var cameraClock: Configuration.CameraClock
    public var fileNumber: FileNumberPattern?
    /// How far the camera's clock is ahead of the dock's (seconds; negative:
    /// behind), measured at this dock: recording times are corrected by it.
    public var clockDrift: TimeInterval = 0

    public init(mediaFolders: [String], filePatterns: [String], recordingTime: CameraModel.RecordingTimeSource, cameraClock: Configuration.CameraClock,
                fileNumber: FileNumberPattern? = nil) {
        self.mediaFolders = mediaFolders
        self.filePatterns = filePatterns
        self.recordingTime = recordingTime
        self.cameraClock = cameraClock
        self.fileNumber = fileNumber
    }

    public init(_ configuration: Configuration) {
        self.init(mediaFolders: [], filePatterns: configuration.ingest.mediaExtensions.map { "*.\($0)" },
                  recordingTime: .container, cameraClock: configuration.ingest.cameraClock)
    }

    public init(_ model: CameraModel) {
        self.init(mediaFolders: model.mediaFolders, filePatterns: model.filePatterns, recordingTime: model.recordingTime, cameraClock: model.cameraClock,
                  fileNumber: model.fileNumber)
    }

    /// Case-insensitive shell-style match (`*` and `?`) of a file name.
    public func accepts(fileName: String) -> Bool {
        if filePatterns.isEmpty { return true }
        let name = Array(fileName.lowercased())
        return filePatterns.contains { Self.glob(Array($0.lowercased()), name) }
    }

    static func glob(_ pattern: [Character], _ name: [Character]) -> Bool {
        var p = 0, n = 0, starP = -1, starN = 0
        while n < name.count {
            if p < pattern.count, pattern[p] == "?" || pattern[p] == name[n] {
                p += 1; n += 1
            } else if p < pattern.count, pattern[p] == "*" {
                starP = p; starN = n; p += 1
            } else if starP >= 0 {
                p = starP + 1; starN += 1; n = starN
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == "*" { p += 1 }
        return p == pattern.count
    }
}
