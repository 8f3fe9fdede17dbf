import Foundation
import TOMLKit

/// Everything the agent reads from `uploader.toml`. Built only through
/// `ConfigurationLoader`, so an instance is always valid.
public struct Configuration: Sendable, Equatable {
    public enum Addressing: String, Sendable, Equatable, CaseIterable {
        case path
        case virtualHosted = "virtual-hosted"
    }

    public enum CredentialSource: Sendable, Equatable {
        /// A file readable only by the agent (mode 0600 or stricter).
        case file(String)
        /// `UPLOADER_ACCESS_KEY_ID` / `UPLOADER_SECRET_ACCESS_KEY`.
        case environment
    }

    public enum CameraClock: String, Sendable, Equatable, CaseIterable {
        /// Container times are UTC, as ISO 14496-12 says.
        case utc
        /// Container times are the camera's local wall clock (many cameras do this).
        case local
    }

    public struct Store: Sendable, Equatable {
        public var endpoint: String
        public var region: String
        public var bucket: String
        public var prefix: String
        public var addressing: Addressing
        public var credentials: CredentialSource
        public var keyTemplate: String
        public var caBundle: String?
        /// `x-amz-server-side-encryption` on every object written (nil: the bucket's default).
        public var serverSideEncryption: ServerSideEncryption? = nil
    }

    /// What the store is asked to encrypt objects with.
    public enum ServerSideEncryption: Sendable, Equatable {
        case aes256
        /// AWS KMS (or a compatible store's KMS), with a key id or the store's default key.
        case kms(keyID: String?)

        /// The request headers that ask for it.
        public var headers: [String: String] {
            switch self {
            case .aes256: ["x-amz-server-side-encryption": "AES256"]
            case .kms(let keyID):
                ["x-amz-server-side-encryption": "aws:kms"].merging(keyID.map { ["x-amz-server-side-encryption-aws-kms-key-id": $0] } ?? [:]) { $1 }
            }
        }
    }

    public struct Upload: Sendable, Equatable {
        public var partSize: Int64
        public var concurrency: Int
        public var maxAttempts: Int
        public var retryBaseDelay: Double
        public var retryMaxDelay: Double
        public var connectTimeout: Int
        /// A transfer slower than 1 KiB/s for this many seconds is abandoned and retried.
        public var stallTimeout: Int
        /// Multipart uploads under our prefix older than this, unknown to the
        /// ledger, are aborted on the store (they hold storage and are never completed).
        public var abortStaleMultipartAfter: Double
    }

    public struct Ingest: Sendable, Equatable {
        public var mediaExtensions: [String]
        public var cameraClock: CameraClock
        /// A file modified less than this many seconds ago may still be being
        /// written: it waits for the next run.
        public var settleSeconds: Double
        /// Space left free on the spool's disk for the ledger and the system.
        public var spoolReserveBytes: Int64
        /// Above this share of the spool disk in use, docks leave the remaining
        /// files on the camera (the safest buffer) …
        public var highWatermarkPercent: Double
        /// … and copying starts again only once use is below this.
        public var lowWatermarkPercent: Double
        /// Spool copies of verified files are deleted after this many days (0: at once).
        public var keepVerifiedDays: Double
        /// Files of one camera copied at the same time (hashing is the bottleneck: one per core).
        public var parallelCopies: Int
        /// Files that belong to a recording with the same stem (GPS tracks, metadata).
        public var sidecarExtensions: [String] = Configuration.defaultSidecarExtensions
        /// Spool copies are sealed with AES-256-GCM (CJIS: encryption at rest).
        public var encryptSpool: Bool = true
        /// The keys that seal them (`SpoolKeyring`).
        public var spoolKeyring: String = ""
    }

    public struct Docking: Sendable, Equatable {
        /// The supported camera models file.
        public var modelsPath: String
        /// Where camera volumes are mounted read-only while they are ingested.
        public var mountRoot: String
        /// Cameras ingested at the same time by the daemon.
        public var maxConcurrentDocks: Int
    }

