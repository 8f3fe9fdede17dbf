import Foundation
import GRDB
import Testing
import TestSupport
import UploaderCore
@testable import Ledger

@Suite struct CustodyLogTests {
    @Test func theChainVerifiesWhenUntouched() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        _ = try ledger.discover(serial: "BWC-1", sourcePath: "DCIM/a.mp4", size: 10, modifiedNanoseconds: 1)
        let result = try ledger.verifyChain()
        #expect(result.intact)
        #expect(result.events == 2)
    }

    @Test func theLogRefusesUpdatesAndDeletes() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.log(EventDraft(.info, "test", "first"))
        #expect(throws: (any Error).self) {
            try ledger.pool.write { try $0.execute(sql: "UPDATE event SET message = 'rewritten'") }
        }
        #expect(throws: (any Error).self) {
            try ledger.pool.write { try $0.execute(sql: "DELETE FROM event") }
        }
    }

    @Test func anAlteredOrRemovedEventIsFound() throws {
        let folder = TemporaryDirectory()
        let path = folder.sub("ledger.sqlite")
        do {
            let ledger = try Ledger(path: path)
            for index in 1...5 { try ledger.log(EventDraft(.info, "test", "event \(index)")) }
        }
        // Someone with raw database access drops the guard and edits history.
        let raw = try DatabaseQueue(path: path)
        try raw.write { db in
            try db.execute(sql: "DROP TRIGGER event_no_update; DROP TRIGGER event_no_delete")
            try db.execute(sql: "UPDATE event SET message = 'nothing happened' WHERE id = 3")
        }
        let altered = try Ledger(path: path).verifyChain()
        #expect(!altered.intact)
        #expect(altered.firstBrokenEventID == 3)
        #expect(altered.problem?.contains("altered") == true)

        try raw.write { db in
            try db.execute(sql: "UPDATE event SET message = 'event 3' WHERE id = 3")
            try db.execute(sql: "DELETE FROM event WHERE id = 2")
        }
        let removed = try Ledger(path: path).verifyChain()
        #expect(removed.firstBrokenEventID == 3)
        #expect(removed.problem?.contains("removed or inserted") == true)
    }
}

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
        #expect(throws: (any Error).self) {
            try ledger.pool.write { try $0.execute(sql: "UPDATE media_file SET state = 'spooled' WHERE id = ?", arguments: [row.id]) }
        }
    }

    @Test func registeringAnUnknownCameraReleasesItsHeldFiles() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        let row = try ledger.discover(serial: "BWC-9", sourcePath: "a.mp4", size: 1, modifiedNanoseconds: 1).file
        let held = try ledger.markSpooled(row.id, copy: SpooledCopy(sha256: String(repeating: "a", count: 64), spoolName: "1.mp4",
                                                                     partSize: 5 << 20, partHashes: [String(repeating: "a", count: 64)],
                                                                     recordedAt: Date(), recordedAtSource: .containerMetadata))
        #expect(held.state == .quarantined)
        #expect(held.holdReason == "unknown device")
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
        let row = try ledger.discover(serial: "POOL-1", sourcePath: "a.mp4", size: 1, modifiedNanoseconds: 1).file
        _ = try ledger.markSpooled(row.id, copy: SpooledCopy(sha256: String(repeating: "b", count: 64), spoolName: "1.mp4", partSize: 5 << 20,
                                                             partHashes: [String(repeating: "b", count: 64)], recordedAt: recorded,
                                                             recordedAtSource: .containerMetadata))
        #expect(try ledger.file(row.id)?.user == "pool")
        #expect(try ledger.assign(serial: "POOL-1", user: "officer-3", from: recorded - 60, until: recorded + 60) == 1)
        #expect(try ledger.file(row.id)?.user == "officer-3")
        // Once its key is fixed the attribution does not move.
        _ = try ledger.beginUpload(row.id, objectKey: "k")
        #expect(try ledger.assign(serial: "POOL-1", user: "officer-4", from: recorded - 30, until: recorded + 30) == 0)
        #expect(try ledger.file(row.id)?.user == "officer-3")
    }

    @Test func aViewerCannotOpenALedgerThatDoesNotExist() {
        let folder = TemporaryDirectory()
        let error = #expect(throws: UploaderError.self) { try Ledger(path: folder.sub("none.sqlite"), readOnly: true) }
        #expect(error?.message.contains("nothing has been ingested") == true)
    }
}
