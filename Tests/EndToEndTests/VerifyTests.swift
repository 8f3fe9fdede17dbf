import Foundation
import GRDB
import Testing
import TestSupport
@testable import Ledger
@testable import Transport
import UploaderCore

/// `uploader verify` against a real SeaweedFS: every kind of tampering named
/// by the file it touches, with a non-zero exit.
@Suite(.tags(.store, .subprocess)) struct VerifyTests {
    struct Flow {
        let folder = TemporaryDirectory("uploader-verify")
        let store: TestStore
        let area: StoreArea
        let site: TestSite

        init(lockedBucket: Bool = false) throws {
            store = try TestStore.fromEnvironment()
            if lockedBucket {
                let bucket = "uploader-locked-\(UInt32.random(in: 0...UInt32.max))"
                try store.client(bucket: bucket).createLockedBucket()
                area = StoreArea(bucket: bucket, prefix: "locked")
            } else {
                area = try store.makeArea("verify")
            }
            site = try TestSite.withStore(store, area: area, root: folder.sub("site"))
            for arguments in [["simulate-camera", folder.sub("cam"), "--files", "3", "--size", "1MiB"],
                              ["device", "add", "BWC-3001", "--user", "officer-31"],
                              ["ingest", folder.sub("cam"), "--serial", "BWC-3001"],
                              ["upload"]] {
                let result = try UploaderProcess.run(arguments, config: site.configPath)
                #expect(result.status == 0, "\(arguments): \(result.stderr)")
            }
        }

        func verify(_ arguments: [String] = ["--all"]) throws -> UploaderProcess.Result {
            try UploaderProcess.run(["verify"] + arguments, config: site.configPath)
        }

        /// The ledger opened behind the agent's back, as a tamperer would.
        func tamper(_ sql: String) throws {
            let queue = try DatabaseQueue(path: site.ledgerPath)
            try queue.write { try $0.execute(sql: sql) }
        }

        func line(_ result: UploaderProcess.Result, file id: Int) -> String {
            result.stdout.split(separator: "\n").first { $0.hasPrefix("#\(id) ") }.map(String.init) ?? ""
        }

        func objectKey(_ id: Int) throws -> String {
            try DatabaseQueue(path: site.ledgerPath).read { try String.fetchOne($0, sql: "SELECT object_key FROM media_file WHERE id = ?", arguments: [id])! }
        }
    }

    @Test func anUntouchedDockVerifiesClean() throws {
        let flow = try Flow()
        let check = try UploaderProcess.run(["store", "check"], config: flow.site.configPath)
        #expect(check.stdout.contains("Object Lock: off (custody checkpoints are write-once for this agent only"), "\(check.stdout)")
        let result = try flow.verify()
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.split(separator: "\n").filter { $0.hasSuffix(": ok") }.count == 3, "\(result.stdout)")
        #expect(result.stdout.contains("3 files: 3 ok, 0 with problems; custody log intact"))
        #expect(result.stdout.contains("checkpoints signed; the store's newest signed checkpoint (event"), "\(result.stdout)")
    }

    /// The newest checkpoint object in the store, and its event id.
    func newestCheckpoint(_ flow: Flow) throws -> (key: String, eventID: Int64) {
        let client = flow.store.client(bucket: flow.area.bucket)
        let key = try #require(try client.listObjectKeys(prefix: flow.area.prefix + "/_custody/").filter { $0.hasSuffix(".json") }.max())
        let body = try #require(try client.getSmall(key: key))
        let signed = try JSONDecoder().decode(SignedCheckpoint.self, from: Data(body))
        return (key, try #require(signed.decodedPayload).lastEventID)
    }

    @Test func deletingTheNewestEventsIsCaughtByTheStoresCheckpoint() throws {
        let flow = try Flow()
        let (_, eventID) = try newestCheckpoint(flow)
        try flow.tamper("DROP TRIGGER event_no_delete; DELETE FROM event WHERE id >= \(eventID)")
        // The chain that is left is whole: only the anchor tells.
        #expect(try UploaderProcess.run(["log", "--verify"], config: flow.site.configPath).status == 0)
        let result = try flow.verify()
        #expect(result.status == 4)
        #expect(result.stdout.contains("custody: the store's newest checkpoint") && result.stdout.contains("event \(eventID), which it signed, is missing from the custody log: the log was cut short"), "\(result.stdout)")
    }

    @Test func aChainRecomputedAfterAnEditIsCaughtByTheStoresCheckpoint() throws {
        let flow = try Flow()
        try flow.tamper("DROP TRIGGER event_no_update; UPDATE event SET message = 'officer-99 held the camera' WHERE id = 3")
        // Re-chain every event after the edit, as a careful tamperer would.
        let queue = try DatabaseQueue(path: flow.site.ledgerPath)
        try queue.write { db in
            var previous = Ledger.genesisHash
            let framedFrom = try Int64.fetchOne(db, sql: "SELECT min(id) FROM event WHERE kind = 'custody.format'") ?? 0
            for row in try Row.fetchAll(db, sql: "SELECT * FROM event ORDER BY id") {
                let hash = Ledger.eventHash(format: row["id"] >= framedFrom ? .framed : .legacy, previous: previous, at: row["at"], level: row["level"], kind: row["kind"], fileID: row["file_id"],
                                            serial: row["serial"], user: row["user_id"], message: row["message"],
                                            rowDigest: row["row_digest"], actor: row["actor"])
                try db.execute(sql: "UPDATE event SET prev_hash = ?, hash = ? WHERE id = ?", arguments: [previous, hash, row["id"] as Int64])
                previous = hash
            }
        }
        #expect(try UploaderProcess.run(["log", "--verify"], config: flow.site.configPath).stdout.contains("custody log intact"))
        let result = try flow.verify(["--all"])
        #expect(result.status == 4)
        #expect(result.stdout.contains("the custody log was rewritten: event"), "\(result.stdout)")
    }

    @Test func aTamperedCheckpointObjectIsCaught() throws {
        let flow = try Flow()
        let (key, _) = try newestCheckpoint(flow)
        let client = flow.store.client(bucket: flow.area.bucket)
        var signed = try JSONDecoder().decode(SignedCheckpoint.self, from: Data(try #require(try client.getSmall(key: key))))
        var payload = try #require(signed.decodedPayload)
        payload.files += 1
        signed.payload = String(decoding: payload.canonicalBytes(), as: UTF8.self)
        let replaced = try client.send("PUT", key: key, query: [], headers: [:], body: .bytes(signed.encoded()))
        #expect(replaced.status == 200)
        let result = try flow.verify()
        #expect(result.status == 4)
        #expect(result.stdout.contains("its signature does not match its content: it was altered"), "\(result.stdout)")
    }

    @Test func checkpointsInALockedBucketAreWrittenOnceAndLocked() throws {
        let flow = try Flow(lockedBucket: true)
        let (key, _) = try newestCheckpoint(flow)
        let client = flow.store.client(bucket: flow.area.bucket)
        let head = try client.send("HEAD", key: key, query: [], headers: [:], body: .none)
        #expect(head.headers["x-amz-object-lock-mode"] == "GOVERNANCE", "\(head.headers)")
        let until = try #require(head.headers["x-amz-object-lock-retain-until-date"].flatMap(Timestamps.parse))
        #expect(until > Date().addingTimeInterval(3600 * 24 * 3000))
        let check = try UploaderProcess.run(["store", "check"], config: flow.site.configPath)
        #expect(check.status == 0 && check.stdout.contains("Object Lock: enabled (custody checkpoints are locked in governance mode for 3650 days)"), "\(check.stdout)")
        #expect(check.stdout.contains("versioning: enabled"), "\(check.stdout)")
        // A second write of the same checkpoint is refused by the store itself.
        #expect(try client.putOnce(key: key, bytes: Array("forged".utf8), contentType: "application/json") == .exists)
        #expect(try flow.verify().status == 0)
    }

    @Test func aFileRowEditedBehindTheLedgersBackIsNamed() throws {
        let flow = try Flow()
        try flow.tamper("UPDATE media_file SET user_id = 'officer-99' WHERE id = 2")
        let result = try flow.verify()
        #expect(result.status == 4)
        #expect(flow.line(result, file: 2).contains("the ledger row (state, hash, size, user, key or recording time) was changed after event"))
        #expect(flow.line(result, file: 1).hasSuffix(": ok") && flow.line(result, file: 3).hasSuffix(": ok"))
        try flow.tamper("UPDATE media_file SET user_id = 'officer-31', sha256 = '\(String(repeating: "a", count: 64))' WHERE id = 2")
        #expect(flow.line(try flow.verify(), file: 2).contains("the ledger row"))
    }

    /// Issue 14.1 on a live dock: the file's events lose their row digest and
    /// actor into the message, then the officer and recording time are changed,
    /// with a custody period to match (before v12: every line "ok", exit 0).
    @Test func aRowDigestMovedIntoTheMessageBeforeARowEditIsCaught() throws {
        let flow = try Flow()
        try flow.tamper("""
            DROP TRIGGER event_no_update;
            UPDATE event SET message = message || char(31) || row_digest || char(31) || coalesce(actor, ''), row_digest = NULL, actor = NULL WHERE file_id = 2;
            UPDATE media_file SET user_id = 'officer-99', recorded_at = '2026-01-01 00:00:00.000' WHERE id = 2;
            INSERT INTO custody_period (serial, user_id, valid_from, valid_until, created_at)
            VALUES ('BWC-3001', 'officer-99', '2025-12-31 00:00:00.000', '2026-01-02 00:00:00.000', '2026-01-01 00:00:00.000');
            """)
        let result = try flow.verify()
        #expect(result.status == 4)
        #expect(result.stdout.contains("custody log BROKEN: event") && result.stdout.contains("was altered after it was written"), "\(result.stdout)")
        #expect(!flow.line(result, file: 2).hasSuffix(": ok"), "\(result.stdout)")
    }

    /// The upgrade's event fixes every row's baseline: the first command that
    /// writes the ledger signs it, so it is anchored before anything else changes.
    @Test func theUpgradeToFramedHashesIsSignedByTheFirstCommand() throws {
        let folder = TemporaryDirectory("uploader-upgrade")
        let site = try TestSite(root: folder.sub("site"))
        #expect(try UploaderProcess.run(["device", "add", "BWC-1", "--user", "officer-1"], config: site.configPath).status == 0)
        let covered = try DatabaseQueue(path: site.ledgerPath).read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM checkpoint WHERE event_id >= (SELECT min(id) FROM event WHERE kind = 'custody.format'))")
        }
        #expect(covered == true)
    }

    /// Issue 14.7: without the key, "N checkpoints signed" proved nothing.
    @Test func aRemovedDockKeyIsAProblemAndTheStoresKeyStillChecksTheCheckpoints() throws {
        let flow = try Flow()
        try FileManager.default.removeItem(atPath: flow.site.root + "/state/dock-key")
        var result = try flow.verify(["--all", "--offline"])
        #expect(result.status == 4, "\(result.stdout)")
        #expect(result.stdout.contains("custody: the dock key \(flow.site.root)/state/dock-key is missing: the"), "\(result.stdout)")
        // With the store, the published key still checks every local checkpoint: a forged one is named.
        try flow.tamper("UPDATE checkpoint SET body = replace(body, '\"signature\" : \"', '\"signature\" : \"AAAA') WHERE event_id = (SELECT min(event_id) FROM checkpoint)")
        result = try flow.verify()
        #expect(result.status == 4)
        #expect(result.stdout.contains("(checked with the store's published key)"), "\(result.stdout)")
    }

    @Test func anEditedEventBreaksTheChain() throws {
        let flow = try Flow()
        try flow.tamper("DROP TRIGGER event_no_update; UPDATE event SET message = 'nothing happened' WHERE id = 3")
        let result = try flow.verify()
        #expect(result.status == 4)
        #expect(result.stdout.contains("custody log BROKEN: event 3 was altered after it was written"))
    }

    @Test func aReplacedSpoolCopyIsNamed() throws {
        let flow = try Flow()
        let names = try DatabaseQueue(path: flow.site.ledgerPath).read { try String.fetchAll($0, sql: "SELECT spool_name FROM media_file WHERE id IN (1, 2) ORDER BY id") }
        let objects = flow.site.spool + "/objects/"
        // Another file's copy, sealed with the same key (someone holding the keyring): it opens, and its hash gives it away.
        try FileManager.default.removeItem(atPath: objects + names[0])
        try FileManager.default.copyItem(atPath: objects + names[1], toPath: objects + names[0])
        var result = try flow.verify(["#1", "--offline"])
        #expect(result.status == 4)
        #expect(flow.line(result, file: 1).contains("the spool copy \(names[0]) has SHA-256"), "\(result.stdout)")
        // Bytes that were never sealed: the copy does not open.
        try Data(repeating: 7, count: 1 << 20).write(to: URL(fileURLWithPath: objects + names[0]))
        result = try flow.verify(["#1", "--offline"])
        #expect(result.status == 4)
        #expect(flow.line(result, file: 1).contains("the spool copy \(names[0]) cannot be read: the spool copy \(names[0]) has no valid encryption header"), "\(result.stdout)")
    }

    @Test func anObjectDeletedOrOverwrittenInTheStoreIsNamed() throws {
        let flow = try Flow()
        let client = flow.store.client(bucket: flow.area.bucket)
        // The store admin's own credentials: delete one object, overwrite another.
        let deleted = try client.send("DELETE", key: try flow.objectKey(1), query: [], headers: [:], body: .none)
        #expect(deleted.status == 204 || deleted.status == 200)
        let replaced = try client.send("PUT", key: try flow.objectKey(2), query: [], headers: ["x-amz-meta-sha256": "forged"],
                                       body: .bytes(Array("not the video".utf8)))
        #expect(replaced.status == 200)
        let result = try flow.verify()
        #expect(result.status == 4)
        #expect(flow.line(result, file: 1).contains("is gone from the store"))
        let line = flow.line(result, file: 2)
        #expect(line.contains("the store holds \(try flow.objectKey(2)) with 13 bytes") && line.contains("the object was replaced"), "\(line)")
        #expect(flow.line(result, file: 3).hasSuffix(": ok"))
    }
}