    /// The file this configuration was read from (relative paths in it are
    /// resolved against its folder).
    public var sourcePath: String
    public var spoolDirectory: String
    public var stateDirectory: String
    public var store: Store
    public var upload: Upload
    public var ingest: Ingest
    public var docking: Docking
    /// When uploads run on their own (`uploader upload --now` ignores it).
    public var schedule: UploadSchedule
    /// The shared upload bandwidth limit by time of day.
    public var bandwidth: BandwidthTimetable
    public var monitoring: Monitoring

    /// Failure-only alerts and Prometheus metrics.
    public struct Monitoring: Sendable, Equatable {
        /// Run with `sh -c` for each alert (UPLOADER_ALERT_* in its environment, JSON on stdin).
        public var alertCommand: String?
        /// POST each alert as JSON here.
        public var alertWebhook: String?
        public var oldestUnverifiedHours: Double
        public var dockedIdleMinutes: Double
        /// The same alert is not sent again within this many hours.
        public var repeatHours: Double
        /// Prometheus textfile-collector file, rewritten after every run.
        public var metricsTextfile: String?
    }
    public var hostName: String
    /// Signed custody checkpoints in the store.
    public struct Custody: Sendable, Equatable {
        /// Object Lock retention of each checkpoint object, when the bucket has Object Lock.
        public var checkpointRetentionDays: Int
    }
    public var custody = Custody(checkpointRetentionDays: 3650)
    /// `[fleet]`: how the docks of a fleet watch each other through the store.
    public struct Fleet: Sendable, Equatable {
        /// A dock whose status object is older than this is "silent" (seconds).
        public var silentAfter: TimeInterval

        /// "90s", "15m", "2h", "1d" (a bare number is seconds); nil if it is none of those.
        public static func parseDuration(_ text: String) -> TimeInterval? {
            let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            if let unit = trimmed.last, let multiplier = units[unit], let amount = Double(trimmed.dropLast()), amount.isFinite, amount > 0 {
                return amount * multiplier
            }
            if let seconds = Double(trimmed), seconds.isFinite, seconds > 0 { return seconds }
            return nil
        }

        /// The shortest of "Nd", "Nh", "Nm", "Ns" that says `seconds` exactly.
        public static func durationText(_ seconds: TimeInterval) -> String {
            for (unit, size) in [("d", 86400.0), ("h", 3600.0), ("m", 60.0)] where seconds >= size && seconds.truncatingRemainder(dividingBy: size) == 0 {
                return "\(Int(seconds / size))\(unit)"
            }
            return seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s"
        }
    }
    public var fleet = Fleet(silentAfter: 900)
    /// Retention categories and the defaults (`[categories.NAME]`, `[tagging]`).
    public var categories = CategoryDefaults()
    /// `[camera] clear`: the site's policy (a model's `clear` overrides it).
    public var cameraClear = CameraClearPolicy.never
    /// `[agent] log_level`: swift-log's level names (nil: notice under systemd, warning at a terminal).
    public var logLevel: String? = nil

    public var ledgerPath: String { stateDirectory + "/ledger.sqlite" }

    public static let defaultPath = "/etc/uploader/uploader.toml"
    public static let defaultKeyTemplate = "{prefix}/{user}/{yyyy}/{mm}/{dd}/{serial}/{name}"
    public static let defaultMediaExtensions = ["mp4", "mov", "m4v", "avi", "mts", "wav", "mp3", "m4a", "jpg", "jpeg", "png", "gps", "nmea", "json", "xml"]
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
    public static let defaultSidecarExtensions = ["gps", "nmea", "json", "xml"]
    public static let minimumPartSize: Int64 = 5 * 1024 * 1024
    public static let maximumPartSize: Int64 = 5 * 1024 * 1024 * 1024

    /// Where the configuration is: `--config`, else `UPLOADER_CONFIG`, else the default.
    public static func resolvePath(explicit: String?, environment: [String: String]) -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        if let fromEnvironment = environment["UPLOADER_CONFIG"], !fromEnvironment.isEmpty { return fromEnvironment }
        return defaultPath
    }
}

