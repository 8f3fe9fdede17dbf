import Foundation

/// One key of `uploader.toml`: the one place its name, type, default and
/// documentation are written. The parser takes its known keys and defaults
/// from here; `ConfigRenderer` (account import), the example
/// `Config/uploader.toml`, `docs/configuration-keys.md` and `uploader.toml(5)`
/// (through `uploader config keys --json`) are all generated from it.
public struct ConfigKey: Sendable {
    public enum Kind: String, Sendable, Codable {
        case string, boolean, integer, number, size
        /// A list of strings.
        case strings
        /// A table of its own (`[section.key]`).
        case table
    }

    public let section: String
    public let name: String
    public let kind: Kind
    /// The value when the key is absent, as TOML; nil: the key is required.
    public let defaultValue: String?
    /// What the example configuration shows, as TOML, when not the default.
    public let example: String?
    /// Commented out in the example: the key is usually left unset.
    public let commentedOut: Bool
    /// The comment above the key in the example, one line each.
    public let doc: [String]
    /// The configured value as TOML (nil: written commented out, with the example).
    let render: @Sendable (Configuration) -> String?

    public var shown: String { example ?? defaultValue ?? "\"\"" }
}

/// One `[section]`: its keys, in file order, and what the example says above it.
public struct ConfigSection: Sendable {
    public let name: String
    /// Comment lines above `[name]` in the example.
    public let doc: [String]
    public let keys: [ConfigKey]
    /// Tables named by the site (`[categories.NAME]`): the example's, as (name, TOML values by key).
    public let exampleTables: [(name: String, values: [String: String])]
    /// Written by `ConfigRenderer` (a configuration's own tables are written separately).
    let rendered: Bool
}