@Suite struct ActorTests {
    @Test func anAdminActionNamesTheOperatingSystemUserWhoRanIt() throws {
        let folder = TemporaryDirectory("uploader-actor")
        let site = try TestSite(root: folder.sub("site"))
        let added = try UploaderProcess.run(["device", "add", "BWC-4001", "--user", "officer-41"], config: site.configPath,
                                            environment: ["SUDO_USER": "sergeant-kim"])
        #expect(added.status == 0, "\(added.stderr)")
        let log = try UploaderProcess.run(["log", "--device", "BWC-4001"], config: site.configPath)
        let me = ProcessInfo.processInfo.userName
        #expect(log.stdout.contains("device.registered") && log.stdout.contains("(by \(me) via sudo by sergeant-kim)"), "\(log.stdout)")
        let json = try UploaderProcess.run(["log", "--device", "BWC-4001", "--json"], config: site.configPath)
        #expect(json.stdout.contains("\"actor\":\"\(me) via sudo by sergeant-kim\""), "\(json.stdout)")
        // An admin action names its actor even when that is the agent's own user; the agent's own steps need no "by".
        let plain = try UploaderProcess.run(["device", "add", "BWC-4002", "--user", "officer-42"], config: site.configPath)
        #expect(plain.status == 0)
        #expect(try UploaderProcess.run(["simulate-camera", folder.sub("cam"), "--files", "1", "--size", "1MiB"], config: site.configPath).status == 0)
        #expect(try UploaderProcess.run(["ingest", folder.sub("cam"), "--serial", "BWC-4002"], config: site.configPath).status == 0)
        let second = try UploaderProcess.run(["log", "--device", "BWC-4002"], config: site.configPath)
        let lines = second.stdout.split(separator: "\n")
        #expect(lines.contains { $0.contains("device.registered") && $0.hasSuffix("(by \(me))") }, "\(second.stdout)")
        #expect(lines.contains { $0.contains("file.spooled") } && !lines.contains { $0.contains("file.spooled") && $0.contains("(by ") }, "\(second.stdout)")
    }
}