/// One thing wrong with a configuration file, located for the admin.
extension Configuration.Store {
    /// Why `prefix` cannot begin object keys, or nil. It begins every key,
    /// the custody checkpoints' too, and a ".." segment would reach another
    /// bucket (path-style, `bucket/../evidence2/…` is the bucket evidence2):
    /// no "." or ".." segment, no leading "/", no empty segment, no control
    /// or invisible characters. One trailing "/" is allowed.
    public static func prefixProblem(_ prefix: String) -> String? {
        let shown = "\"\(DisplayText.escaped(prefix))\""
        if prefix.unicodeScalars.contains(where: DisplayText.needsEscape) { return "\(shown) contains control or invisible characters" }
        if prefix.hasPrefix("/") { return "\(shown) starts with \"/\": give a folder inside the bucket, like \"springfield-pd\"" }
        let trimmed = prefix.hasSuffix("/") ? prefix.dropLast() : prefix[...]
        guard !trimmed.isEmpty else { return nil }
        for segment in trimmed.split(separator: "/", omittingEmptySubsequences: false) {
            if segment.isEmpty { return "\(shown) has an empty segment (\"//\"): give folder names separated by single \"/\"" }
            if segment == "." || segment == ".." { return "\(shown) has a \"\(segment)\" segment, which would leave the bucket: give a folder inside it, like \"springfield-pd\"" }
        }
        return nil
    }
}

public struct ConfigProblem: Sendable, Equatable, CustomStringConvertible {
    public var line: Int?
    public var key: String
    public var message: String

    public var description: String {
        if let line { return "line \(line): \(key): \(message)" }
        return "\(key): \(message)"
    }
}

extension UploaderError {
    /// Every problem found in a configuration file (or the camera models file),
    /// one per line with its line and key, then what to do.
    public static func configuration(path: String, problems: [ConfigProblem], origin: String = #fileID, line: Int = #line) -> UploaderError {
        let list = problems.map { "\(path): \($0)" }.joined(separator: "\n")
        return UploaderError(.config, list + "\nFix \(problems.count == 1 ? "this" : "these") in \(path), then run `uploader config check`.",
                             underlying: .configuration(path: path, problems: problems), origin: origin, line: line)
    }

    /// The configuration problems this error reports (none for other errors).
    public var problems: [ConfigProblem] {
        if case .configuration(_, let problems)? = underlying { return problems }
        return []
    }
}

public enum ConfigurationLoader {
    /// Parses the text of `uploader.toml` (read from `path`, which relative paths in it follow).
    public static func parse(_ text: String, path: String, hostName: String) throws -> Configuration {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw UploaderError.configuration(path: path, problems: [
                ConfigProblem(line: error.source.begin.line, key: "syntax", message: "\(error.description); this is not valid TOML"),
            ])
        }
        var reader = TableReader(table: table, lines: KeyLineIndex(text: text))
        let folder = (path as NSString).deletingLastPathComponent
        func absolute(_ value: String) -> String {
            if value.hasPrefix("/") || value.isEmpty { return value }
            return ((folder.isEmpty ? "." : folder) as NSString).appendingPathComponent(value)
        }

        let spool = absolute(reader.string("paths", "spool"))
        let state = absolute(reader.string("paths", "state"))