public enum ConfigKeys {
    /// Every section in file order.
    public static let sections: [ConfigSection] = [
        section("paths", [
            key("spool", .string, "\"/var/spool/uploader\"", doc: [
                "Verified copies of camera media wait here until the store confirms them.",
                "Put it on a disk with room for a few nights of footage.",
            ]) { toml($0.spoolDirectory) },
            key("state", .string, "\"/var/lib/uploader\"", doc: [
                "The transfer ledger (ledger.sqlite) lives here. Back it up.",
            ]) { toml($0.stateDirectory) },
        ]),
        section("store", [
            key("endpoint", .string, nil, example: "\"https://s3.us-east-1.amazonaws.com\"", doc: [
                "The S3-compatible evidence store (AWS S3, MinIO, Ceph RGW, SeaweedFS…).",
                "https:// is required; http:// is accepted only for a store on this machine.",
            ]) { toml($0.store.endpoint) },
            key("region", .string, "\"us-east-1\"") { toml($0.store.region) },
            key("bucket", .string, nil, example: "\"springfield-pd-evidence\"") { toml($0.store.bucket) },
            key("prefix", .string, "\"\"", example: "\"springfield-pd\"", doc: [
                "Every object key starts with this (your agency or site).",
            ]) { toml($0.store.prefix) },
            key("addressing", .string, "\"path\"", example: "\"virtual-hosted\"", doc: [
                "\"path\" (https://host/bucket/key) or \"virtual-hosted\" (https://bucket.host/key).",
            ]) { toml($0.store.addressing.rawValue) },
            key("credentials", .string, nil, example: "\"/etc/uploader/credentials\"", doc: [
                "A file holding access_key_id = \"…\" and secret_access_key = \"…\", mode 0600;",
                "or \"env\" for UPLOADER_ACCESS_KEY_ID / UPLOADER_SECRET_ACCESS_KEY.",
            ]) {
                switch $0.store.credentials {
                case .environment: toml("env")
                case .file(let path): toml(path)
                }
            },
            key("key_template", .string, toml(Configuration.defaultKeyTemplate), doc: [
                "Placeholders: {prefix} {user} {serial} {name} {stem} {ext} {sha256} {id}",
                "and the recording time in UTC: {yyyy} {mm} {dd} {HH} {MM} {SS}.",
            ]) { toml($0.store.keyTemplate) },
            key("ca_bundle", .string, "\"\"", example: "\"/etc/ssl/certs/agency-ca.pem\"", commentedOut: true, doc: [
                "A CA bundle for a store with a private certificate authority.",
            ]) { $0.store.caBundle.map(toml) },
            key("server_side_encryption", .string, "\"\"", doc: [
                "Ask the store to encrypt every object: \"AES256\", or \"aws:kms\" (with kms_key_id,",
                "else the store's default key). \"\" leaves it to the bucket's own default.",
            ]) {
                switch $0.store.serverSideEncryption {
                case nil: toml("")
                case .aes256: toml("AES256")
                case .kms: toml("aws:kms")
                }
            },
            key("kms_key_id", .string, "\"\"") {
                if case .kms(let keyID?) = $0.store.serverSideEncryption { return toml(keyID) }
                return toml("")
            },
        ]),
        section("upload", [
            key("part_size", .size, "\"64MiB\"", doc: [
                "Files larger than one part go up as multipart uploads (5MiB to 5GiB).",
            ]) { size($0.upload.partSize) },
            key("concurrency", .integer, "4", doc: ["Files uploaded at the same time."]) { "\($0.upload.concurrency)" },
            key("max_attempts", .integer, "5", doc: [
                "Attempts per file in one run before it waits for the next run.",
            ]) { "\($0.upload.maxAttempts)" },
            key("retry_base_delay", .number, "1.0", doc: [
                "Backoff between attempts: exponential from this many seconds, with jitter…",
            ]) { "\($0.upload.retryBaseDelay)" },
            key("retry_max_delay", .number, "120.0", doc: [
                "…up to this many seconds (a server's Retry-After is always honoured).",
            ]) { "\($0.upload.retryMaxDelay)" },
            key("connect_timeout", .integer, "15", doc: [
                "Seconds to wait for a connection to the store.",
            ]) { "\($0.upload.connectTimeout)" },
            key("stall_timeout", .integer, "60", doc: [
                "A transfer slower than 1 KiB/s for this many seconds is retried.",
            ]) { "\($0.upload.stallTimeout)" },
            key("abort_stale_multipart_hours", .number, "168.0", doc: [
                "Unfinished multipart uploads older than this that the ledger does not know are aborted.",
            ]) { "\($0.upload.abortStaleMultipartAfter / 3600)" },
        ]),
        section("schedule", [
            key("windows", .strings, "[]", example: "[\"22:00-06:00\"]", doc: [
                "When uploads run on their own, in this PC's local time, e.g. [\"22:00-06:00\"] or",
                "[\"Mon-Fri 19:00-06:00\", \"Sat,Sun 00:00-24:00\"]. Empty: any time.",
                "`uploader upload --now` ignores the windows.",
            ]) { strings($0.schedule.windows.map(\.text)) },
            key("bandwidth", .string, "\"off\"", example: "\"07:00,2M 18:00,10M 22:00,off\"", doc: [
                "Upload bandwidth by time of day, shared by all transfers (rclone's format):",
                "\"07:00,2M 18:00,10M 22:00,off\". Bytes per second; K, M, G = KiB, MiB, GiB.",
            ]) { toml($0.bandwidth.text) },
        ]),
        section("ingest", [
            key("media_extensions", .strings, strings(Configuration.defaultMediaExtensions), doc: [
                "Which files on a camera are evidence (by extension, case ignored).",
            ]) { strings($0.ingest.mediaExtensions) },
            key("sidecar_extensions", .strings, strings(Configuration.defaultSidecarExtensions), doc: [
                "Sidecars: a file with one of these extensions and the same stem as a",
                "recording in the same folder (VID0001.gps beside VID0001.MP4) is linked to",
                "it in the ledger, uploaded beside it (same object key, its own extension,",
                "with the recording's key and SHA-256 in its metadata) and exported with it.",
                "They must be media_extensions too, to be copied at all.",
            ]) { strings($0.ingest.sidecarExtensions) },
            key("camera_clock", .string, "\"utc\"", doc: [
                "\"utc\" if the cameras write UTC into their MP4 headers (the standard),",
                "\"local\" if they write this PC's local time.",
            ]) { toml($0.ingest.cameraClock.rawValue) },
            key("settle_seconds", .number, "5.0", doc: [
                "Files modified more recently than this are left for the next run.",
            ]) { "\($0.ingest.settleSeconds)" },
            key("spool_reserve", .size, "\"256MiB\"", doc: [
                "Space kept free on the spool disk; a dock stops (files stay on the camera) below it.",
            ]) { size($0.ingest.spoolReserveBytes) },
            key("parallel_copies", .integer, "2", doc: [
                "Files of one camera copied at the same time (hashing is the bottleneck: one per core).",
            ]) { "\($0.ingest.parallelCopies)" },
        ]),
        section("spool", [
            key("high_watermark_percent", .number, "90.0", doc: [
                "Above this share of the spool disk in use, docks leave the rest on the camera",
                "(the safest buffer) and `uploader status` says so…",
            ]) { "\($0.ingest.highWatermarkPercent)" },
            key("low_watermark_percent", .number, "80.0", doc: [
                "…until use falls below this (uploads verified and their copies purged).",
            ]) { "\($0.ingest.lowWatermarkPercent)" },
            key("keep_verified_days", .number, "7.0", doc: [
                "Spool copies of files verified in the store are deleted after this many days.",
            ]) { "\($0.ingest.keepVerifiedDays)" },
            key("encryption", .boolean, "true", doc: [
                "Spool copies are sealed with AES-256-GCM in 1 MiB authenticated chunks",
                "(CJIS requires encryption at rest). Turn off only on an encrypted disk.",
            ]) { "\($0.ingest.encryptSpool)" },
            key("keyring", .string, "\"\"", doc: [
                "The keys that seal them: made at first run (mode 0600, the agent's user).",
                "\"\" means \"spool-keys\" in the state folder. systemd's",
                "LoadCredential=spool-keys:FILE (or LoadCredentialEncrypted=) wins when set.",
                "`uploader key rotate` adds a key for new files; old keys stay until no",
                "spool copy needs them. Back this file up: a lost key loses unsent copies.",
            ]) { toml($0.ingest.spoolKeyring == $0.stateDirectory + "/spool-keys" ? "" : $0.ingest.spoolKeyring) },
        ]),
        section("monitoring", [
            key("alert_command", .string, "\"\"", doc: [
                "Failure-only alerts: a command (run with sh -c; UPLOADER_ALERT_KEY and",
                "UPLOADER_ALERT_MESSAGE set, the alert as JSON on stdin) and/or a webhook (JSON POST).",
            ]) { toml($0.monitoring.alertCommand ?? "") },
            key("alert_webhook", .string, "\"\"") { toml($0.monitoring.alertWebhook ?? "") },
            key("oldest_unverified_hours", .number, "36.0", doc: [
                "Alert when the oldest file not yet verified is older than this.",
            ]) { "\($0.monitoring.oldestUnverifiedHours)" },
            key("docked_idle_minutes", .number, "30.0", doc: [
                "Alert when a camera has been docked this long with nothing copied.",
            ]) { "\($0.monitoring.dockedIdleMinutes)" },
            key("repeat_hours", .number, "6.0", doc: [
                "The same alert is not repeated within this many hours.",
            ]) { "\($0.monitoring.repeatHours)" },
            key("metrics_textfile", .string, "\"\"", doc: [
                "Prometheus textfile-collector file, rewritten after every run (\"\" for none),",
                "e.g. \"/var/lib/prometheus/node-exporter/uploader.prom\".",
            ]) { toml($0.monitoring.metricsTextfile ?? "") },
        ]),
        section("docking", [
            key("models", .string, "\"/etc/uploader/cameras.toml\"", doc: [
                "Supported camera models (USB ids, media folders, serial, recording time).",
            ]) { toml($0.docking.modelsPath) },
            key("mount_root", .string, "\"/run/uploader/mnt\"", doc: [
                "Camera volumes are mounted here read-only (ro,nosuid,nodev,noexec) while ingested.",
            ]) { toml($0.docking.mountRoot) },
            key("max_concurrent_docks", .integer, "2", doc: [
                "Cameras read at the same time on this PC (every dock unit and process counts).",
            ]) { "\($0.docking.maxConcurrentDocks)" },
        ]),
        section("custody", [
            key("checkpoint_retention_days", .integer, "3650", doc: [
                "Signed checkpoints of the custody log go to the store under {prefix}/_custody/;",
                "in a bucket with Object Lock each is locked (governance mode) for this many days.",
            ]) { "\($0.custody.checkpointRetentionDays)" },
        ]),
        section("fleet", [
            key("silent_after", .string, "\"15m\"", doc: [
                "In a fleet, each dock writes its status to {prefix}/_fleet/docks/ every minute;",
                "`uploader fleet status` (and every dock's daemon) calls a dock silent whose last",
                "status is older than this (\"90s\", \"15m\", \"2h\"), and one dock alerts it for the fleet.",
            ]) { toml(Configuration.Fleet.durationText($0.fleet.silentAfter)) },
        ]),
        section("camera", [
            key("clear", .string, "\"never\"", doc: [
                "\"after-verified\": at a dock, delete from the camera exactly the files the",
                "store has confirmed (same SHA-256 as the first read) that are still the same",
                "on the camera (size, time, and re-read to the same SHA-256), so officers get",
                "their camera back empty. The volume is made writable only for that step, by",
                "the dock unit's root step; each deletion is a custody event. \"never\": the",
                "camera is only ever read. A model's `clear` in the models file overrides it.",
                "`uploader camera clear SERIAL --dry-run` lists what would go.",
            ]) { toml($0.cameraClear.rawValue) },
        ]),
        ConfigSection(name: "categories", doc: [
            "Retention categories: how long the store must keep a file, counted from its",
            "recording time (\"90d\", \"12w\", \"2y\", or \"indefinite\"), the Object Lock mode",
            "that enforces it (\"governance\", \"compliance\" or \"none\"; a lock needs a bucket",
            "created with Object Lock, see `uploader store check`), and whether files",
            "start on legal hold. \"indefinite\" with a lock is a legal hold (a lock needs a",
            "date). `uploader tag FILE… --category NAME` sets a file's category; a",
            "retention is only ever extended, never shortened.",
        ], keys: [
            ConfigKey(section: "categories.NAME", name: "retention", kind: .string, defaultValue: "\"1y\"", example: nil, commentedOut: false,
                      doc: ["How long the store keeps the category's files, from their recording time."]) { _ in nil },
            ConfigKey(section: "categories.NAME", name: "lock", kind: .string, defaultValue: "\"none\"", example: nil, commentedOut: false,
                      doc: ["The Object Lock mode that enforces it."]) { _ in nil },
            ConfigKey(section: "categories.NAME", name: "legal_hold", kind: .boolean, defaultValue: "false", example: nil, commentedOut: false,
                      doc: ["Whether the category's files start on legal hold."]) { _ in nil },
        ], exampleTables: [
            ("evidence", ["retention": "\"2y\"", "lock": "\"governance\"", "legal_hold": "false"]),
            ("routine", ["retention": "\"90d\"", "lock": "\"none\"", "legal_hold": "false"]),
        ], rendered: false),
        ConfigSection(name: "tagging", doc: [], keys: [
            key("default_category", .string, "\"\"", example: "\"routine\"", section: "tagging", doc: [
                "The category of files nobody tagged. A user's default ([tagging.users],",
                "e.g. officer-0931 = \"evidence\") wins, then the camera model's (`category`",
                "in the models file), then this one. \"\" for none.",
            ]) { _ in nil },
            key("users", .table, nil, commentedOut: true, section: "tagging", doc: [
                "[tagging.users]: a user's default category, by user (officer-0931 = \"evidence\").",
            ]) { _ in nil },
        ], exampleTables: [], rendered: false),
        section("agent", [
            key("host_name", .string, "\"\"", example: "\"dock-station-3\"", commentedOut: true, section: "agent", doc: [
                "The name recorded in each object's metadata (default: this PC's host name).",
            ]) { _ in nil },
            key("log_level", .string, "\"\"", example: "\"info\"", commentedOut: true, section: "agent", doc: [
                "The least severe message logged: trace, debug, info, notice, warning, error or",
                "critical. \"\" for notice under systemd, warning at a terminal; -v and",
                "UPLOADER_LOG_LEVEL win over it.",
            ]) { _ in nil },
        ]),
    ]

