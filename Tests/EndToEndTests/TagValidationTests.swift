import Foundation
import GRDB
import Ledger
import Testing
import TestSupport
@testable import Transport
import UploaderCore

/// Tags the store would refuse, and what a refused tag must never cost: the lock.
@Suite(.tags(.store, .subprocess)) struct TagValidationTests {
    @Test func aTagValueTheStoreWouldRefuseIsRefusedByTheCommandAndNothingChanges() throws {
        let site = try TagTests.site()
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
        let site = try TagTests.site()
        // The ledger API refuses them as the command does.
        let ledger = try Ledger(path: site.ledgerPath)
        #expect(throws: UploaderError.self) { try ledger.tag([2], with: FileTags(caseID: "C\t1")) }
        // Written into the ledger directly, as an insider (or an older version) could.
        let database = try DatabaseQueue(path: site.ledgerPath)
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
        let site = try TagTests.site()
        try site.run(["upload"])
        #expect(try site.run(["verify", "#1", "#2"]).stdout.contains("2 files: 2 ok"))
        let ledger = try Ledger(path: site.ledgerPath)
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