        let endpoint = reader.string("store", "endpoint", required: true)
        if !endpoint.isEmpty, !(endpoint.hasPrefix("https://") || endpoint.hasPrefix("http://")) {
            reader.problem("store", "endpoint", "must start with https:// (or http:// for a store on this machine)")
        } else if endpoint.hasPrefix("http://"), !isLoopback(endpoint) {
            reader.problem("store", "endpoint", "plain http:// is allowed only for a store on this machine; evidence must travel over TLS (use https://)")
        }
        let region = reader.string("store", "region")
        let bucket = reader.string("store", "bucket", required: true)
        if !bucket.isEmpty, !isValidBucketName(bucket) {
            reader.problem("store", "bucket", "\"\(bucket)\" is not a valid S3 bucket name (3-63 characters: a-z, 0-9, '.', '-')")
        }
        let prefixText = reader.string("store", "prefix")
        if let problem = Configuration.Store.prefixProblem(prefixText) { reader.problem("store", "prefix", problem) }
        let prefix = prefixText.hasSuffix("/") ? String(prefixText.dropLast()) : prefixText
        let addressingText = reader.string("store", "addressing")
        let addressing = Configuration.Addressing(rawValue: addressingText) ?? {
            reader.problem("store", "addressing", "must be \"path\" or \"virtual-hosted\", not \"\(addressingText)\"")
            return .path
        }()
        let credentialsText = reader.string("store", "credentials", required: true)
        let credentials: Configuration.CredentialSource = credentialsText == "env" ? .environment : .file(absolute(credentialsText))
        let keyTemplate = reader.string("store", "key_template")
        if let templateProblem = ObjectKeyTemplate.validate(keyTemplate) {
            reader.problem("store", "key_template", templateProblem)
        } else if keyTemplate.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }) {
            reader.problem("store", "key_template", "has a \".\" or \"..\" segment, which would leave the bucket: keys stay inside it")
        }
        let caBundleText = reader.string("store", "ca_bundle")
        let caBundle = caBundleText.isEmpty ? nil : absolute(caBundleText)
        let encryptionText = reader.string("store", "server_side_encryption")
        let kmsKeyID = reader.string("store", "kms_key_id")
        var encryption: Configuration.ServerSideEncryption?
        switch encryptionText {
        case "": encryption = nil
        case "AES256": encryption = .aes256
        case "aws:kms": encryption = .kms(keyID: kmsKeyID.isEmpty ? nil : kmsKeyID)
        default: reader.problem("store", "server_side_encryption", "must be \"\" (the bucket's default), \"AES256\" or \"aws:kms\"")
        }
        if !kmsKeyID.isEmpty, encryptionText != "aws:kms" {
            reader.problem("store", "kms_key_id", "is used only with server_side_encryption = \"aws:kms\"")
        }

        let partSize = reader.byteSize("upload", "part_size")
        if partSize < Configuration.minimumPartSize || partSize > Configuration.maximumPartSize {
            reader.problem("upload", "part_size", "must be between 5MiB and 5GiB (S3's limits for a multipart part)")
        }
        let concurrency = reader.int("upload", "concurrency", range: 1...64)
        let maxAttempts = reader.int("upload", "max_attempts", range: 1...100)
        let retryBaseDelay = reader.double("upload", "retry_base_delay", range: 0.001...3600)
        let retryMaxDelay = reader.double("upload", "retry_max_delay", range: 0.001...86400)
        let connectTimeout = reader.int("upload", "connect_timeout", range: 1...600)
        let stallTimeout = reader.int("upload", "stall_timeout", range: 1...3600)
        let staleHours = reader.double("upload", "abort_stale_multipart_hours", range: 1...87600)
        let windowTexts = reader.stringArray("schedule", "windows")
        var windows: [UploadSchedule.Window] = []
        for text in windowTexts {
            switch UploadSchedule.parseWindow(text) {
            case .success(let window): windows.append(window)
            case .failure(let problem): reader.problem("schedule", "windows", problem.message)
            }
        }
        let bandwidthText = reader.string("schedule", "bandwidth")
        var bandwidth = BandwidthTimetable.unlimited
        switch BandwidthTimetable.parse(bandwidthText) {
        case .success(let timetable): bandwidth = timetable
        case .failure(let problem): reader.problem("schedule", "bandwidth", problem.message)
        }

        let extensions = reader.stringArray("ingest", "media_extensions")
            .map { $0.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: ".")) }
        let sidecarExtensions = reader.stringArray("ingest", "sidecar_extensions")
            .map { $0.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: ".")) }
        let clockText = reader.string("ingest", "camera_clock")
        let clock = Configuration.CameraClock(rawValue: clockText) ?? {
            reader.problem("ingest", "camera_clock", "must be \"utc\" or \"local\", not \"\(clockText)\"")
            return .utc
        }()
        let settleSeconds = reader.double("ingest", "settle_seconds", range: 0...86400)
        let spoolReserve = reader.byteSize("ingest", "spool_reserve", range: 0...(1 << 44))
        let parallelCopies = reader.int("ingest", "parallel_copies", range: 1...16)
        let high = reader.double("spool", "high_watermark_percent", range: 1...100)
        let low = reader.double("spool", "low_watermark_percent", range: 0...100)
        if low > high { reader.problem("spool", "low_watermark_percent", "must not be above high_watermark_percent (\(high))") }
        let keepDays = reader.double("spool", "keep_verified_days", range: 0...3650)
        let encryptSpool = reader.bool("spool", "encryption")
        let keyringText = reader.string("spool", "keyring")
        let keyring = keyringText.isEmpty ? state + "/spool-keys" : absolute(keyringText)
        let alertCommand = reader.string("monitoring", "alert_command")
        let alertWebhook = reader.string("monitoring", "alert_webhook")
        if !alertWebhook.isEmpty, !(alertWebhook.hasPrefix("https://") || (alertWebhook.hasPrefix("http://") && isLoopback(alertWebhook))) {
            reader.problem("monitoring", "alert_webhook", "must be an https:// URL (http:// only for this machine)")
        }
        let oldestHours = reader.double("monitoring", "oldest_unverified_hours", range: 0.01...8760)
        let idleMinutes = reader.double("monitoring", "docked_idle_minutes", range: 0.1...10080)
        let repeatHours = reader.double("monitoring", "repeat_hours", range: 0...8760)
        let metricsTextfile = reader.string("monitoring", "metrics_textfile")
        let modelsPath = absolute(reader.string("docking", "models"))
        let mountRoot = absolute(reader.string("docking", "mount_root"))
        let maxDocks = reader.int("docking", "max_concurrent_docks", range: 1...16)
        let configuredHost = reader.string("agent", "host_name")
        let logLevel = reader.string("agent", "log_level")
        if !logLevel.isEmpty, !Configuration.logLevels.contains(logLevel) {
            reader.problem("agent", "log_level", "must be one of \(Configuration.logLevels.joined(separator: ", "))")
        }
        let retentionDays = reader.int("custody", "checkpoint_retention_days", range: 1...36500)
        let silentAfterText = reader.string("fleet", "silent_after")
        let silentAfter = Configuration.Fleet.parseDuration(silentAfterText).flatMap { (10...(30 * 86400)).contains($0) ? $0 : nil } ?? {
            reader.problem("fleet", "silent_after", "must be a duration from 10s to 30d like \"90s\", \"15m\" or \"2h\", not \"\(silentAfterText)\"")
            return 900
        }()

        var categories: [String: RetentionCategory] = [:]
        for (name, table) in reader.subtables("categories") {
            var category = RetentionCategory(name: name, retentionDays: 365, lockMode: nil, legalHold: false)
            for (key, value) in table {
                let value = value.tomlValue
                switch key {
                case "retention":
                    if let text = value.string, let days = RetentionCategory.parseRetention(text) {
                        category.retentionDays = days
                    } else {
                        reader.problem("categories.\(name)", "retention", "must be like \"90d\", \"12w\", \"2y\" or \"indefinite\"")
                    }
                case "lock":
                    switch value.string {
                    case "none": category.lockMode = nil
                    case "governance": category.lockMode = .governance
                    case "compliance": category.lockMode = .compliance
                    default: reader.problem("categories.\(name)", "lock", "must be \"none\", \"governance\" or \"compliance\"")
                    }
                case "legal_hold":
                    if let flag = value.bool { category.legalHold = flag } else { reader.problem("categories.\(name)", "legal_hold", "must be true or false (no quotes)") }
                default:
                    reader.problem("categories.\(name)", key, "unknown key; known keys in a category are legal_hold, lock, retention")
                }
            }
            categories[name] = category
        }
        let defaultCategory = reader.string("tagging", "default_category")
        if !defaultCategory.isEmpty, categories[defaultCategory] == nil {
            reader.problem("tagging", "default_category", "\"\(defaultCategory)\" is not a category: add [categories.\(defaultCategory)]")
        }
        var userCategories: [String: String] = [:]
        for (user, value) in reader.subtable("tagging", "users") {
            guard let name = value.tomlValue.string, categories[name] != nil else {
                reader.problem("tagging", "users", "\(user) must name a category defined under [categories]")
                continue
            }
            userCategories[user] = name
        }

        let clearText = reader.string("camera", "clear")
        let cameraClear = CameraClearPolicy(rawValue: clearText) ?? {
            reader.problem("camera", "clear", "must be \"never\" or \"after-verified\", not \"\(clearText)\"")
            return .never
        }()

        // The known keys are ConfigKeys's (the parser reads every one: ConfigKeyTableTests).
        reader.reportUnknownKeys()
        if !reader.problems.isEmpty {
            throw UploaderError.configuration(path: path, problems: reader.problems.sorted { ($0.line ?? 0) < ($1.line ?? 0) })
        }
        return Configuration(
            sourcePath: path,
            spoolDirectory: spool,
            stateDirectory: state,
            store: .init(endpoint: endpoint, region: region, bucket: bucket, prefix: prefix,
                         addressing: addressing, credentials: credentials, keyTemplate: keyTemplate, caBundle: caBundle,
                         serverSideEncryption: encryption),
            upload: .init(partSize: partSize, concurrency: concurrency, maxAttempts: maxAttempts,
                          retryBaseDelay: retryBaseDelay, retryMaxDelay: retryMaxDelay,
                          connectTimeout: connectTimeout, stallTimeout: stallTimeout, abortStaleMultipartAfter: staleHours * 3600),
            ingest: .init(mediaExtensions: extensions, cameraClock: clock, settleSeconds: settleSeconds, spoolReserveBytes: spoolReserve,
                          highWatermarkPercent: high, lowWatermarkPercent: low, keepVerifiedDays: keepDays, parallelCopies: parallelCopies,
                          sidecarExtensions: sidecarExtensions, encryptSpool: encryptSpool, spoolKeyring: keyring),
            docking: .init(modelsPath: modelsPath, mountRoot: mountRoot, maxConcurrentDocks: maxDocks),
            schedule: UploadSchedule(windows: windows),
            bandwidth: bandwidth,
            monitoring: .init(alertCommand: alertCommand.isEmpty ? nil : alertCommand, alertWebhook: alertWebhook.isEmpty ? nil : alertWebhook,
                              oldestUnverifiedHours: oldestHours, dockedIdleMinutes: idleMinutes, repeatHours: repeatHours,
                              metricsTextfile: metricsTextfile.isEmpty ? nil : absolute(metricsTextfile)),
            hostName: configuredHost.isEmpty ? hostName : configuredHost,
            custody: .init(checkpointRetentionDays: retentionDays),
            fleet: .init(silentAfter: silentAfter),
            categories: CategoryDefaults(categories: categories, siteDefault: defaultCategory.isEmpty ? nil : defaultCategory, userDefaults: userCategories),
            cameraClear: cameraClear,
            logLevel: logLevel.isEmpty ? nil : logLevel
        )
    }

    /// Whether the URL's host is this machine: `localhost`, an IPv4 literal in
    /// 127.0.0.0/8 or the IPv6 literal ::1. A name is never trusted by its
    /// prefix (`127.evil.example` and `127.0.0.1.nip.io` are other machines).
    static func isLoopback(_ endpoint: String) -> Bool {
        guard let host = URLComponents(string: endpoint)?.host?.lowercased() else { return false }
        if host == "localhost" || host == "::1" || host == "[::1]" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4,
              octets.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) && Int($0)! <= 255 }) else {
            return false
        }
        return octets[0] == "127"
    }

    static func isValidBucketName(_ name: String) -> Bool {
        guard (3...63).contains(name.count) else { return false }
        return name.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "." || $0 == "-" }
            && name.first != "-" && name.first != "." && name.last != "-" && name.last != "."
    }

    public static let maximumByteSize: Int64 = 1 << 50

    /// Parses "64MiB", "5 GB", "1048576".
    public static func parseByteSize(_ text: String) -> Int64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { ($0.isASCII && $0.isNumber) || $0 == "." }
        guard let number = Double(digits), number.isFinite, number >= 0 else { return nil }
        let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces).lowercased()
        let multipliers: [String: Double] = [
            "": 1, "b": 1,
            "k": 1024, "kb": 1000, "kib": 1024,
            "m": 1024 * 1024, "mb": 1_000_000, "mib": 1024 * 1024,
            "g": 1024 * 1024 * 1024, "gb": 1_000_000_000, "gib": 1024 * 1024 * 1024,
        ]
        // Anything above 1 PiB is a typing mistake, and would overflow the arithmetic it feeds.
        guard let multiplier = multipliers[unit], number * multiplier <= Double(maximumByteSize) else { return nil }
        return Int64(number * multiplier)
    }
}

