import Crypto
import Foundation
import GRDB
import LedgerSimulation
import Testing
import TestSupport
import Platform
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
        // The schema's own events (v7: from here on events cover rows; v12: framed hashes), then the two.
        #expect(result.events == 4)
    }

    @Test func theLogRefusesUpdatesAndDeletes() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.log(EventDraft(.info, .ingestStarted, "first"))
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
            for index in 1...5 { try ledger.log(EventDraft(.info, .ingestStarted, "event \(index)")) }
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
