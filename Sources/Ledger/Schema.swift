import GRDB
import UploaderCore

/// The ledger's migrations. A shipped migration never changes: add a new one.
enum Schema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: devices, files, parts, custody log") { db in
            try db.execute(sql: """
                CREATE TABLE device (
                    serial TEXT PRIMARY KEY NOT NULL,
                    default_user TEXT NOT NULL,
                    name TEXT,
                    model TEXT,
                    registered_at DATETIME NOT NULL,
                    removed_at DATETIME
                );

                -- Who held a pooled camera when. Attribution uses the recording time.
                CREATE TABLE custody_period (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    serial TEXT NOT NULL REFERENCES device(serial),
                    user_id TEXT NOT NULL,
                    valid_from DATETIME NOT NULL,
                    valid_until DATETIME,
                    created_at DATETIME NOT NULL,
                    CHECK (valid_until IS NULL OR valid_until > valid_from)
                );
                CREATE INDEX custody_period_serial ON custody_period(serial, valid_from);

                -- One row per camera file, ever. The UNIQUE identity is what makes
                -- re-docking and re-running idempotent.
                CREATE TABLE media_file (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    serial TEXT NOT NULL,
                    source_path TEXT NOT NULL,
                    source_size INTEGER NOT NULL CHECK (source_size >= 0),
                    source_mtime_ns INTEGER NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('discovered','copying','spooled','uploading','uploaded','verified','failed','quarantined','cancelled')),
                    hold_reason TEXT,
                    sha256 TEXT CHECK (sha256 IS NULL OR length(sha256) = 64),
                    spool_name TEXT UNIQUE,
                    recorded_at DATETIME,
                    recorded_at_source TEXT,
                    user_id TEXT,
                    part_size INTEGER,
                    object_key TEXT,
                    upload_id TEXT,
                    store_checksum TEXT,
                    bytes_sent INTEGER NOT NULL DEFAULT 0,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    last_error TEXT,
                    next_attempt_at DATETIME,
                    discovered_at DATETIME NOT NULL,
                    spooled_at DATETIME,
                    upload_started_at DATETIME,
                    verified_at DATETIME,
                    updated_at DATETIME NOT NULL,
                    UNIQUE (serial, source_path, source_size, source_mtime_ns),
                    CHECK (state NOT IN ('spooled','uploading','uploaded','verified') OR (sha256 IS NOT NULL AND spool_name IS NOT NULL))
                );
                CREATE INDEX media_file_state ON media_file(state, next_attempt_at);
                CREATE UNIQUE INDEX media_file_object_key ON media_file(object_key) WHERE object_key IS NOT NULL;

                -- The part plan is fixed when the file is spooled: each part's SHA-256
                -- comes from the same read of the camera as the whole-file hash.
                CREATE TABLE file_part (
                    file_id INTEGER NOT NULL REFERENCES media_file(id) ON DELETE CASCADE,
                    part_number INTEGER NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
                    offset INTEGER NOT NULL,
                    size INTEGER NOT NULL,
                    sha256 TEXT NOT NULL,
                    etag TEXT,
                    uploaded_at DATETIME,
                    PRIMARY KEY (file_id, part_number)
                );

                -- The custody log: append-only, each event carries the SHA-256 of the previous one.
                CREATE TABLE event (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    at DATETIME NOT NULL,
                    level TEXT NOT NULL CHECK (level IN ('debug','info','notice','warning','error')),
                    kind TEXT NOT NULL,
                    file_id INTEGER,
                    serial TEXT,
                    user_id TEXT,
                    message TEXT NOT NULL,
                    prev_hash TEXT NOT NULL,
                    hash TEXT NOT NULL UNIQUE
                );
                CREATE INDEX event_file ON event(file_id);
                CREATE INDEX event_serial ON event(serial);
                CREATE TRIGGER event_no_update BEFORE UPDATE ON event
                    BEGIN SELECT RAISE(ABORT, 'the custody log is append-only'); END;
                CREATE TRIGGER event_no_delete BEFORE DELETE ON event
                    BEGIN SELECT RAISE(ABORT, 'the custody log is append-only'); END;
                """)
        }
        migrator.registerMigration("v2: priorities and upload runs") { db in
            try db.execute(sql: """
                ALTER TABLE media_file ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
                CREATE INDEX media_file_queue ON media_file(priority DESC, recorded_at, id);

                -- One row per upload run: what the backlog forecast measures its rate from.
                CREATE TABLE upload_run (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    started_at DATETIME NOT NULL,
                    finished_at DATETIME NOT NULL,
                    bytes_sent INTEGER NOT NULL,
                    files_verified INTEGER NOT NULL,
                    forced BOOLEAN NOT NULL
                );
                """)
        }
        migrator.registerMigration("v3: spool purges") { db in
            try db.execute(sql: "ALTER TABLE media_file ADD COLUMN spool_purged_at DATETIME")
        }
        migrator.registerMigration("v4: claims") { db in
            // The process working on a file now (an upload or a purge). Others skip the
            // file until the holder is gone or its lease ran out.
            try db.execute(sql: """
                ALTER TABLE media_file ADD COLUMN claim_owner TEXT;
                ALTER TABLE media_file ADD COLUMN claim_until DATETIME;
                -- A custody period entered by mistake is withdrawn, never deleted.
                ALTER TABLE custody_period ADD COLUMN removed_at DATETIME;
                CREATE INDEX media_file_purge ON media_file(id)
                    WHERE state = 'verified' AND spool_name IS NOT NULL AND spool_purged_at IS NULL;
                """)
        }
        migrator.registerMigration("v5: counters, alerts and indexes for a million files") { db in
            try db.execute(sql: """
                -- Files and bytes per camera and state, kept by triggers in the same
                -- transaction as every change, so `status` and `metrics` read a few
                -- hundred rows instead of a million. '~spool' counts the copies in the spool.
                CREATE TABLE file_count (
                    serial TEXT NOT NULL,
                    state TEXT NOT NULL,
                    files INTEGER NOT NULL,
                    bytes INTEGER NOT NULL,
                    PRIMARY KEY (serial, state)
                ) WITHOUT ROWID;
                INSERT INTO file_count (serial, state, files, bytes)
                    SELECT serial, state, COUNT(*), COALESCE(SUM(source_size), 0) FROM media_file GROUP BY serial, state;
                INSERT INTO file_count (serial, state, files, bytes)
                    SELECT serial, '~spool', COUNT(*), COALESCE(SUM(source_size), 0) FROM media_file
                    WHERE spool_name IS NOT NULL AND spool_purged_at IS NULL GROUP BY serial;

                CREATE TRIGGER file_count_insert AFTER INSERT ON media_file BEGIN
                    INSERT INTO file_count (serial, state, files, bytes) VALUES (NEW.serial, NEW.state, 1, NEW.source_size)
                        ON CONFLICT (serial, state) DO UPDATE SET files = files + 1, bytes = bytes + excluded.bytes;
                END;
                CREATE TRIGGER file_count_state AFTER UPDATE OF state ON media_file WHEN OLD.state != NEW.state BEGIN
                    UPDATE file_count SET files = files - 1, bytes = bytes - OLD.source_size WHERE serial = OLD.serial AND state = OLD.state;
                    INSERT INTO file_count (serial, state, files, bytes) VALUES (NEW.serial, NEW.state, 1, NEW.source_size)
                        ON CONFLICT (serial, state) DO UPDATE SET files = files + 1, bytes = bytes + excluded.bytes;
                END;
                CREATE TRIGGER file_count_spool AFTER UPDATE OF spool_name, spool_purged_at ON media_file
                    WHEN (OLD.spool_name IS NOT NULL AND OLD.spool_purged_at IS NULL) != (NEW.spool_name IS NOT NULL AND NEW.spool_purged_at IS NULL)
                BEGIN
                    INSERT INTO file_count (serial, state, files, bytes)
                        VALUES (NEW.serial, '~spool',
                                CASE WHEN NEW.spool_name IS NOT NULL AND NEW.spool_purged_at IS NULL THEN 1 ELSE -1 END,
                                CASE WHEN NEW.spool_name IS NOT NULL AND NEW.spool_purged_at IS NULL THEN NEW.source_size ELSE -NEW.source_size END)
                        ON CONFLICT (serial, state) DO UPDATE SET files = files + excluded.files, bytes = bytes + excluded.bytes;
                END;
                -- Rows are never deleted; should one be, the counts still hold.
                CREATE TRIGGER file_count_delete AFTER DELETE ON media_file BEGIN
                    UPDATE file_count SET files = files - 1, bytes = bytes - OLD.source_size WHERE serial = OLD.serial AND state = OLD.state;
                    UPDATE file_count SET files = files - 1, bytes = bytes - OLD.source_size
                        WHERE serial = OLD.serial AND state = '~spool' AND OLD.spool_name IS NOT NULL AND OLD.spool_purged_at IS NULL;
                END;

                -- Events per kind (retries, verification failures) for the metrics.
                CREATE TABLE event_count (kind TEXT PRIMARY KEY NOT NULL, events INTEGER NOT NULL) WITHOUT ROWID;
                INSERT INTO event_count (kind, events) SELECT kind, COUNT(*) FROM event GROUP BY kind;
                CREATE TRIGGER event_count_insert AFTER INSERT ON event BEGIN
                    INSERT INTO event_count (kind, events) VALUES (NEW.kind, 1)
                        ON CONFLICT (kind) DO UPDATE SET events = events + 1;
                END;

                -- Cameras docked with nothing copied since: what the idle-dock alert reads.
                CREATE TABLE dock_open (
                    serial TEXT PRIMARY KEY NOT NULL,
                    event_id INTEGER NOT NULL,
                    at DATETIME NOT NULL
                ) WITHOUT ROWID;
                INSERT INTO dock_open (serial, event_id, at)
                    SELECT started.serial, started.id, started.at FROM event AS started
                    WHERE started.kind = 'dock.started' AND started.serial IS NOT NULL
                      AND started.id = (SELECT MAX(id) FROM event WHERE serial = started.serial AND kind = 'dock.started')
                      AND NOT EXISTS (SELECT 1 FROM event AS later WHERE later.serial = started.serial AND later.id > started.id
                                      AND later.kind IN ('dock.finished', 'dock.interrupted', 'dock.refused', 'file.spooled'));
                CREATE TRIGGER dock_open_started AFTER INSERT ON event WHEN NEW.kind = 'dock.started' AND NEW.serial IS NOT NULL BEGIN
                    INSERT OR REPLACE INTO dock_open (serial, event_id, at) VALUES (NEW.serial, NEW.id, NEW.at);
                END;
                CREATE TRIGGER dock_open_progress AFTER INSERT ON event
                    WHEN NEW.kind IN ('dock.finished', 'dock.interrupted', 'dock.refused', 'file.spooled') AND NEW.serial IS NOT NULL
                BEGIN
                    DELETE FROM dock_open WHERE serial = NEW.serial;
                END;

                -- When each alert was last sent: de-duplication by key, never by message text.
                CREATE TABLE alert (
                    key TEXT PRIMARY KEY NOT NULL,
                    last_sent_at DATETIME NOT NULL,
                    times_sent INTEGER NOT NULL,
                    message TEXT NOT NULL
                ) WITHOUT ROWID;
                INSERT INTO alert (key, last_sent_at, times_sent, message)
                    SELECT substr(message, 2, instr(message, ']') - 2), MAX(at), COUNT(*), message FROM event
                    WHERE kind = 'alert.sent' AND message LIKE '[%]%' GROUP BY substr(message, 2, instr(message, ']') - 2);

                -- An index for every query on a hot path (see Ledger.hotQueries).
                CREATE INDEX event_at ON event(at);
                CREATE INDEX event_user ON event(user_id);
                CREATE INDEX media_file_unverified ON media_file(discovered_at) WHERE state NOT IN ('verified','cancelled');
                CREATE INDEX media_file_user ON media_file(user_id);
                CREATE INDEX media_file_upload_id ON media_file(upload_id) WHERE upload_id IS NOT NULL;
                CREATE INDEX media_file_serial_discovered ON media_file(serial, discovered_at);
                """)
        }
        migrator.registerMigration("v6: the transition table in the schema") { db in
            // The domain's transition table, also enforced by SQLite: a writer that
            // bypasses `Ledger.change` (raw SQL, a future bug) cannot make a change
            // the table does not allow. A later change to the table needs a migration
            // that rewrites these rows (a test compares them with the domain).
            try db.execute(sql: """
                CREATE TABLE state_transition (
                    from_state TEXT NOT NULL,
                    to_state TEXT NOT NULL,
                    PRIMARY KEY (from_state, to_state)
                ) WITHOUT ROWID;
                CREATE TRIGGER media_file_transition BEFORE UPDATE OF state ON media_file
                    WHEN NEW.state != OLD.state
                     AND NOT EXISTS (SELECT 1 FROM state_transition WHERE from_state = OLD.state AND to_state = NEW.state)
                BEGIN
                    SELECT RAISE(ABORT, 'this file state change is not in the transition table');
                END;
                """)
            for target in FileState.allCases {
                for source in target.allowedSources where source != target {
                    try db.execute(sql: "INSERT INTO state_transition (from_state, to_state) VALUES (?, ?)", arguments: [source, target])
                }
            }
        }
        migrator.registerMigration("v7: events vouch for their file's row and name who acted") { db in
            try db.execute(sql: """
                ALTER TABLE event ADD COLUMN row_digest TEXT;
                ALTER TABLE event ADD COLUMN actor TEXT;
                """)
            // The chain goes on unbroken: older events keep their hashes; this one
            // says from where on events cover rows.
            try Ledger.append(EventDraft(.notice, .ledgerMigrated,
                                         "custody log upgraded: from this event on, every event about a file carries the digest of the file's row, and every event names the operating-system user who acted"), in: db)
        }
        migrator.registerMigration("v8: signed checkpoints") { db in
            // Each row: a signed checkpoint of the log up to event_id, and when it
            // reached the store (NULL: still to be written; never skipped).
            try db.execute(sql: """
                CREATE TABLE checkpoint (
                    event_id INTEGER PRIMARY KEY NOT NULL,
                    chain_head TEXT NOT NULL,
                    body TEXT NOT NULL,
                    created_at DATETIME NOT NULL,
                    object_key TEXT,
                    stored_at DATETIME
                );
                CREATE INDEX checkpoint_pending ON checkpoint(event_id) WHERE stored_at IS NULL;
                """)
        }
        migrator.registerMigration("v9: gaps in cameras' file numbering") { db in
            // One row per file number found missing on a camera: recorded (and
            // alerted) once, however often the camera is docked again.
            try db.execute(sql: """
                CREATE TABLE file_gap (
                    serial TEXT NOT NULL,
                    number INTEGER NOT NULL,
                    message TEXT NOT NULL,
                    found_at DATETIME NOT NULL,
                    PRIMARY KEY (serial, number)
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v10: sealed spool copies name their key") { db in
            // NULL: the copy was written in the clear (before v10, or with [spool] encryption off).
            try db.execute(sql: """
                ALTER TABLE media_file ADD COLUMN spool_key_id TEXT;
                CREATE INDEX media_file_spool_key ON media_file(spool_key_id) WHERE spool_key_id IS NOT NULL AND spool_purged_at IS NULL;
                """)
        }
        migrator.registerMigration("v11: cases, incidents, retention categories, cleared cameras, sidecars and camera clocks") { db in
            // What an officer or supervisor said of a file (`uploader tag`), and what
            // the store was last made to enforce for it; store_tags_pending: a tag
            // given after upload still to be applied to the stored object.
            try db.execute(sql: """
                ALTER TABLE media_file ADD COLUMN case_id TEXT;
                ALTER TABLE media_file ADD COLUMN incident TEXT;
                ALTER TABLE media_file ADD COLUMN category TEXT;
                ALTER TABLE media_file ADD COLUMN tag_note TEXT;
                ALTER TABLE media_file ADD COLUMN retain_until DATETIME;
                ALTER TABLE media_file ADD COLUMN lock_mode TEXT;
                ALTER TABLE media_file ADD COLUMN legal_hold INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE media_file ADD COLUMN store_tags_pending INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE media_file ADD COLUMN camera_cleared_at DATETIME;
                ALTER TABLE media_file ADD COLUMN sidecar_of INTEGER REFERENCES media_file(id);
                ALTER TABLE media_file ADD COLUMN recorded_at_camera DATETIME;
                CREATE INDEX media_file_sidecars ON media_file(sidecar_of) WHERE sidecar_of IS NOT NULL;
                CREATE INDEX media_file_clearable ON media_file(serial) WHERE state = 'verified' AND camera_cleared_at IS NULL;
                CREATE INDEX media_file_case ON media_file(case_id) WHERE case_id IS NOT NULL;
                CREATE INDEX media_file_tags_pending ON media_file(store_tags_pending, id) WHERE store_tags_pending = 1;
                """)
        }
        migrator.registerMigration("v12: framed custody hashes, a baseline of every row, store version ids") { db in
            // custody_baseline: each file row's framed digest as it stood at the
            // upgrade, for files whose last event vouched with a legacy digest.
            // The custody.format event fixes their count and combined digest, and
            // is signed with the next checkpoint: editing either is caught.
            try db.execute(sql: """
                ALTER TABLE media_file ADD COLUMN store_version_id TEXT;
                CREATE TABLE custody_baseline (
                    file_id INTEGER PRIMARY KEY NOT NULL,
                    row_digest TEXT NOT NULL
                ) WITHOUT ROWID;
                CREATE TRIGGER custody_baseline_no_update BEFORE UPDATE ON custody_baseline
                BEGIN SELECT RAISE(ABORT, 'the custody baseline is fixed at the upgrade'); END;
                CREATE TRIGGER custody_baseline_no_delete BEFORE DELETE ON custody_baseline
                BEGIN SELECT RAISE(ABORT, 'the custody baseline is fixed at the upgrade'); END;
                CREATE INDEX event_custody_format ON event(kind) WHERE kind = 'custody.format';
                CREATE INDEX event_ledger_migrated ON event(kind) WHERE kind = 'ledger.migrated';
                """)
            let baseline = CustodyBaseline()
            let rows = try Row.fetchCursor(db, sql: HotSQL.allRowDigestFields)
            let insert = try db.makeStatement(sql: "INSERT INTO custody_baseline (file_id, row_digest) VALUES (?, ?)")
            while let row = try rows.next() {
                let id: Int64 = row[0]
                let digest = Ledger.rowDigest(format: .framed, fields: Ledger.rowDigestFields(row))
                try insert.execute(arguments: [id, digest])
                baseline.add(fileID: id, digest: digest)
            }
            let rowDigestsSince = try Int64.fetchOne(db, sql: "SELECT min(id) FROM event WHERE kind = 'ledger.migrated'")
            try Ledger.append(EventDraft(.notice, .custodyFormat, CustodyBaseline.message(rows: baseline.count, digest: baseline.finalize(),
                                                                                           rowDigestsSince: rowDigestsSince)), in: db)
        }
        migrator.registerMigration("v13: the fleet registry's cache: the commit applied, the members, each commit's verdict") { db in
            // The registry itself stays in device and custody_period; a period made by a
            // fleet commit is named by that commit's number at every dock (fleet_commit).
            try db.execute(sql: """
                CREATE TABLE fleet_state (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    dock TEXT NOT NULL,
                    joined_at DATETIME NOT NULL,
                    applied_number INTEGER NOT NULL DEFAULT 0,
                    applied_hash TEXT NOT NULL,
                    synced_at DATETIME,
                    blocked_number INTEGER,
                    blocked_problem TEXT
                );
                CREATE TABLE fleet_commit (
                    number INTEGER PRIMARY KEY NOT NULL,
                    hash TEXT,
                    dock TEXT,
                    user_id TEXT,
                    at TEXT,
                    kind TEXT,
                    serial TEXT,
                    summary TEXT NOT NULL,
                    signer TEXT,
                    status TEXT NOT NULL CHECK (status IN ('applied','refused','bad')),
                    problem TEXT,
                    recorded_at DATETIME NOT NULL
                );
                CREATE TABLE fleet_member (
                    fingerprint TEXT PRIMARY KEY NOT NULL,
                    public_key TEXT NOT NULL,
                    dock TEXT,
                    admitted_in INTEGER NOT NULL
                );
                ALTER TABLE custody_period ADD COLUMN fleet_commit INTEGER;
                CREATE INDEX custody_period_fleet ON custody_period(fleet_commit) WHERE fleet_commit IS NOT NULL;
                """)
        }
        migrator.registerMigration("v14: indexes for the dock status (recordings by time, the last verified upload)") { db in
            // The late-upload rate reads the recordings of the last 30 days, `fleet find` an
            // officer's recordings of a time: both a range of recorded_at, not the whole table.
            try db.execute(sql: """
                CREATE INDEX media_file_recorded ON media_file(recorded_at) WHERE recorded_at IS NOT NULL;
                CREATE INDEX media_file_verified_at ON media_file(verified_at) WHERE verified_at IS NOT NULL;
                """)
        }
        migrator.registerMigration("v15: the fleet registry's snapshots: this dock's digest at each, and its verdict on the store's") { db in
            // One row per snapshot number this dock reached or read: `digest` is its own
            // registry's at that commit (nil: it started from that snapshot or never held it).
            try db.execute(sql: """
                CREATE TABLE fleet_snapshot (
                    number INTEGER PRIMARY KEY NOT NULL,
                    digest TEXT,
                    status TEXT NOT NULL CHECK (status IN ('pending','written','matched','started','mismatch','bad')),
                    dock TEXT,
                    signer TEXT,
                    problem TEXT,
                    recorded_at DATETIME NOT NULL
                );
                """)
        }
        return migrator
    }
}