/// Finds the line of `[table]` / `key =` in the raw text, since TOMLKit
/// reports positions only for syntax errors.
struct KeyLineIndex {
    private var lines: [String: Int] = [:]

    init(text: String) {
        var table = ""
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("[") {
                table = line.trimmingCharacters(in: CharacterSet(charactersIn: "[] \t"))
                lines[table] = lines[table] ?? index + 1
            } else if let equals = line.firstIndex(of: "="), !line.hasPrefix("#") {
                let key = line[..<equals].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
                let qualified = table.isEmpty ? key : "\(table).\(key)"
                lines[qualified] = lines[qualified] ?? index + 1
            }
        }
    }

    func line(_ table: String, _ key: String?) -> Int? {
        if let key { return lines["\(table).\(key)"] ?? lines[table] }
        return lines[table]
    }
}

/// Reads typed values and collects every problem instead of stopping at the first.
/// Known keys and their defaults are `ConfigKeys`'s: a key the parser asks for
/// that the table does not have stops the program (a test reads every key).
struct TableReader {
    let table: TOMLTable
    let lines: KeyLineIndex
    var problems: [ConfigProblem] = []
    /// `ConfigKeys.defaultsText`, read like a configuration.
    private let defaults: TOMLTable = {
        do { return try TOMLTable(string: ConfigKeys.defaultsText) } catch { preconditionFailure("the defaults in ConfigKeys are not TOML: \(error)") }
    }()

