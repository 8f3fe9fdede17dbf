import Foundation
import Testing
import TestSupport
import UploaderCore
@testable import Ledger

/// The `uploader` executable as an admin uses it: real files, real ledger, real store.
@Suite(.serialized, .tags(.store, .subprocess)) struct CommandLineTests {
    @Test func aBrokenConfigurationGetsEveryProblemWithItsLine() throws {
        let folder = TemporaryDirectory()
        try """
            [store]
            endpoint = "s3.example.gov"
            bucket = "x"
            credentials = "env"
            [upload]
            concurrency = "four"
            """.write(toFile: folder.sub("uploader.toml"), atomically: true, encoding: .utf8)
        let result = try UploaderProcess.run(["config", "check"], config: folder.sub("uploader.toml"))
        #expect(result.status == 2)
        #expect(result.stderr.contains("uploader.toml: line 2: store.endpoint: must start with https://"))
        #expect(result.stderr.contains("uploader.toml: line 3: store.bucket:"))
        #expect(result.stderr.contains("uploader.toml: line 6: upload.concurrency: must be a whole number"))
        #expect(result.stderr.contains("then run `uploader config check`"))
    }

    @Test func aMissingConfigurationSaysHowToCreateOne() throws {
        let result = try UploaderProcess.run(["status"], config: "/nonexistent/uploader.toml")
        #expect(result.status == 2)
        #expect(result.stderr == "error: cannot read the configuration /nonexistent/uploader.toml: create it from Config/uploader.toml or run `uploader account import FILE.json`\n")
    }

    @Test func accountImportWritesAWorkingConfigurationAndAPrivateCredentialsFile() throws {
        let store = try TestStore.fromEnvironment()
        let area = try store.makeArea("account")
        let folder = TemporaryDirectory()
        let account = """
            {"format": "uploader-account-v1", "endpoint": "\(store.endpoint)", "region": "us-east-1",
             "bucket": "\(area.bucket)", "prefix": "\(area.prefix)", "addressing": "path",
             "access_key_id": "\(store.accessKey)", "secret_access_key": "\(store.secretKey)"}
            """
        try account.write(toFile: folder.sub("account.json"), atomically: true, encoding: .utf8)
        let config = folder.sub("etc/uploader.toml")
        let imported = try UploaderProcess.run(["account", "import", folder.sub("account.json")], config: config)
        #expect(imported.status == 0, "\(imported.stderr)")
        var info = stat()
        #expect(stat(folder.sub("etc/credentials"), &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        let configText = try String(contentsOfFile: config, encoding: .utf8)
        #expect(!configText.contains(store.secretKey))
        let check = try UploaderProcess.run(["config", "check"], config: config)
        #expect(check.status == 0, "\(check.stderr)")
        #expect(!check.stdout.contains(store.secretKey))
        let storeCheck = try UploaderProcess.run(["store", "check"], config: config)
        #expect(storeCheck.status == 0, "\(storeCheck.stderr)")
        #expect(storeCheck.stdout.contains("credentials accepted"))
    }

    @Test func aBrokenAccountFileIsRefusedWithOneLine() throws {
        let folder = TemporaryDirectory()
        try "{\"format\": \"uploader-account-v1\", \"endpoint\": \"https://x\"}".write(toFile: folder.sub("a.json"), atomically: true, encoding: .utf8)
        let result = try UploaderProcess.run(["account", "import", folder.sub("a.json")], config: folder.sub("u.toml"))
        #expect(result.status == 2)
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(result.stderr.contains("has no \"bucket\""))
        #expect(!FileManager.default.fileExists(atPath: folder.sub("u.toml")))
    }

    @Test func theWholeFlowIsVisibleInStatusAndLog() throws {
        let site = try TestSite.make("flow") { $0.store() }
        func run(_ arguments: [String]) throws -> UploaderProcess.Result {
            let result = try UploaderProcess.run(arguments, config: site.configPath)
            #expect(result.status == 0, "uploader \(arguments.joined(separator: " ")): \(result.stderr)")
            return result
        }
        _ = try run(["simulate-camera", site.folder.sub("cam"), "--files", "3", "--size", "1MiB"])
        let ingest = try run(["ingest", site.folder.sub("cam"), "--serial", "BWC-2001", "--json"])
        #expect(try UploaderProcess.json(ingest)["held"] as? Int == 3)

        let held = try run(["status"])
        #expect(held.stdout.contains("BWC-2001       NOT REGISTERED"))
        #expect(held.stdout.contains("uploader device add BWC-2001 --user ID"))

        let added = try run(["device", "add", "BWC-2001", "--user", "officer-21", "--name", "Car 21"])
        #expect(added.stdout.contains("released 3 held files"))
        let upload = try run(["upload", "--json"])
        #expect(try UploaderProcess.json(upload)["verified"] as? Int == 3)

        let status = try UploaderProcess.json(try run(["status", "--json"]))
        let states = try #require(status["states"] as? [String: [String: Any]])
        #expect(states.keys.sorted() == ["verified"])
        #expect(states["verified"]?["count"] as? Int == 3)
        #expect(status["oldestUnverified"] == nil)
        #expect((status["spool"] as? [String: Any])?["freeBytes"] != nil)

        let log = try run(["log", "--device", "BWC-2001", "--file", "VID0002"])
        #expect(log.stdout.contains("file.discovered"))
        #expect(log.stdout.contains("file.spooled"))
        #expect(log.stdout.contains("upload.verified"))
        #expect(!log.stdout.contains("VID0001"))
        let errors = try run(["log", "--level", "error"])
        #expect(errors.stdout.isEmpty)
        let verified = try run(["log", "--verify"])
        #expect(verified.stdout.hasPrefix("custody log intact"))
        let json = try run(["log", "--json", "--user", "officer-21", "--limit", "2"])
        let events = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        #expect(events.count == 2)
        #expect(events.allSatisfy { ($0["hash"] as? String)?.count == 64 })
    }

    @Test func aTamperedLogIsReportedByLogVerify() throws {
        let site = try TestSite.make()
        _ = try UploaderProcess.run(["device", "add", "BWC-1", "--user", "officer-1"], config: site.configPath)
        _ = try UploaderProcess.run(["device", "assign", "BWC-1", "officer-2", "--from", "2026-11-20T07:00"], config: site.configPath)
        let ledger = try Ledger(path: site.ledgerPath)
        try ledger.pool.write { db in
            try db.execute(sql: "DROP TRIGGER event_no_update")
            try db.execute(sql: "UPDATE event SET user_id = 'someone-else' WHERE kind = 'device.assigned'")
        }
        let result = try UploaderProcess.run(["log", "--verify"], config: site.configPath)
        #expect(result.status == 4)
        let assigned = try ledger.pool.read { try Int64.fetchOne($0, sql: "SELECT id FROM event WHERE kind = 'device.assigned'")! }
        #expect(result.stdout.contains("custody log BROKEN: event \(assigned) was altered"))
    }

    @Test func aKilledIngestLeavesNoHalfFileAndTheNextRunFinishes() throws {
        let site = try TestSite.make()
        let cameraHash = try CameraVolume.writeRecording(at: site.folder.sub("cam/DCIM/VID1.MP4"), recordedAt: Date(), payloadSize: 10 << 20)
        // SIGKILL after the third 1 MiB chunk reached the temporary copy.
        let killed = try UploaderProcess.run(["ingest", site.folder.sub("cam"), "--serial", "BWC-1"], config: site.configPath,
                                             environment: ["UPLOADER_FAILPOINTS": "ingest.chunk-written=kill@3"])
        #expect(killed.killedBySignal == SIGKILL)
        #expect(CameraVolume.files(under: site.spool + "/objects").isEmpty)
        #expect(CameraVolume.files(under: site.spool + "/tmp").count == 1)
        #expect(try Ledger(path: site.ledgerPath).files().first?.state == .copying)

        let rerun = try UploaderProcess.run(["ingest", site.folder.sub("cam"), "--serial", "BWC-1"], config: site.configPath)
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(CameraVolume.files(under: site.spool + "/tmp").isEmpty)
        let row = try #require(try Ledger(path: site.ledgerPath).files().first)
        #expect(row.sha256 == cameraHash.hex)
        #expect(try site.spoolCopySHA256(name: row.spoolName!, keyID: row.spoolKeyID) == cameraHash)
        #expect(try Ledger(path: site.ledgerPath).events(EventFilter(minimumLevel: .warning)).contains { $0.kind == .spoolCleanup })
    }

    @Test func aKillAfterTheRenameButBeforeTheLedgerIsHarmless() throws {
        let site = try TestSite.make()
        let cameraHash = try CameraVolume.writeRecording(at: site.folder.sub("cam/VID1.MP4"), recordedAt: Date(), payloadSize: 100_000)
        let killed = try UploaderProcess.run(["ingest", site.folder.sub("cam"), "--serial", "BWC-1"], config: site.configPath,
                                             environment: ["UPLOADER_FAILPOINTS": "ingest.renamed=kill"])
        #expect(killed.killedBySignal == SIGKILL)
        let rerun = try UploaderProcess.run(["ingest", site.folder.sub("cam"), "--serial", "BWC-1"], config: site.configPath)
        #expect(rerun.status == 0)
        let rows = try Ledger(path: site.ledgerPath).files()
        #expect(rows.count == 1)
        #expect(rows.first?.sha256 == cameraHash.hex)
        #expect(CameraVolume.files(under: site.spool + "/objects").count == 1)
    }

    @Test func sigtermMidCopyStopsCleanlyAndTheNextRunFinishes() throws {
        let site = try TestSite.make()
        // A 1 GiB recording, sparse after its header, so the copy takes a few seconds.
        let path = site.folder.sub("cam/DCIM/LONG.MP4")
        try CameraVolume.writeRecording(at: path, recordedAt: Date(), payloadSize: 4096)
        #expect(truncate(path, 1 << 30) == 0)
        let running = try UploaderProcess.start(["ingest", site.folder.sub("cam"), "--serial", "BWC-1"], config: site.configPath)
        // Wait for the copy to be under way: its temporary file exists and is growing.
        #expect(eventually(within: 60, every: 0.005) {
            (try? FileManager.default.attributesOfItem(atPath: site.spool + "/tmp/1.partial")[.size] as? Int).map { $0 > 0 } == true
        })
        running.signal(SIGTERM)
        let result = running.finish()
        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.stderr.contains("stopped"))
        #expect(CameraVolume.evidenceFiles(inSpool: site.spool).isEmpty)
        let row = try #require(try Ledger(path: site.ledgerPath).files().first)
        #expect(row.state == .failed)
        #expect(row.lastError?.contains("interrupted") == true)
        let rerun = try UploaderProcess.run(["ingest", site.folder.sub("cam"), "--serial", "BWC-1"], config: site.configPath)
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(try Ledger(path: site.ledgerPath).files().first?.sha256 == CameraVolume.sha256(ofFile: path).hex)
    }

    /// Also the test of invariant 7: the daemon runs its services with the
    /// blocking-call check on, so a ledger, curl or libudev call made on the
    /// cooperative pool would abort it and fail this test.
    @Test func theDaemonSpeaksSystemdsNotifyProtocolAndStopsOnSigterm() throws {
        let site = try TestSite.make {
            $0.files["cameras.toml"] = "[[model]]\nid = \"x\"\nusb_ids = [\"2b4c:0001\"]\n"
            $0.extra = "[docking]\nmodels = \"cameras.toml\"\nmount_root = \"mnt\"\n"
        }
        // systemd's side: a datagram socket the daemon is told about through NOTIFY_SOCKET.
        let socketPath = site.folder.sub("notify.sock")
        let listener = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(socketPath.utf8)) }
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        #expect(bound == 0)
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(listener, &buffer, buffer.count, 0)
            return count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self) : nil
        }

        let daemon = try UploaderProcess.start(["daemon"], config: site.configPath,
                                               environment: ["NOTIFY_SOCKET": socketPath, "WATCHDOG_USEC": "400000",
                                                             // Invariant 7: any SQLite, curl or libudev call inside a Swift task aborts the daemon.
                                                             "UPLOADER_CHECK_BLOCKING": "1"])
        let ready = receive()
        #expect(ready?.hasPrefix("READY=1\nSTATUS=") == true, "\(ready ?? "nothing")")
        let ping = receive()
        #expect(ping?.hasPrefix("WATCHDOG=1") == true, "\(ping ?? "nothing")")
        daemon.signal(SIGTERM)
        var stopping = false
        while let message = receive() {
            if message.hasPrefix("STOPPING=1") { stopping = true; break }
        }
        #expect(stopping)
        let result = daemon.finish()
        #expect(result.status == 0, "\(result.stderr)")
        let kinds = try Ledger(path: site.ledgerPath).events(EventFilter(minimumLevel: .debug)).map(\.kind)
        #expect(kinds.contains(.daemonStarted) && kinds.contains(.daemonStopped))
    }

    /// The whole backpressure cycle on a real 8 MiB file system (tmpfs in a user+mount
    /// namespace): the spool fills, a dock leaves files on the camera, uploads are
    /// verified and purged, and the next dock copies the rest.
    @Test func aFullSpoolLeavesFilesOnTheCameraUntilUploadsFreeIt() throws {
        let site = try TestSite.make("watermark") {
            $0.store()
            $0.extra = "[spool]\nhigh_watermark_percent = 60.0\nlow_watermark_percent = 30.0\nkeep_verified_days = 0.0\n"
        }
        for index in 0..<3 {
            try CameraVolume.writeRecording(at: site.folder.sub("cam/DCIM/VID\(index).MP4"), recordedAt: Date(), payloadSize: 5 << 19, seed: UInt64(index))
        }
        try FileManager.default.createDirectory(atPath: site.spool, withIntermediateDirectories: true)
        let log = site.folder.sub("steps.log")
        let uploader = UploaderProcess.executable
        let script = """
            mount -t tmpfs -o size=8m,mode=0750 tmpfs "$SPOOL" || exit 90
            export UPLOADER_CONFIG="$CONFIG"
            for step in "ingest $CAM --serial BWC-W" "device add BWC-W --user officer-w" "status" "upload --now" "ingest $CAM --serial BWC-W" "status"; do
                echo "== $step" >> "$LOG"
                "$UPLOADER" $step >> "$LOG" 2>&1
                echo "rc=$?" >> "$LOG"
            done
            """
        let result = try UploaderProcess.run([], config: site.configPath,
                                             environment: ["SPOOL": site.spool, "CONFIG": site.configPath, "CAM": site.folder.sub("cam"), "LOG": log, "UPLOADER": uploader],
                                             wrapper: ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh"], runExecutable: false)
        let steps = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(result.status == 0, "\(steps)")
        let sections = steps.components(separatedBy: "== ")
        #expect(sections.count == 7, "\(steps)")
        guard sections.count == 7 else { return }
        // 2.5 MiB files on 8 MiB: two fit below 60 %, the third stays on the camera.
        #expect(sections[1].contains("1 file left on the camera"))
        #expect(sections[1].contains("2 copied"))
        #expect(sections[1].contains("rc=3"))
        #expect(sections[3].contains("ABOVE THE HIGH WATERMARK"))
        #expect(sections[4].contains("upload: 2 verified"))
        #expect(sections[5].contains("1 copied") && sections[5].contains("rc=0"))
        #expect(!sections[6].contains("ABOVE THE HIGH WATERMARK"))
        let files = try Ledger(path: site.ledgerPath).files()
        #expect(files.count == 3)
        #expect(files.filter { $0.state == .verified }.count == 2 && files.filter { $0.state == .spooled }.count == 1)
    }

    /// A spool whose disk fills mid-copy: a real 1 MiB tmpfs under spool/tmp, mounted in a
    /// user+mount namespace (no root needed), so the pre-copy space check passes and
    /// the write itself meets ENOSPC.
    @Test func aSpoolDiskThatFillsMidCopyKeepsNothingHalfWritten() throws {
        let site = try TestSite.make()
        try FileManager.default.createDirectory(atPath: site.spool + "/tmp", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: site.spool + "/objects", withIntermediateDirectories: true)
        try CameraVolume.writeRecording(at: site.folder.sub("cam/VID1.MP4"), recordedAt: Date(), payloadSize: 3 << 20)
        let mountThenRun = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=1m,mode=0750 tmpfs \"$0\" && exec \"$@\"", site.spool + "/tmp"]
        let result = try UploaderProcess.run(["ingest", site.folder.sub("cam"), "--serial", "BWC-1"], config: site.configPath, wrapper: mountThenRun)
        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.stderr.contains("error: the spool disk filled up while copying VID1.MP4: free space, then dock again; nothing half-written was kept"))
        #expect(CameraVolume.evidenceFiles(inSpool: site.spool).isEmpty)
        let row = try #require(try Ledger(path: site.ledgerPath).files().first)
        #expect(row.state == .failed)
        #expect(row.lastError?.contains("filled up") == true)
        // With space again, the same dock completes.
        let rerun = try UploaderProcess.run(["ingest", site.folder.sub("cam"), "--serial", "BWC-1"], config: site.configPath)
        #expect(rerun.status == 0)
        #expect(try Ledger(path: site.ledgerPath).files().first?.spoolName != nil)
    }
}
