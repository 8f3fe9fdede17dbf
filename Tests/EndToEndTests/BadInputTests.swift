import Crypto
import Foundation
import Testing
import TestSupport
import Platform
import Spool
import UploaderCore
@testable import Ledger

/// What a new (or careless) admin does, each with a clear one-line answer,
/// a ledger entry where a file is involved, and no lost or misattributed data.
@Suite(.tags(.store, .subprocess)) struct BadInputTests {
    @Test func aRefusedAccountImportChangesNothing() throws {
        let site = try TestSite.make()
        let before = try String(contentsOfFile: site.root + "/credentials", encoding: .utf8)
        let configBefore = try String(contentsOfFile: site.configPath, encoding: .utf8)
        for (label, json) in [
            ("addressing", #"{"format": "uploader-account-v1", "endpoint": "https://s3.example.gov", "bucket": "evidence", "addressing": "sideways", "access_key_id": "NEW", "secret_access_key": "NEWSECRET"}"#),
            ("endpoint", #"{"format": "uploader-account-v1", "endpoint": "http://127.evil.example:9000", "bucket": "evidence", "access_key_id": "NEW", "secret_access_key": "NEWSECRET"}"#),
        ] {
            try json.write(toFile: site.folder.sub("\(label).json"), atomically: true, encoding: .utf8)
            let result = try UploaderProcess.run(["account", "import", site.folder.sub("\(label).json")], config: site.configPath)
            #expect(result.status == 2, "\(label): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1)
            #expect(result.stderr.contains("nothing was changed"))
        }
        #expect(try String(contentsOfFile: site.root + "/credentials", encoding: .utf8) == before)
        #expect(try String(contentsOfFile: site.configPath, encoding: .utf8) == configBefore)
    }

    @Test func aRelativeConfigPathWritesAWorkingCredentialsPath() throws {
        let folder = TemporaryDirectory()
        try #"{"format": "uploader-account-v1", "endpoint": "https://s3.example.gov", "bucket": "evidence", "access_key_id": "AK", "secret_access_key": "SK"}"#
            .write(toFile: folder.sub("a.json"), atomically: true, encoding: .utf8)
        let result = try UploaderProcess.run(["account", "import", "a.json", "--config", "etc/uploader.toml"],
                                             wrapper: ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", folder.path])
        #expect(result.status == 0, "\(result.stderr)")
        let check = try UploaderProcess.run(["config", "check"], config: folder.sub("etc/uploader.toml"))
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stdout.contains(folder.sub("etc/credentials")))
    }

    @Test func anUntrustedTLSCertificateStopsTheRunOnceAndTheFilesWait() throws {
        let certificates = TemporaryDirectory("uploader-tls")
        // A TLS server on loopback whose certificate no CA vouches for.
        let made = try UploaderProcess.run([], wrapper: ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", certificates.sub("key.pem"),
                                                         "-out", certificates.sub("cert.pem"), "-days", "1", "-subj", "/CN=not-the-store"], runExecutable: false)
        #expect(made.status == 0, "\(made.stderr)")
        let port = try Loopback.freePort()
        let server = try UploaderProcess.start([], config: nil, wrapper: ["openssl", "s_server", "-accept", "127.0.0.1:\(port)", "-cert", certificates.sub("cert.pem"),
                                                                          "-key", certificates.sub("key.pem"), "-www", "-quiet"], runExecutable: false)
        defer {
            server.signal(SIGKILL)
            _ = server.finish()
        }
        let site = try TestSite.make { $0.endpoint = "https://127.0.0.1:\(port)" }
        let camera = site.camera
        for index in 1...3 {
            try CameraVolume.writeRecording(at: camera + "/DCIM/V\(index).MP4", recordedAt: Date(), payloadSize: 10_000, seed: UInt64(index))
        }
        #expect(try UploaderProcess.run(["device", "add", "BWC-T", "--user", "officer-t"], config: site.configPath).status == 0)
        #expect(try UploaderProcess.run(["ingest", camera, "--serial", "BWC-T"], config: site.configPath).status == 0)
        #expect(Loopback.waitUntilAccepting(port: port), "openssl s_server did not start")
        let result = try UploaderProcess.run(["upload", "--now"], config: site.configPath)
        #expect(result.status == 7, "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").filter { $0.contains("TLS") }.count == 1, "\(result.stderr)")
        let files = try Ledger(path: site.ledgerPath).files()
        #expect(files.allSatisfy { $0.state == .spooled }, "the files wait for the next run, not for an admin")
    }

    @Test func theAlertCommandNeverSeesTheStoreSecret() throws {
        let site = try TestSite.make { $0.extra = """
            [monitoring]
            alert_command = "env > \($0.folder)/alert-env"
            """ }
        let ledger = try Ledger(path: site.ledgerPath)
        let row = try ledger.discover(serial: "BWC-A", sourcePath: "DCIM/evil", size: 1, modifiedNanoseconds: 1).file
        try ledger.quarantine(row.id, reason: .hostileEntry, message: "a link")
        let result = try UploaderProcess.run(["alerts"], config: site.configPath,
                                             environment: ["UPLOADER_SECRET_ACCESS_KEY": "TOP-SECRET", "UPLOADER_ACCESS_KEY_ID": "AKIDX"])
        #expect(result.status == 0, "\(result.stderr)")
        let seen = try String(contentsOfFile: site.folder.sub("alert-env"), encoding: .utf8)
        #expect(seen.contains("UPLOADER_ALERT_KEY="))
        #expect(!seen.contains("TOP-SECRET") && !seen.contains("AKIDX"))
    }

    @Test func aSpoolOthersMayWriteIsRefusedAndTheLedgerIsPrivate() throws {
        let site = try TestSite.make()
        let camera = site.camera
        try site.ingestOneRecording(named: "V1.MP4", serial: "BWC-P")
        var info = stat()
        #expect(stat(site.ledgerPath, &info) == 0)
        #expect(info.st_mode & 0o007 == 0, "the ledger is not readable by others")
        chmod(site.spool, 0o777)
        let refused = try UploaderProcess.run(["ingest", camera, "--serial", "BWC-P"], config: site.configPath)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("may be written by other users"))
        #expect(refused.stderr.contains("chmod 0750"))
        #expect(refused.stderr.split(separator: "\n").count == 1)
    }

    /// What the ledger's spool name leads to when purge comes: a name rewritten to climb out
    /// of the spool (refused by the name check), or a name like a real copy's whose file was
    /// replaced by a link to other evidence or by a folder (refused by the regular-file check).
    enum PlantedCopy: String, CaseIterable, Sendable { case nameOutOfTheSpool, linkNamedLikeACopy, folderNamedLikeACopy }

    @Test(arguments: PlantedCopy.allCases)
    func purgeDeletesOnlyARegularFileInsideTheSpool(planted: PlantedCopy) throws {
        let site = try TestSite.make { $0.extra = "[spool]\nkeep_verified_days = 0" }
        let ledger = try Ledger(path: site.ledgerPath)
        try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let outside = site.folder.sub("precious")
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try "keep me".write(toFile: outside + "/evidence.txt", atomically: true, encoding: .utf8)
        let row = try ledger.discover(serial: "BWC-1", sourcePath: "a.mp4", size: 1, modifiedNanoseconds: 1).file
        let spoolName = planted == .nameOutOfTheSpool ? "../../precious" : Spool.spoolName(fileID: row.id, sourcePath: "a.mp4")
        let plantedPath = site.spool + "/objects/" + spoolName
        try FileManager.default.createDirectory(atPath: site.spool + "/objects", withIntermediateDirectories: true)
        switch planted {
        case .nameOutOfTheSpool: break
        case .linkNamedLikeACopy: #expect(symlink(outside + "/evidence.txt", plantedPath) == 0)
        case .folderNamedLikeACopy: try FileManager.default.createDirectory(atPath: plantedPath, withIntermediateDirectories: false)
        }
        _ = try ledger.markCopying(row.id)
        let hash = SHA256Digest(bytes: Array(repeating: 0xcc, count: 32))
        _ = try ledger.markSpooled(row.id, copy: SpooledCopy(sha256: hash, spoolName: spoolName, partSize: 5 << 20, partHashes: [hash],
                                                             recordedAt: Date(), recordedAtSource: .fileModificationTime))
        let owner = ProcessIdentity.newOwner("t")
        _ = try ledger.claimForUpload(row.id, owner: owner)
        _ = try ledger.beginUpload(row.id, objectKey: "k", owner: owner)
        try ledger.markUploaded(row.id, owner: owner)
        try ledger.markVerified(row.id, storeChecksum: "x", owner: owner)
        let result = try UploaderProcess.run(["purge"], config: site.configPath)
        #expect(result.status != 0)
        switch planted {
        case .nameOutOfTheSpool:
            #expect(result.stderr.contains("refusing to delete \"../../precious\" from the spool"), "\(result.stderr)")
        case .linkNamedLikeACopy, .folderNamedLikeACopy:
            #expect(result.stderr.contains("refusing to delete \(site.spool)/objects/\(spoolName): it is not a regular file"), "\(result.stderr)")
            var info = stat()
            #expect(lstat(plantedPath, &info) == 0, "the planted \(planted) is gone")
        }
        #expect(FileManager.default.fileExists(atPath: outside + "/evidence.txt"))
        #expect(try ledger.file(row.id)?.spoolPurgedAt == nil)
    }

    @Test func sameNamesInTwoCameraFoldersGetTwoObjects() throws {
        let site = try TestSite.make("same-names") { $0.store() }
        let camera = site.camera
        let when = Date(timeIntervalSince1970: 1_795_000_000)
        try CameraVolume.writeRecording(at: camera + "/DCIM/100BWC/FILE0001.MP4", recordedAt: when, payloadSize: 10_000, seed: 1)
        try CameraVolume.writeRecording(at: camera + "/DCIM/101BWC/FILE0001.MP4", recordedAt: when + 60, payloadSize: 10_000, seed: 2)
        #expect(try UploaderProcess.run(["device", "add", "BWC-N", "--user", "officer-n"], config: site.configPath).status == 0)
        #expect(try UploaderProcess.run(["ingest", camera, "--serial", "BWC-N"], config: site.configPath).status == 0)
        let upload = try UploaderProcess.run(["upload", "--now"], config: site.configPath)
        #expect(upload.status == 0, "\(upload.stderr)")
        let files = try Ledger(path: site.ledgerPath).files()
        #expect(files.allSatisfy { $0.state == .verified })
        #expect(Set(files.compactMap(\.objectKey)).count == 2)
        #expect(try site.storedKeys().count == 2)
    }

    @Test func controlCharactersInNamesNeverReachTheTerminalRaw() throws {
        let site = try TestSite.make()
        try site.ingestOneRecording(named: "A\u{1b}[31mRED.MP4", serial: "BWC-E")
        for command in [["log"], ["status"], ["device", "show", "BWC-E"]] {
            let result = try UploaderProcess.run(command, config: site.configPath)
            #expect(!result.stdout.contains("\u{1b}"), "\(command)")
        }
    }

    @Test func anEmptyUserIsRefusedWithOneLine() throws {
        let site = try TestSite.make()
        #expect(try UploaderProcess.run(["device", "add", "BWC-U", "--user", "officer-u"], config: site.configPath).status == 0)
        let result = try UploaderProcess.run(["device", "assign", "BWC-U", "", "--from", "2026-11-24T07:00"], config: site.configPath)
        #expect(result.status == 2)
        #expect(result.stderr.contains("must not be empty"))
    }
}

extension BadInputTests {
    @Test func aNameStartingWithDotsIsCopiedLikeAnyOther() throws {
        let site = try TestSite.make()
        let camera = site.camera
        try CameraVolume.writeRecording(at: camera + "/DCIM/..MP4", recordedAt: Date(), payloadSize: 10_000, seed: 1)
        try CameraVolume.writeRecording(at: camera + "/DCIM/.VID0002.MP4", recordedAt: Date(), payloadSize: 10_000, seed: 2)
        #expect(try UploaderProcess.run(["device", "add", "BWC-D", "--user", "officer-d"], config: site.configPath).status == 0)
        #expect(try UploaderProcess.run(["ingest", camera, "--serial", "BWC-D"], config: site.configPath).status == 0)
        let files = try Ledger(path: site.ledgerPath).files()
        #expect(Set(files.map(\.sourcePath)) == ["DCIM/..MP4", "DCIM/.VID0002.MP4"])
        #expect(files.allSatisfy { $0.state == .spooled })
    }
}
