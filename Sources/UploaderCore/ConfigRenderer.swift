import Foundation

/// Writes a commented `uploader.toml` for a configuration: what
/// `uploader account import` leaves behind for the admin to read and edit.
public enum ConfigRenderer {
    static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    public static func render(_ c: Configuration) -> String {
        let credentials: String
        switch c.store.credentials {
        case .environment: credentials = "env"
        case .file(let path): credentials = path
        }
        return """
        # uploader configuration. Check it with `uploader config check`.
        # Relative paths are resolved against this file's folder.

        [paths]
        # Verified copies of camera media wait here until the store confirms them.
        spool = \(quoted(c.spoolDirectory))
        # The transfer ledger (ledger.sqlite) lives here. Back it up.
        state = \(quoted(c.stateDirectory))

        [store]
        # The S3-compatible evidence store.
        endpoint = \(quoted(c.store.endpoint))
        region = \(quoted(c.store.region))
        bucket = \(quoted(c.store.bucket))
        # Every object key starts with this (your agency or site).
        prefix = \(quoted(c.store.prefix))
        # "path" (https://host/bucket/key) or "virtual-hosted" (https://bucket.host/key).
        addressing = \(quoted(c.store.addressing.rawValue))
        # A file holding access_key_id and secret_access_key, mode 0600;
        # or "env" for UPLOADER_ACCESS_KEY_ID / UPLOADER_SECRET_ACCESS_KEY.
        credentials = \(quoted(credentials))
        # Placeholders: {prefix} {user} {serial} {name} {stem} {ext} {sha256} {id}
        # and the recording time in UTC: {yyyy} {mm} {dd} {HH} {MM} {SS}.
        key_template = \(quoted(c.store.keyTemplate))
        \(c.store.caBundle.map { "ca_bundle = \(quoted($0))" } ?? "# ca_bundle = \"/etc/ssl/certs/agency-ca.pem\"")
        # Ask the store to encrypt every object: "AES256", or "aws:kms" (with kms_key_id,
        # else the store's default key). "" leaves it to the bucket's own default.
        server_side_encryption = \(quoted(Self.encryptionName(c.store.serverSideEncryption)))
        kms_key_id = \(quoted(Self.kmsKeyID(c.store.serverSideEncryption)))

        [upload]
        # Files larger than one part go up as multipart uploads (5MiB to 5GiB).
        part_size = \(quoted("\(c.upload.partSize / 1024 / 1024)MiB"))
        # Files uploaded at the same time.
        concurrency = \(c.upload.concurrency)
        # Attempts per file in one run before it waits for the next run.
        max_attempts = \(c.upload.maxAttempts)
        retry_base_delay = \(c.upload.retryBaseDelay)
        retry_max_delay = \(c.upload.retryMaxDelay)
        connect_timeout = \(c.upload.connectTimeout)
        # A transfer slower than 1 KiB/s for this many seconds is retried.
        stall_timeout = \(c.upload.stallTimeout)
        # Unfinished multipart uploads older than this that the ledger does not know are aborted.
        abort_stale_multipart_hours = \(c.upload.abortStaleMultipartAfter / 3600)

        [schedule]
        # When uploads run on their own, in this PC's local time, e.g. ["22:00-06:00"] or
        # ["Mon-Fri 19:00-06:00", "Sat,Sun 00:00-24:00"]. Empty: any time.
        # `uploader upload --now` ignores the windows.
        windows = [\(c.schedule.windows.map { quoted($0.text) }.joined(separator: ", "))]
        # Upload bandwidth by time of day, shared by all transfers (rclone's format):
        # "07:00,2M 18:00,10M 22:00,off". Bytes per second; K, M, G = KiB, MiB, GiB.
        bandwidth = \(quoted(c.bandwidth.text))

        [ingest]
        media_extensions = [\(c.ingest.mediaExtensions.map(quoted).joined(separator: ", "))]
        # "utc" if the cameras write UTC into their MP4 headers (the standard), "local" if local time.
        camera_clock = \(quoted(c.ingest.cameraClock.rawValue))
        # Files modified more recently than this are left for the next run.
        settle_seconds = \(c.ingest.settleSeconds)
        # Space kept free on the spool disk.
        spool_reserve = \(quoted("\(c.ingest.spoolReserveBytes / 1024 / 1024)MiB"))
        # Files with a recording's stem and one of these extensions are its sidecars (linked, uploaded beside it).
        sidecar_extensions = [\(c.ingest.sidecarExtensions.map(quoted).joined(separator: ", "))]
        # Files of one camera copied at the same time (one per core is right).
        parallel_copies = \(c.ingest.parallelCopies)

        [spool]
        # Above this share of the spool disk in use, docks leave the rest on the camera…
        high_watermark_percent = \(c.ingest.highWatermarkPercent)
        # …until use falls below this (uploads verified and their copies purged).
        low_watermark_percent = \(c.ingest.lowWatermarkPercent)
        # Spool copies of files verified in the store are deleted after this many days.
        keep_verified_days = \(c.ingest.keepVerifiedDays)
        # Spool copies are sealed with AES-256-GCM (CJIS requires encryption at rest).
        encryption = \(c.ingest.encryptSpool)
        # The keys that seal them (made at first run, mode 0600; `uploader key rotate`); "" is spool-keys in the state folder.
        keyring = \(quoted(c.ingest.spoolKeyring == c.stateDirectory + "/spool-keys" ? "" : c.ingest.spoolKeyring))

        [monitoring]
        # Failure-only alerts: a command (run with sh -c; UPLOADER_ALERT_KEY and
        # UPLOADER_ALERT_MESSAGE set, the alert as JSON on stdin) and/or a webhook (JSON POST).
        alert_command = \(quoted(c.monitoring.alertCommand ?? ""))
        alert_webhook = \(quoted(c.monitoring.alertWebhook ?? ""))
        # Alert when the oldest file not yet verified is older than this.
        oldest_unverified_hours = \(c.monitoring.oldestUnverifiedHours)
        # Alert when a camera has been docked this long with nothing copied.
        docked_idle_minutes = \(c.monitoring.dockedIdleMinutes)
        # The same alert is not repeated within this many hours.
        repeat_hours = \(c.monitoring.repeatHours)
        # Prometheus textfile-collector file, rewritten after every run ("" for none).
        metrics_textfile = \(quoted(c.monitoring.metricsTextfile ?? ""))

        [docking]
        # Supported camera models (USB ids, media folders, serial, recording time).
        models = \(quoted(c.docking.modelsPath))
        # Camera volumes are mounted here read-only (ro,nosuid,nodev,noexec) while ingested.
        mount_root = \(quoted(c.docking.mountRoot))
        # Cameras read at the same time on this PC (every dock unit and process counts).
        max_concurrent_docks = \(c.docking.maxConcurrentDocks)

        [custody]
        # Signed checkpoints of the custody log go to the store under {prefix}/_custody/;
        # in a bucket with Object Lock each is locked (governance mode) for this many days.
        checkpoint_retention_days = \(c.custody.checkpointRetentionDays)

        [camera]
        # "after-verified": a dock deletes from the camera the files the store confirmed
        # (still the same on the camera, re-read to the same SHA-256); "never": read only.
        clear = \(quoted(c.cameraClear.rawValue))

        """ + renderCategories(c.categories)
    }