    /// Every key of a fixed section, by section then name (`categories.NAME` is not one).
    public static let fixed: [String: [String: ConfigKey]] = {
        var keys: [String: [String: ConfigKey]] = [:]
        for section in sections where !section.name.contains(".") {
            for key in section.keys where key.section == section.name { keys[section.name, default: [:]][key.name] = key }
        }
        return keys
    }()

    public static func key(_ section: String, _ name: String) -> ConfigKey? { fixed[section]?[name] }

    /// The defaults as one TOML document, for the parser to read like a configuration.
    public static var defaultsText: String {
        sections.filter { fixed[$0.name] != nil }.map { section in
            "[\(section.name)]\n" + section.keys.compactMap { key in
                guard key.section == section.name, key.kind != .table, let value = key.defaultValue else { return nil }
                return "\(key.name) = \(value)\n"
            }.joined()
        }.joined(separator: "\n")
    }

    // MARK: - Generated files

    static let exampleHeader = [
        "uploader configuration: copy to /etc/uploader/uploader.toml and edit.",
        "Check it with `uploader config check`. `uploader account import FILE.json`",
        "writes the [store] part (and the credentials file) for you.",
        "Relative paths are resolved against this file's folder.",
    ]

    /// `Config/uploader.toml`: every key with its comment and an example value.
    public static func exampleFile() -> String {
        var out = comment(exampleHeader)
        for section in sections {
            out += "\n"
            if section.exampleTables.isEmpty {
                out += "[\(section.name)]\n" + comment(section.doc)
                for key in section.keys where key.kind != .table {
                    out += comment(key.doc) + (key.commentedOut ? "# " : "") + "\(key.name) = \(key.shown)\n"
                }
            } else {
                out += comment(section.doc)
                for (index, table) in section.exampleTables.enumerated() {
                    if index > 0 { out += "\n" }
                    out += "[\(section.name).\(table.name)]\n"
                    for key in section.keys { out += "\(key.name) = \(table.values[key.name] ?? key.shown)\n" }
                }
            }
        }
        return out
    }