    init(table: TOMLTable, lines: KeyLineIndex) {
        self.table = table
        self.lines = lines
    }

    /// The table's default for a key (nil: the key is required).
    private func fallback(_ section: String, _ key: String) -> TOMLValue? {
        defaults[section]?.tomlValue.table?[key]?.tomlValue
    }

    mutating func problem(_ section: String, _ key: String?, _ message: String) {
        let name = key.map { "\(section).\($0)" } ?? section
        problems.append(ConfigProblem(line: lines.line(section, key), key: name, message: message))
    }

    /// Every key the parser asks for, by section: what `reportUnknownKeys` knows.
    var known: [String: Set<String>] = [:]

    private mutating func value(_ section: String, _ key: String) -> TOMLValue? {
        precondition(ConfigKeys.key(section, key) != nil, "[\(section)] \(key) is not in ConfigKeys")
        known[section, default: []].insert(key)
        guard let sectionValue = table[section] else { return nil }
        guard let sectionTable = sectionValue.tomlValue.table else {
            problem(section, nil, "must be a table ([\(section)])")
            return nil
        }
        return sectionTable[key]?.tomlValue
    }

    mutating func string(_ section: String, _ key: String, required: Bool = false) -> String {
        let defaultValue = fallback(section, key)?.string ?? ""
        guard let value = value(section, key) else {
            if required { problem(section, key, "is missing; add `\(key) = \"…\"` under [\(section)]") }
            return defaultValue
        }
        guard let text = value.string else {
            problem(section, key, "must be a string in quotes")
            return defaultValue
        }
        if required, text.isEmpty { problem(section, key, "must not be empty") }
        return text
    }