    /// `[categories.NAME]` and `[tagging]`, so an account import keeps them.
    static func renderCategories(_ defaults: CategoryDefaults) -> String {
        var text = ""
        for (name, category) in defaults.categories.sorted(by: { $0.key < $1.key }) {
            text += """
                [categories.\(name)]
                retention = \(quoted(category.retentionText))
                lock = \(quoted(category.lockMode.map { $0.rawValue.lowercased() } ?? "none"))
                legal_hold = \(category.legalHold)

                """
        }
        if defaults.siteDefault != nil || !defaults.userDefaults.isEmpty {
            text += "[tagging]\ndefault_category = \(quoted(defaults.siteDefault ?? ""))\n"
            if !defaults.userDefaults.isEmpty {
                text += "[tagging.users]\n" + defaults.userDefaults.sorted { $0.key < $1.key }.map { "\(quoted($0.key)) = \(quoted($0.value))" }.joined(separator: "\n") + "\n"
            }
        }
        return text
    }

    static func encryptionName(_ encryption: Configuration.ServerSideEncryption?) -> String {
        switch encryption {
        case nil: ""
        case .aes256: "AES256"
        case .kms: "aws:kms"
        }
    }

    static func kmsKeyID(_ encryption: Configuration.ServerSideEncryption?) -> String {
        if case .kms(let keyID?) = encryption { return keyID }
        return ""
    }
}