    /// `docs/configuration-keys.md`: the per-key reference.
    public static func markdown() -> String {
        var out = """
            # uploader.toml: every key

            <!-- Generated from the key table (Sources/UploaderCore/ConfigKeys.swift) by
                 `uploader config keys --format markdown`; a test fails when this file is not current. -->

            Check a configuration with `uploader config check`: it lists every problem
            with its line and key, and a key this version does not know is an error.
            Sizes take K, M, G (KiB, MiB, GiB) suffixes; relative paths are resolved
            against the folder of the file.

            """
        for section in sections {
            let title = section.exampleTables.isEmpty ? section.name : section.name + ".NAME"
            out += "\n## [\(title)]\n\n"
            if !section.doc.isEmpty { out += section.doc.joined(separator: "\n") + "\n\n" }
            for key in section.keys {
                var facts = [key.kind.rawValue]
                if let value = key.defaultValue {
                    if key.kind != .table { facts.append("default `\(value)`") }
                } else if key.kind != .table {
                    facts.append("required")
                }
                if let example = key.example { facts.append("e.g. `\(example)`") }
                out += "- **`\(key.name)`** (\(facts.joined(separator: ", ")))"
                out += key.doc.isEmpty ? "\n" : ": " + key.doc.joined(separator: " ") + "\n"
            }
        }
        return out
    }