    /// The tables under `[section.NAME]`, every one known (their keys are checked by the caller).
    mutating func subtables(_ section: String) -> [(String, TOMLTable)] {
        known[section, default: []].formUnion(table[section]?.tomlValue.table?.keys ?? [])
        guard let sectionTable = table[section]?.tomlValue.table else { return [] }
        return sectionTable.keys.sorted().compactMap { name in
            guard let sub = sectionTable[name]?.tomlValue.table else {
                problem(section, name, "must be a table: [\(section).\(name)]")
                return nil
            }
            return (name, sub)
        }
    }

    /// The keys of the table `[section.key]` (a key of `section` that is itself a table).
    mutating func subtable(_ section: String, _ key: String) -> [(String, TOMLValueConvertible)] {
        guard let value = value(section, key) else { return [] }
        guard let sub = value.table else {
            problem(section, key, "must be a table: [\(section).\(key)]")
            return []
        }
        return sub.keys.sorted().map { ($0, sub[$0]!) }
    }

    mutating func bool(_ section: String, _ key: String) -> Bool {
        let defaultValue = fallback(section, key)?.bool ?? false
        guard let value = value(section, key) else { return defaultValue }
        guard let flag = value.bool else {
            problem(section, key, "must be true or false (no quotes)")
            return defaultValue
        }
        return flag
    }