extension VerifyTests {
    /// A checkpoint's counts are the log's: 3 files, and every event up to it.
    @Test func aCheckpointCountsTheFilesAndEventsItCovers() throws {
        let flow = try Flow()
        let (key, eventID) = try newestCheckpoint(flow)
        let body = try #require(try flow.store.client(bucket: flow.area.bucket).getSmall(key: key))
        let payload = try #require(try JSONDecoder().decode(SignedCheckpoint.self, from: Data(body)).decodedPayload)
        #expect(payload.files == 3)
        #expect(payload.events == eventID)
        #expect(payload.dock == (try flow.site.configuration()).hostName)
    }
}

/// `[store] server_side_encryption`: asked for on every object written, and
/// a store that cannot do it is a clear, site-wide stop.
@Suite(.tags(.store, .subprocess)) struct ServerSideEncryptionTests {
    @Test func everyWriteAsksForTheConfiguredEncryption() throws {
        let server = try RecordingHTTPServer()
        let client = S3Client(target: .init(endpoint: "http://127.0.0.1:\(server.port)", bucket: "evidence", addressing: .path), region: "us-east-1",
                              credentials: Credentials(accessKeyID: "AK", secretAccessKey: "SK"),
                              serverSideEncryption: .kms(keyID: "arn:aws:kms:us-east-1:111122223333:key/agency"))
        #expect(try client.putOnce(key: "pd/_custody/dock/000000000001.json", bytes: Array("{}".utf8), contentType: "application/json") == .created)
        let head = try #require(server.requestHeads.first)
        #expect(head.contains("x-amz-server-side-encryption: aws:kms"), "\(head)")
        #expect(head.contains("x-amz-server-side-encryption-aws-kms-key-id: arn:aws:kms:us-east-1:111122223333:key/agency"), "\(head)")
    }

    @Test func aStoreWithoutEncryptionStopsTheRunAndNamesTheSetting() throws {
        let store = try TestStore.fromEnvironment()
        let area = try store.makeArea("sse")
        let folder = TemporaryDirectory("uploader-sse")
        let site = try TestSite.withStore(store, area: area, root: folder.sub("site"), storeExtra: "server_side_encryption = \"AES256\"")
        for arguments in [["simulate-camera", folder.sub("cam"), "--files", "2", "--size", "1MiB"],
                          ["device", "add", "BWC-5001", "--user", "officer-51"],
                          ["ingest", folder.sub("cam"), "--serial", "BWC-5001"]] {
            #expect(try UploaderProcess.run(arguments, config: site.configPath).status == 0)
        }
        let upload = try UploaderProcess.run(["upload"], config: site.configPath)
        guard TestStore.currentKind == .seaweedfs else {
            // moto does SSE-S3 (as AWS does): there the files upload.
            #expect(upload.status == 0, "\(upload.stdout)\(upload.stderr)")
            return
        }
        // The store refuses the site (exit 7), one line that names the setting: not a crash, not any failure.
        #expect(upload.status == ExitStatus.storeRefused.rawValue && upload.killedBySignal == nil, "\(upload.stdout)\(upload.stderr)")
        let error = upload.stderr.split(separator: "\n").filter { !$0.isEmpty }
        #expect(error.count == 1 && error[0].hasPrefix("error: the evidence store refused the server-side encryption asked for (")
                && error[0].hasSuffix("check [store] server_side_encryption and kms_key_id (\"\" leaves encryption to the bucket's default)"), "\(upload.stderr)")
        let status = try UploaderProcess.json(try UploaderProcess.run(["status", "--json"], config: site.configPath))
        let states = try #require(status["states"] as? [String: Any])
        #expect(states["failed"] == nil && states["verified"] == nil, "\(states)")
    }
}

