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

    struct Site {
        let folder = TemporaryDirectory("uploader-tags")
        let store: TestStore
        let area: StoreArea
        let site: TestSite
        let client: S3Client

        /// Two recordings of one camera, ingested: #1 of 1 MiB (one PUT), #2 of 6 MiB (multipart).
        init(lockedBucket: Bool = true, extra: String = TagTests.categories) throws {
            store = try TestStore.fromEnvironment()
            if lockedBucket {
                let bucket = "uploader-tags-\(UInt32.random(in: 0...UInt32.max))"
                try store.client(bucket: bucket).createLockedBucket()
                area = StoreArea(bucket: bucket, prefix: "tags")
            } else {
                area = try store.makeArea("tags")
            }
            client = store.client(bucket: area.bucket)
            site = try TestSite.withStore(store, area: area, root: folder.sub("site"), extra: extra)
            try run(["simulate-camera", folder.sub("cam"), "--files", "1", "--size", "1MiB", "--seed", "1"])
            try run(["simulate-camera", folder.sub("cam2"), "--files", "1", "--size", "6MiB", "--seed", "2", "--start", "2026-11-23T22:00:00Z"])
            try FileManager.default.moveItem(atPath: folder.sub("cam2/DCIM/100BWC/VID0001.MP4"), toPath: folder.sub("cam/DCIM/100BWC/VID0002.MP4"))
            try run(["device", "add", "BWC-7", "--user", "officer-7"])
            try run(["ingest", folder.sub("cam"), "--serial", "BWC-7"])
        }

        @discardableResult
        func run(_ arguments: [String], expecting status: Int32 = 0) throws -> UploaderProcess.Result {
            let result = try UploaderProcess.run(arguments, config: site.configPath)
            #expect(result.status == status, "\(arguments): \(result.stdout)\(result.stderr)")
            return result
        }

        func file(_ id: Int64) throws -> MediaFile { try #require(try Ledger(path: site.ledgerPath).file(id)) }
    }

    @Test func tagsGivenBeforeUploadGoWithTheObjectAndItsLockHoldsAgainstTheStoresOwnCredentials() throws {
        let site = try Site()
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
        let site = try Site()
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
        let site = try Site()
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
        let site = try Site()
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
        let site = try Site()
        let killed = try UploaderProcess.run(["upload", "--now", "#1"], config: site.site.configPath, environment: ["UPLOADER_FAILPOINTS": "upload.stored=kill"])
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
        let site = try Site()
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
        let site = try Site()
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
        let site = try Site(lockedBucket: false, extra: TagTests.categories.replacingOccurrences(of: "default_category = \"routine\"", with: "default_category = \"evidence\""))
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

/// Tags the store would refuse, and what a refused tag must never cost: the lock.
@Suite struct TagValidationTests {
    @Test func aTagValueTheStoreWouldRefuseIsRefusedByTheCommandAndNothingChanges() throws {
        let site = try TagTests.Site()
        let eventsBefore = try site.run(["log", "--json"]).stdout
        for (arguments, mentions) in [
            (["--case", "C\t1"], "--case"),
            (["--case", String(repeating: "7", count: 300)], "--case"),
            (["--case", ""], "--case"),
            (["--incident", "42\u{7}"], "--incident"),
            (["--incident", "#42"], "--incident"),
            (["--note", "stop\u{1F}x"], "--note"),
        ] {
            let refused = try site.run(["tag", "#1"] + arguments + ["--category", "evidence"], expecting: 2)
            #expect(refused.stderr.split(separator: "\n").count == 1 && refused.stderr.contains(mentions), "\(arguments): \(refused.stderr)")
            #expect(refused.stdout.isEmpty, "\(arguments): \(refused.stdout)")
        }
        let file = try site.file(1)
        #expect(file.caseID == nil && file.incident == nil && file.category == nil && file.tagNote == nil)
        #expect(try site.run(["log", "--json"]).stdout == eventsBefore)
        // What S3 allows passes: letters of any script, digits, spaces and + - = . _ : / @.
        try site.run(["tag", "#1", "--case", "Fall Jürgen-2026/0117 @Nord", "--incident", "A+B=C_1.2:3"])
    }

    /// Tags written behind the command (the ledger API, as an insider or an older
    /// version could) are refused by the store; the lock must be on the object first.
    @Test func aTagTheStoreRefusesNeverKeepsTheLockFromTheObject() throws {
        let site = try TagTests.Site()
        // The ledger API refuses them as the command does.
        let ledger = try Ledger(path: site.site.ledgerPath)
        #expect(throws: UploaderError.self) { try ledger.tag([2], with: FileTags(caseID: "C\t1")) }
        // Written into the ledger directly, as an insider (or an older version) could.
        let database = try DatabaseQueue(path: site.site.ledgerPath)
        // #2 before upload: the lock goes with the upload, whatever the tags.
        try database.write { try $0.execute(sql: "UPDATE media_file SET case_id = ?, category = 'homicide' WHERE id = 2", arguments: [String(repeating: "7", count: 300)]) }
        try site.run(["upload"])
        let second = try site.file(2)
        #expect(second.state == .verified, "\(second.lastError ?? "")")
        let secondKey = try #require(second.objectKey)
        #expect(try site.client.headObject(key: secondKey)?.legalHold == true)
        #expect(second.legalHold && second.storeTagsPending)

        // #1 after upload: the retention is applied before the tags the store refuses.
        let key = try #require(try site.file(1).objectKey)
        try database.write { try $0.execute(sql: "UPDATE media_file SET case_id = 'C' || char(9) || '1', category = 'evidence', store_tags_pending = 1 WHERE id = 1") }
        try site.run(["upload"])
        let head = try #require(try site.client.headObject(key: key))
        #expect(head.lockMode == "GOVERNANCE" && head.retainUntil != nil)
        let first = try site.file(1)
        #expect(first.lockMode == "GOVERNANCE" && first.retainUntil != nil && first.storeTagsPending)
        let log = try site.run(["log", "--file", "#1", "--level", "warning"]).stdout
        #expect(log.contains("tags not applied to the stored object yet") && log.contains("case"), "\(log)")
        // The lock is what verify checks: it holds.
        #expect(try site.run(["verify", "#1", "#2"]).stdout.contains("2 files: 2 ok"))
    }

    /// An object without the lock its category requires (a tag that never
    /// reached the store, or a category changed in the ledger) is a problem.
    @Test func verifyReportsAnObjectMissingTheLockItsCategoryRequires() throws {
        let site = try TagTests.Site()
        try site.run(["upload"])
        #expect(try site.run(["verify", "#1", "#2"]).stdout.contains("2 files: 2 ok"))
        let ledger = try Ledger(path: site.site.ledgerPath)
        // Tagged in the ledger, never applied to the stored object.
        _ = try ledger.tag([1], with: FileTags(category: "evidence"))
        _ = try ledger.tag([2], with: FileTags(category: "homicide"))
        let result = try site.run(["verify", "#1", "#2"], expecting: 4)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let first = lines.first { $0.hasPrefix("#1 ") } ?? ""
        let second = lines.first { $0.hasPrefix("#2 ") } ?? ""
        #expect(first.contains("category evidence requires GOVERNANCE retention until") && first.contains("the store has none"), "\(result.stdout)")
        #expect(second.contains("category homicide requires a legal hold") && second.contains("the store has none"), "\(result.stdout)")
        // The next upload run applies it, and verify agrees.
        try site.run(["upload"])
        #expect(try site.run(["verify", "#1", "#2"]).stdout.contains("2 files: 2 ok"))
    }
}