    mutating func stringArray(_ section: String, _ key: String) -> [String] {
        let defaultValue = fallback(section, key)?.array?.compactMap(\.string) ?? []
        guard let value = value(section, key) else { return defaultValue }
        guard let array = value.array, array.allSatisfy({ $0.string != nil }) else {
            problem(section, key, "must be a list of strings, like [\"mp4\", \"mov\"]")
            return defaultValue
        }
        return array.compactMap(\.string)
    }

    mutating func int(_ section: String, _ key: String, range: ClosedRange<Int>) -> Int {
        let defaultValue = fallback(section, key)?.int ?? range.lowerBound
        guard let value = value(section, key) else { return defaultValue }
        guard let number = value.int else {
            problem(section, key, "must be a whole number")
            return defaultValue
        }
        return checked(number, range, section, key, default: defaultValue) { "\($0)" }
    }

    mutating func double(_ section: String, _ key: String, range: ClosedRange<Double>) -> Double {
        let defaultValue = fallback(section, key).flatMap { $0.double ?? $0.int.map(Double.init) } ?? range.lowerBound
        guard let value = value(section, key) else { return defaultValue }
        guard let number = value.double ?? value.int.map(Double.init), number.isFinite else {
            problem(section, key, "must be a number")
            return defaultValue
        }
        return checked(number, range, section, key, default: defaultValue) { "\($0)" }
    }

    mutating func byteSize(_ section: String, _ key: String,
                           range: ClosedRange<Int64> = 0...ConfigurationLoader.maximumByteSize) -> Int64 {
        let defaultValue = fallback(section, key).flatMap { $0.string.flatMap(ConfigurationLoader.parseByteSize) ?? $0.int.map(Int64.init) } ?? 0
        guard let value = value(section, key) else { return defaultValue }
        var size: Int64?
        if let number = value.int { size = Int64(number) }
        if let text = value.string { size = ConfigurationLoader.parseByteSize(text) }
        guard let size else {
            problem(section, key, "must be a size like \"64MiB\" (at most 1PiB) or a number of bytes")
            return defaultValue
        }
        return checked(size, range, section, key, default: defaultValue, show: ByteCount.format)
    }

    /// The one range check every number goes through: outside the range it is
    /// a problem with its line, never a value that later overflows.
    private mutating func checked<T: Comparable>(_ value: T, _ range: ClosedRange<T>, _ section: String, _ key: String,
                                                 default defaultValue: T, show: (T) -> String) -> T {
        guard range.contains(value) else {
            problem(section, key, "must be between \(show(range.lowerBound)) and \(show(range.upperBound)), not \(show(value))")
            return defaultValue
        }
        return value
    }

    mutating func reportUnknownKeys() {
        let sections = Set(ConfigKeys.fixed.keys).union(known.keys)
        for section in table.keys {
            guard let allowed = ConfigKeys.fixed[section].map({ Set($0.keys) }) ?? known[section] else {
                problem(section, nil, "unknown section [\(section)]; known sections are \(sections.sorted().map { "[\($0)]" }.joined(separator: ", "))")
                continue
            }
            guard let sectionTable = table[section]?.tomlValue.table else { continue }
            for key in sectionTable.keys where !allowed.contains(key) {
                problem(section, key, "unknown key; known keys in [\(section)] are \(allowed.sorted().joined(separator: ", "))")
            }
        }
    }
}
