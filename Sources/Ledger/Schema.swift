import GRDB

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
        return migrator
    }
}
