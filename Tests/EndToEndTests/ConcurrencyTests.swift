import Foundation
import Platform
import Testing
import TestSupport
import Transport
import UploaderCore
@testable import Ledger

/// Several `uploader` processes on one ledger and spool, as on a docking PC
/// (daemon, dock units, a timer's upload, an admin's commands). The result
/// must equal some serial order of them: every file verified exactly once,
/// one object per file, nothing quarantined, an intact custody log.
@Suite(.serialized, .tags(.store, .subprocess, .slow)) struct ConcurrencyTests {
    /// Records `count` numbered recordings on the site's camera; returns their SHA-256s by path.
    static func record(_ count: Int, from first: Int = 1, on site: TestSite, size: (Int) -> Int64) throws -> [String: String] {
        var hashes: [String: String] = [:]
        for index in first..<(first + count) {
            let name = String(format: "DCIM/VID%04d.MP4", index)
            hashes[name] = try CameraVolume.writeRecording(at: site.camera + "/" + name, recordedAt: Date(timeIntervalSince1970: 1_795_000_000 + Double(index) * 60),
                                                           payloadSize: size(index), seed: UInt64(index)).hex
        }
        return hashes
    }

    /// Every file verified once, with the camera's hash, one object each, a whole log
    /// (`failedOnPurpose`: files the test itself marked failed beforehand).
    static func expectEachFileVerifiedOnce(_ site: TestSite, hashes: [String: String], failedOnPurpose: Set<Int64> = []) throws {
        let ledger = try Ledger(path: site.ledgerPath)
        let files = try ledger.files()
        #expect(files.count == hashes.count)
        #expect(files.filter { $0.state != .verified }.map { "#\($0.id) \($0.state.rawValue) \($0.lastError ?? "")" } == [])
        #expect(Dictionary(uniqueKeysWithValues: files.map { ($0.sourcePath, $0.sha256 ?? "") }) == hashes)
        let verifications = try ledger.events(EventFilter(minimumLevel: .debug)).filter { $0.kind == .uploadVerified }
        #expect(verifications.count == files.count, "each file is verified exactly once")
        #expect(Set(verifications.compactMap(\.fileID)).count == files.count)
        #expect(try ledger.events(EventFilter(minimumLevel: .debug)).filter { ($0.kind == .fileQuarantined || $0.kind == .fileFailed) && !failedOnPurpose.contains($0.fileID ?? -1) }.isEmpty)
        let keys = try site.storedKeys()
        #expect(keys.count == files.count)
        #expect(Set(keys) == Set(files.compactMap(\.objectKey)))
        #expect(try ledger.verifyChain().intact)
    }

    @Test func twoUploadsAndAPurgeAtOnceUploadEachFileOnceAndQuarantineNothing() throws {
        let site = try TestSite.make("concurrent-upload") { $0.store(); $0.extra = "[spool]\nkeep_verified_days = 0" }
        var hashes: [String: String] = [:]
        hashes.merge(try Self.record(18, on: site) { index in index % 6 == 0 ? 12 << 20 : 200_000 + Int64(index) * 1000 }) { $1 }
        let ingest = try site.cli(["ingest", site.camera, "--serial", "BWC-C"])
        #expect(ingest.status == 1 || ingest.status == 0, "\(ingest.stderr)")
        #expect(try site.cli(["device", "add", "BWC-C", "--user", "officer-c"]).status == 0)

        // Overlapping selections: files 7-12 are contested, 1-6 only the first's, 13-18 only the second's,
        // so each uploader has work only it can do.
        let first = try site.start(["upload", "--now", "--json"] + (1...12).map { String(format: "VID%04d", $0) })
        let second = try site.start(["upload", "--now", "--json"] + (7...18).map { String(format: "VID%04d", $0) })
        // Purges run beside the uploads, deleting spool copies as soon as files are verified.
        var purges: [Int32] = []
        for _ in 0..<4 { purges.append(try site.cli(["purge"]).status) }
        let results = [first.finish(), second.finish()]
        for result in results { #expect(result.status == 0, "\(result.stderr)") }
        let verified = try results.map { try UploaderProcess.json($0)["verified"] as? Int ?? 0 }
        #expect(verified.allSatisfy { $0 >= 6 } && verified.reduce(0, +) == 18, "verified by each: \(verified)")
        purges.append(try site.cli(["purge"]).status)
        #expect(purges.allSatisfy { $0 == 0 })
        try Self.expectEachFileVerifiedOnce(site, hashes: hashes)
        // Every spool copy was purged, and only those.
        #expect(CameraVolume.files(under: site.spool + "/objects").isEmpty)
    }

    @Test func twoIngestsOfOneCameraAtOnceSecureEveryFileOnce() throws {
        let site = try TestSite.make("concurrent-ingest") { $0.store() }
        var hashes: [String: String] = [:]
        hashes.merge(try Self.record(10, on: site) { index in index % 3 == 0 ? 6 << 20 : 300_000 }) { $1 }
        #expect(try site.cli(["device", "add", "BWC-C", "--user", "officer-c"]).status == 0)
        let first = try site.start(["ingest", site.camera, "--serial", "BWC-C"])
        let second = try site.start(["ingest", site.camera, "--serial", "BWC-C"])
        let results = [first.finish(), second.finish()]
        for result in results { #expect(result.status == 0, "\(result.stderr)") }

        let ledger = try Ledger(path: site.ledgerPath)
        let files = try ledger.files()
        #expect(files.count == 10)
        #expect(files.allSatisfy { $0.state == .spooled }, "\(files.map { "\($0.state) \($0.lastError ?? "")" })")
        #expect(CameraVolume.files(under: site.spool + "/objects").count == 10)
        #expect(CameraVolume.files(under: site.spool + "/tmp").isEmpty)
        #expect(try ledger.events(EventFilter(minimumLevel: .debug)).filter { $0.kind == .fileSpooled }.count == 10)
        for file in files {
            #expect(try site.spoolCopySHA256(name: file.spoolName!, keyID: file.spoolKeyID).hex == hashes[file.sourcePath])
        }
        #expect(try site.cli(["upload", "--now"]).status == 0)
        try Self.expectEachFileVerifiedOnce(site, hashes: hashes)
    }

    @Test func theDaemonBesideAnAdminsCommandsUploadsEachFileOnce() throws {
        let site = try TestSite.make("daemon-beside") { $0.store(); $0.extra = "[spool]\nkeep_verified_days = 0\n[docking]\nmodels = \"cameras.toml\"\nmount_root = \"mnt\"" }
        var hashes: [String: String] = [:]
        try "[[model]]\nid = \"x\"\nusb_ids = [\"2b4c:0001\"]\n".write(toFile: site.root + "/cameras.toml", atomically: true, encoding: .utf8)
        hashes.merge(try Self.record(12, on: site) { index in index % 4 == 0 ? 11 << 20 : 150_000 }) { $1 }
        #expect(try site.cli(["device", "add", "BWC-C", "--user", "officer-c"]).status == 0)
        #expect(try site.cli(["ingest", site.camera, "--serial", "BWC-C"]).status == 0)
        // One file failed earlier, its next attempt far off: only the admin's retry brings it back.
        let ledger = try Ledger(path: site.ledgerPath)
        let failedFile = try #require(try ledger.files().first { $0.sourcePath == "DCIM/VID0003.MP4" })
        let owner = ProcessIdentity.newOwner("test")
        _ = try ledger.claimForUpload(failedFile.id, owner: owner)
        try ledger.markUploadFailed(failedFile.id, error: "the store refused it (test)", retryAt: Date().addingTimeInterval(30 * 86400), owner: owner)
        // Three recordings more, on the camera after the first ingest: only the admin's second ingest secures them.
        hashes.merge(try Self.record(3, from: 13, on: site) { _ in 150_000 }) { $1 }

        // The daemon uploads at once on start; an admin's commands run beside it. The admin's upload
        // takes the odd files only, so the even ones are the daemon's to do.
        let daemon = try UploaderProcess.start(["daemon"], config: site.configPath, environment: ["UPLOADER_CHECK_BLOCKING": "1"])
        let retry = try site.cli(["retry", "--all-failed"])
        #expect(retry.status == 0 && retry.stdout.hasPrefix("queued 1 file again"), "\(retry.stdout)\(retry.stderr)")
        #expect(try site.cli(["ingest", site.camera, "--serial", "BWC-C"]).status == 0)
        #expect(Set(try ledger.files().map(\.sourcePath)).isSuperset(of: ["DCIM/VID0013.MP4", "DCIM/VID0014.MP4", "DCIM/VID0015.MP4"]))
        let manual = try site.start(["upload", "--now"] + stride(from: 1, through: 15, by: 2).map { String(format: "VID%04d", $0) })
        #expect(try site.cli(["purge"]).status == 0)
        let manualResult = manual.finish()
        #expect(manualResult.status == 0, "\(manualResult.stderr)")
        #expect(try eventually(within: 120, every: 0.1) { try ledger.files().allSatisfy { $0.state == .verified } })
        daemon.signal(SIGTERM)
        let stopped = daemon.finish()
        #expect(stopped.status == 0, "\(stopped.stderr)")
        #expect(try site.cli(["purge"]).status == 0)
        try Self.expectEachFileVerifiedOnce(site, hashes: hashes, failedOnPurpose: [failedFile.id])
        #expect(CameraVolume.files(under: site.spool + "/objects").isEmpty)
    }

    @Test func cancelDuringAnUploadWinsAndRetryUploadsItOnce() throws {
        // 1 MiB/s: a 12 MiB file of three parts takes long enough to be cancelled mid-way.
        let site = try TestSite.make("cancel-mid-upload") { $0.store(); $0.extra = "[schedule]\nbandwidth = \"1M\"" }
        var hashes: [String: String] = [:]
        hashes.merge(try Self.record(1, on: site) { _ in 12 << 20 }) { $1 }
        #expect(try site.cli(["device", "add", "BWC-C", "--user", "officer-c"]).status == 0)
        #expect(try site.cli(["ingest", site.camera, "--serial", "BWC-C"]).status == 0)
        let ledger = try Ledger(path: site.ledgerPath)
        let id = try #require(try ledger.files().first?.id)

        let upload = try site.start(["upload", "--now"])
        // Wait (bounded) until the first part is recorded: the upload is under way.
        #expect(try eventually(within: 60) { try ledger.parts(of: id).contains { $0.etag != nil } })
        #expect(try ledger.file(id)?.state == .uploading)
        let cancel = try site.cli(["cancel", "#\(id)"])
        #expect(cancel.status == 0, "\(cancel.stderr)")
        #expect(cancel.stdout.contains("cancelled 1 file"))
        let stopped = upload.finish()
        #expect(stopped.status == 0, "\(stopped.stderr)")
        #expect(try ledger.file(id)?.state == .cancelled, "the running upload must not override the cancel")
        let client = site.store.client(bucket: site.area.bucket)
        #expect(try site.area.evidenceKeys(client).isEmpty)
        #expect(try client.listMultipartUploads(prefix: site.area.prefix + "/").isEmpty)

        #expect(try site.cli(["retry", "#\(id)"]).status == 0)
        #expect(try site.cli(["upload", "--now"]).status == 0)
        try Self.expectEachFileVerifiedOnce(site, hashes: hashes)
    }
}
