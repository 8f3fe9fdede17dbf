import Foundation
import GRDB
import Ledger
import Testing
import TestSupport
@testable import Transport
import UploaderCore

/// Cases, incidents and retention categories against a SeaweedFS bucket
/// created with Object Lock: tags given before upload go with the object,
/// tags given after reach the stored object, a lock holds against the
/// store's own credentials, and a delete marker is told apart from a loss.
@Suite(.tags(.store, .subprocess)) struct TagTests {
    static let categories = """
        [categories.evidence]
        retention = "2y"
        lock = "governance"
        [categories.homicide]
        retention = "indefinite"
        lock = "compliance"
        [categories.routine]
        retention = "90d"
        lock = "none"
        [tagging]
        default_category = "routine"
        """

    /// Two recordings of one camera, ingested: #1 of 1 MiB (one PUT), #2 of 6 MiB (multipart).
    static func site(lockedBucket: Bool = true, extra: String = TagTests.categories) throws -> TestSite {
        let site = try TestSite.make("tags") { $0.store(lockedBucket: lockedBucket); $0.extra = extra }
        try site.run(["simulate-camera", site.camera, "--files", "1", "--size", "1MiB", "--seed", "1"])
        try site.run(["simulate-camera", site.folder.sub("cam2"), "--files", "1", "--size", "6MiB", "--seed", "2", "--start", "2026-11-23T22:00:00Z"])
        try FileManager.default.moveItem(atPath: site.folder.sub("cam2/DCIM/100BWC/VID0001.MP4"), toPath: site.camera + "/DCIM/100BWC/VID0002.MP4")
        try site.run(["device", "add", "BWC-7", "--user", "officer-7"])
        try site.run(["ingest", site.camera, "--serial", "BWC-7"])
        return site
    }

    @Test func tagsGivenBeforeUploadGoWithTheObjectAndItsLockHoldsAgainstTheStoresOwnCredentials() throws {
        let site = try Self.site()
        let tagged = try site.run(["tag", "#1", "--case", "C-2026-0117", "--incident", "42", "--category", "evidence", "--note", "traffic stop"])
        #expect(tagged.stdout.contains("tagged 1 file (case C-2026-0117, incident 42, category evidence, note \"traffic stop\"): 0 stored objects updated, 0 waiting for the store, 1 not uploaded yet"), "\(tagged.stdout)")
        #expect(try site.run(["store", "check"]).stdout.contains("categories the store locks: evidence, homicide"))
        try site.run(["upload"])
        let first = try site.file(1), second = try site.file(2)
        #expect(first.state == .verified && second.state == .verified)

        // The single PUT: tags, GOVERNANCE retention two years from the recording time.
        #expect(try site.client.objectTagging(key: first.objectKey!) == ["case": "C-2026-0117", "incident": "42", "category": "evidence"])
        let head = try #require(try site.client.headObject(key: first.objectKey!))
        #expect(head.lockMode == "GOVERNANCE")
        let expectedUntil = first.recordedAt!.addingTimeInterval(730 * 86400)
        #expect(abs(try #require(head.retainUntil).timeIntervalSince(expectedUntil)) < 1.5)
        #expect(first.retainUntil != nil && first.lockMode == "GOVERNANCE" && !first.storeTagsPending)
        // The multipart upload: the site's default category, no lock.
        #expect(try site.client.objectTagging(key: second.objectKey!) == ["category": "routine"])
        #expect(try site.client.headObject(key: second.objectKey!)?.lockMode == nil)

        // The bucket admin's own credentials cannot delete the locked version.
        let version = try #require(try site.client.versions(of: first.objectKey!).first { !$0.isDeleteMarker })
        #expect(try site.client.deleteObject(key: first.objectKey!, versionID: version.versionID).status == 403)
        #expect(try site.client.headObject(key: first.objectKey!, versionID: version.versionID) != nil)

        // Who tagged is in the custody log.
        let log = try site.run(["log", "--file", "#1", "--json"]).stdout
        #expect(log.contains("\"kind\":\"file.tagged\"") && log.contains("\"actor\":\""), "\(log)")
        #expect(log.contains("stored with tags case=C-2026-0117, category=evidence, incident=42; GOVERNANCE retention until"))
    }

    @Test func aTagAfterUploadReachesTheStoredObjectAndRetentionIsOnlyEverExtended() throws {
        let site = try Self.site()
        try site.run(["upload"])
        let key = try site.file(1).objectKey!
        #expect(try site.client.objectTagging(key: key) == ["category": "routine"])

        // Two years, GOVERNANCE.
        var result = try site.run(["tag", "#1", "--case", "C-9", "--category", "evidence"])
        #expect(result.stdout.contains("#1 stored object \(key) tagged: case=C-9, category=evidence; GOVERNANCE retention until"), "\(result.stdout)")
        let governed = try #require(try site.client.headObject(key: key))
        #expect(governed.lockMode == "GOVERNANCE" && governed.retainUntil != nil)
        // The store itself refuses a shorter retention (without the bypass the agent never sends for that).
        // moto departs from AWS here and takes it, so it is not tried there.
        if TestStore.currentKind != .moto {
            #expect(throws: UploaderError.self) {
                try site.client.putObjectRetention(key: key, mode: "GOVERNANCE", until: governed.retainUntil!.addingTimeInterval(-86400))
            }
        }
        // Indefinite and COMPLIANCE: a legal hold, and the lock made COMPLIANCE is never weakened.
        result = try site.run(["tag", "#1", "--category", "homicide"])
        #expect(result.stdout.contains("legal hold on"), "\(result.stdout)")
        #expect(try site.client.headObject(key: key)?.legalHold == true)
        // Back to a category without a lock: tags follow, the retention stays.
        result = try site.run(["tag", "#1", "--category", "routine"])
        #expect(try site.client.objectTagging(key: key) == ["case": "C-9", "category": "routine"])
        let kept = try #require(try site.client.headObject(key: key))
        #expect(kept.retainUntil == governed.retainUntil && kept.legalHold)
        #expect(!(try site.file(1).storeTagsPending))

        // The case selects for log, verify and export.
        #expect(try site.run(["status"]).stdout.contains("Cases: 1 (1 files;"))
        let caseLog = try site.run(["log", "--case", "C-9"]).stdout
        #expect(caseLog.contains("file.tagged") && caseLog.contains("upload.tagged") && !caseLog.contains("VID0002"), "\(caseLog)")
        #expect(try site.run(["verify", "--case", "C-9"]).stdout.contains("1 files: 1 ok"))
        let bag = site.folder.sub("bag")
        #expect(try site.run(["export", "--case", "C-9", "--output", bag]).stdout.contains("wrote \(bag): 1 files"))
    }

    /// Issue 15.3: a lock asked for at CreateMultipartUpload is confirmed at
    /// verification; where the store ignored it (moto does) it is applied with
    /// PutObjectRetention and checked again, and only then recorded.
    @Test func aLockAskedForAtMultipartCreateIsConfirmedBeforeItIsRecorded() throws {
        let site = try Self.site()
        try site.run(["tag", "#2", "--category", "evidence"])
        try site.run(["upload"])
        let file = try site.file(2)
        #expect(file.state == .verified && file.lockMode == "GOVERNANCE")
        let head = try #require(try site.client.headObject(key: file.objectKey!))
        #expect(head.lockMode == "GOVERNANCE")
        #expect(abs(try #require(head.retainUntil).timeIntervalSince(try #require(file.retainUntil))) < 1.5)
        let log = try site.run(["log", "--file", "#2"]).stdout
        if TestStore.currentKind == .moto {
            #expect(log.contains("the store did not apply the lock sent with the upload (GOVERNANCE retention until"), "\(log)")
            #expect(log.contains("applied after upload and confirmed"), "\(log)")
        }
        #expect(try site.run(["verify", "#2"]).stdout.contains("1 files: 1 ok"))
    }

    /// Issue 15.5: `store check` finds out whether the store refuses a wrong
    /// checksum (moto takes one), and leaves no scratch object behind.
    @Test func storeCheckSaysWhetherTheStoreEnforcesChecksums() throws {
        let site = try Self.site()
        let check = try site.run(["store", "check"]).stdout
        if TestStore.currentKind == .moto {
            #expect(check.contains("checksums: NOT enforced (the store accepted a scratch upload with a wrong SHA-256): every upload is read back"), "\(check)")
        } else {
            #expect(check.contains("checksums: enforced"), "\(check)")
        }
        #expect(!check.contains("could not be deleted"), "\(check)")
        let probes = "\(site.area.prefix)/\(S3Client.checksumProbeFolder)"
        #expect(try site.client.listObjectKeys(prefix: probes).isEmpty)
    }

    /// An upload killed after the store took the object, a tag given meanwhile, the
    /// upload resumed: the store already holds the object (with the old tags), and the new tag still reaches it.
    @Test func aTagGivenWhileAnUploadWasInterruptedReachesTheObjectWhenItResumes() throws {
        let site = try Self.site()
        let killed = try UploaderProcess.run(["upload", "--now", "#1"], config: site.configPath, environment: ["UPLOADER_FAILPOINTS": "upload.stored=kill"])
        #expect(killed.killedBySignal == SIGKILL)
        let tagged = try site.run(["tag", "#1", "--case", "C-77", "--category", "evidence"]).stdout
        #expect(tagged.contains("1 waiting for the store"), "\(tagged)")
        try site.run(["upload", "--now", "#1"])
        let file = try site.file(1)
        #expect(file.state == .verified && !file.storeTagsPending)
        #expect(try site.client.objectTagging(key: file.objectKey!) == ["case": "C-77", "category": "evidence"])
        #expect(try site.client.headObject(key: file.objectKey!)?.lockMode == "GOVERNANCE")
    }

    @Test func aPlainDeleteIsReportedAsADeleteMarkerWithTheRetainedVersionStillProvingTheFile() throws {
        let site = try Self.site()
        try site.run(["tag", "#1", "--category", "evidence"])
        try site.run(["upload"])
        let key = try site.file(1).objectKey!
        // DELETE without a version: the store only adds a marker.
        #expect(try site.client.deleteObject(key: key).status == 204)
        let result = try site.run(["verify", "#1"], expecting: 4)
        let line = result.stdout.split(separator: "\n").first { $0.hasPrefix("#1 ") }.map(String.init) ?? ""
        #expect(line.contains("the object \(key) was deleted: a delete marker (version "), "\(result.stdout)")
        // moto takes any checksum: there the file was proven, and is found again, by reading the bytes back.
        let how = TestStore.currentKind == .moto ? "size and SHA-256 of the bytes read back match" : "size and SHA-256 checksum match"
        #expect(line.contains("still holds the file (\(how), GOVERNANCE retention until"), "\(line)")
    }

    /// Issue 14.9: the version verified at upload is recorded, so a court bag
    /// can still be made after a plain DELETE or an overwrite hid it.
    @Test func aBagIsStillMadeFromTheVerifiedVersionAfterADeleteMarkerOrAnOverwrite() throws {
        let site = try Self.site()
        try site.run(["upload"])
        let first = try site.file(1), second = try site.file(2)
        let verifiedVersion = try #require(first.storeVersionID, "the upload recorded no version id")
        #expect(try site.client.headObject(key: first.objectKey!, versionID: verifiedVersion)?.size == first.sourceSize)
        #expect(try site.client.deleteObject(key: first.objectKey!).status == 204)
        let overwrite = try site.client.send("PUT", key: second.objectKey!, query: [], headers: [:], body: .bytes(Array("not the video".utf8)))
        #expect(overwrite.status == 200)
        let verify = try site.run(["verify", "--all"], expecting: 4)
        #expect(verify.stdout.contains("was overwritten: its latest version is") && verify.stdout.contains("which still holds the file (export uses it)"), "\(verify.stdout)")
        let bag = site.folder.sub("bag")
        let export = try site.run(["export", "--device", "BWC-7", "--output", bag])
        #expect(export.stdout.contains("wrote \(bag): 2 files"), "\(export.stdout)")
        let checked = try UploaderProcess.run(["verify-bag", bag])
        #expect(checked.stdout.contains(": valid: 2 files"), "\(checked.stdout)")
    }

    @Test func aLockingCategoryIsRefusedWhereTheBucketCannotEnforceIt() throws {
        let site = try Self.site(lockedBucket: false, extra: TagTests.categories.replacingOccurrences(of: "default_category = \"routine\"", with: "default_category = \"evidence\""))
        #expect(try site.run(["store", "check"]).stdout.contains("REFUSED: categories evidence, homicide lock their files, which this bucket cannot enforce"))
        let refused = try site.run(["tag", "#1", "--category", "homicide"], expecting: 2)
        #expect(refused.stderr.contains("category homicide locks its files, but bucket \(site.area.bucket) has no Object Lock"), "\(refused.stderr)")
        // The site's default category locks: the upload refuses, and nothing is stored.
        try site.run(["upload"], expecting: 1)
        let file = try site.file(1)
        #expect(file.state == .failed && (file.lastError ?? "").contains("has no Object Lock"), "\(file.lastError ?? "")")
        #expect(try site.area.evidenceKeys(site.client).isEmpty)
    }
}
