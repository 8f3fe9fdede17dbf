import Crypto
import Foundation
import GRDB
import LedgerSimulation
import Testing
import TestSupport
import Platform
import UploaderCore
@testable import Ledger

/// Tags and the store: a tag given while an upload is under way stays
/// pending until the tags the store holds are the ones given.
@Suite struct TagRowTests {
    @Test func aTagGivenDuringAnUploadIsNotLostWhenTheUploadRecordsWhatItSent() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        _ = try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let file = try spooledFile(ledger, serial: "BWC-1")
        let owner = ProcessIdentity.newOwner("upload")
        let claimed = try #require(try ledger.claimForUpload(file.id, owner: owner))
        let uploading = try ledger.beginUpload(claimed.id, objectKey: "pd/a.mp4", owner: owner)
        // The upload read its tags (none); an officer tags the file meanwhile.
        let sent = FileTags(of: uploading)
        let tagged = try #require(try ledger.tag([file.id], with: FileTags(caseID: "C-1")).first)
        #expect(tagged.storeTagsPending && tagged.caseID == "C-1")
        // The upload records what it sent: the later tag stays pending for the store.
        try ledger.recordStoreTags(file.id, applied: sent, lock: StoreLock(retainUntil: nil, mode: nil, legalHold: false), message: "stored")
        #expect(try ledger.file(file.id)?.storeTagsPending == true)
        // Applied with the case: nothing pending any more.
        try ledger.recordStoreTags(file.id, applied: FileTags(caseID: "C-1"), lock: StoreLock(retainUntil: nil, mode: nil, legalHold: false), message: "tagged")
        #expect(try ledger.file(file.id)?.storeTagsPending == false)
        // Tagging a file not yet uploaded marks nothing for the store: the tags go with the upload.
        let other = try spooledFile(ledger, serial: "BWC-1", path: "b.mp4")
        #expect(try ledger.tag([other.id], with: FileTags(category: "evidence")).first?.storeTagsPending == false)
    }
}
