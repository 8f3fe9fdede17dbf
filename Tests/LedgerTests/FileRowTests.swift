import Crypto
import Foundation
import GRDB
import LedgerSimulation
import Testing
import TestSupport
import Platform
import UploaderCore
@testable import Ledger

@Suite struct FileRowTests {
    @Test func aCameraFileHasOneRowHoweverOftenItIsSeen() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        let first = try ledger.discover(serial: "BWC-1", sourcePath: "DCIM/a.mp4", size: 10, modifiedNanoseconds: 5)
        let second = try ledger.discover(serial: "BWC-1", sourcePath: "DCIM/a.mp4", size: 10, modifiedNanoseconds: 5)
        #expect(first.isNew && !second.isNew)
        #expect(first.file.id == second.file.id)
        // The same name with new content (a camera that reuses names after being cleared) is a new file.
        let reused = try ledger.discover(serial: "BWC-1", sourcePath: "DCIM/a.mp4", size: 11, modifiedNanoseconds: 9)
        #expect(reused.isNew && reused.file.id != first.file.id)
        #expect(try ledger.files().count == 2)
    }

    @Test func theSchemaRefusesASpooledFileWithoutAHash() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        let row = try ledger.discover(serial: "BWC-1", sourcePath: "a.mp4", size: 1, modifiedNanoseconds: 1).file
        _ = try ledger.markCopying(row.id)
        // copying → spooled is an allowed change: only the CHECK on the hash can refuse it.
        let error = #expect(throws: DatabaseError.self) {
            try ledger.pool.write { try $0.execute(sql: "UPDATE media_file SET state = 'spooled' WHERE id = ?", arguments: [row.id]) }
        }
        #expect(error?.resultCode == .SQLITE_CONSTRAINT)
    }

    @Test func registeringAnUnknownCameraReleasesItsHeldFiles() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        let row = try ledger.discover(serial: "BWC-9", sourcePath: "a.mp4", size: 1, modifiedNanoseconds: 1).file
        _ = try ledger.markCopying(row.id)
        let held = try ledger.markSpooled(row.id, copy: SpooledCopy(sha256: SHA256Digest(bytes: Array(repeating: 0xaa, count: 32)), spoolName: "1.mp4",
                                                                     partSize: 5 << 20, partHashes: [SHA256Digest(bytes: Array(repeating: 0xaa, count: 32))],
                                                                     recordedAt: Date(), recordedAtSource: .containerMetadata))
        #expect(held.state == .quarantined)
        #expect(held.holdReason == .unknownDevice)
        #expect(try ledger.uploadQueue().isEmpty)
        #expect(try ledger.addDevice(serial: "BWC-9", defaultUser: "officer-9", name: nil, model: nil) == 1)
        let released = try #require(try ledger.file(row.id))
        #expect(released.state == .spooled)
        #expect(released.user == "officer-9")
        #expect(try ledger.uploadQueue().map(\.id) == [row.id])
    }

    @Test func aLateAssignmentReattributesFilesNotYetUploading() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.addDevice(serial: "POOL-1", defaultUser: "pool", name: nil, model: nil)
        let recorded = Date(timeIntervalSince1970: 1_795_000_000)
        let row = try spooledFile(ledger, serial: "POOL-1", recordedAt: recorded)
        #expect(try ledger.file(row.id)?.user == "pool")
        #expect(try ledger.assign(serial: "POOL-1", user: "officer-3", from: recorded - 60, until: recorded + 60).reattributed == 1)
        #expect(try ledger.file(row.id)?.user == "officer-3")
        // Once its key is fixed the attribution does not move.
        let owner = ProcessIdentity.newOwner("test")
        _ = try #require(try ledger.claimForUpload(row.id, owner: owner))
        _ = try ledger.beginUpload(row.id, objectKey: "k", owner: owner)
        let period = try #require(try ledger.custody(serial: "POOL-1").first)
        #expect(try ledger.unassign(serial: "POOL-1", periodID: period.id).reattributed == 0)
        #expect(try ledger.assign(serial: "POOL-1", user: "officer-4", from: recorded - 30, until: recorded + 30).reattributed == 0)
        #expect(try ledger.file(row.id)?.user == "officer-3")
    }

    @Test func aViewerCannotOpenALedgerThatDoesNotExist() {
        let folder = TemporaryDirectory()
        let error = #expect(throws: UploaderError.self) { try Ledger(path: folder.sub("none.sqlite"), readOnly: true) }
        #expect(error?.message.contains("nothing has been ingested") == true)
    }
}