/// What the object's metadata says is compared with what was meant, not with
/// its transport encoding: names and users outside ASCII verify clean.
@Suite struct MetadataRoundTripTests {
    @Test func aFileAndUserNamedOutsideASCIIVerifyClean() throws {
        let folder = TemporaryDirectory("uploader-verify-names")
        let store = try TestStore.fromEnvironment()
        let area = try store.makeArea("names")
        let site = try TestSite.withStore(store, area: area, root: folder.sub("site"))
        func run(_ arguments: [String], expecting status: Int32 = 0) throws -> UploaderProcess.Result {
            let result = try UploaderProcess.run(arguments, config: site.configPath)
            #expect(result.status == status, "\(arguments): \(result.stdout)\(result.stderr)")
            return result
        }
        _ = try run(["simulate-camera", folder.sub("cam"), "--files", "1", "--size", "1MiB"])
        try FileManager.default.moveItem(atPath: folder.sub("cam/DCIM/100BWC/VID0001.MP4"), toPath: folder.sub("cam/DCIM/100BWC/Übung café.MP4"))
        _ = try run(["device", "add", "BWC-8", "--user", "Jürgen Müller"])
        _ = try run(["ingest", folder.sub("cam"), "--serial", "BWC-8"])
        _ = try run(["upload"])
        let file = try #require(try Ledger(path: site.ledgerPath).file(1))
        #expect(file.state == .verified && file.user == "Jürgen Müller" && file.sourcePath.hasSuffix("Übung café.MP4"))
        let key = try #require(file.objectKey)
        let head = try #require(try store.client(bucket: area.bucket).headObject(key: key))
        #expect(head.metadata["user"] == "Jürgen Müller" && head.metadata["source-path"] == file.sourcePath, "\(head.metadata)")
        let verified = try run(["verify", "--all"])
        #expect(verified.stdout.contains("Übung café.MP4: ok") && verified.stdout.contains("1 files: 1 ok"), "\(verified.stdout)")
    }
}