    /// `uploader config keys --json`: what `scripts/lib/config-manpage.py` writes uploader.toml(5) from.
    public static func json() throws -> String {
        struct Key: Encodable {
            var name, type: String
            var `default`, example: String?
            var required, optional: Bool
            var doc: [String]
        }
        struct Section: Encodable {
            var name: String
            var doc: [String]
            var keys: [Key]
        }
        let document = sections.map { section in
            Section(name: section.exampleTables.isEmpty ? section.name : section.name + ".NAME", doc: section.doc, keys: section.keys.map {
                Key(name: $0.name, type: $0.kind.rawValue, default: $0.defaultValue, example: $0.example,
                    required: $0.defaultValue == nil && $0.kind != .table, optional: $0.commentedOut, doc: $0.doc)
            })
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(document), as: UTF8.self) + "\n"
    }

    // MARK: - Helpers

    static func comment(_ lines: [String]) -> String { lines.map { "# \($0)\n" }.joined() }

    static func toml(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    static func strings(_ list: [String]) -> String { "[" + list.map(toml).joined(separator: ", ") + "]" }

    /// A size in MiB when it is whole MiB, else in bytes: never rounded.
    static func size(_ bytes: Int64) -> String {
        bytes % (1024 * 1024) == 0 ? toml("\(bytes / 1024 / 1024)MiB") : "\(bytes)"
    }

    private static func section(_ name: String, _ keys: [ConfigKey]) -> ConfigSection {
        let keys = keys.map {
            ConfigKey(section: name, name: $0.name, kind: $0.kind, defaultValue: $0.defaultValue, example: $0.example,
                      commentedOut: $0.commentedOut, doc: $0.doc, render: $0.render)
        }
        return ConfigSection(name: name, doc: [], keys: keys, exampleTables: [], rendered: true)
    }

    private static func key(_ name: String, _ kind: ConfigKey.Kind, _ defaultValue: String?, example: String? = nil,
                            commentedOut: Bool = false, section: String? = nil, doc: [String] = [],
                            render: @escaping @Sendable (Configuration) -> String?) -> ConfigKey {
        ConfigKey(section: section ?? "", name: name, kind: kind, defaultValue: defaultValue, example: example,
                  commentedOut: commentedOut, doc: doc, render: render)
    }
}
