import Crypto
import Foundation
import GRDB
import LedgerSimulation
import Testing
import TestSupport
import Platform
import UploaderCore
@testable import Ledger

@Suite struct LedgerUpgradeTests {
    @Test func aDamagedLedgerSaysSoWithSQLitesCode() throws {
        let folder = TemporaryDirectory()
        let path = folder.sub("ledger.sqlite")
        try String(repeating: "not a database ", count: 400).write(toFile: path, atomically: true, encoding: .utf8)
        let error = #expect(throws: UploaderError.self) { try Ledger(path: path) }
        #expect(error?.message.contains("damaged") == true)
        #expect(error?.underlying == .sqlite(ResultCode.SQLITE_NOTADB.rawValue))
    }

    @Test func aViewerOnALedgerThatNeedsAnUpgradeSaysWhatToRun() throws {
        let folder = TemporaryDirectory()
        let path = folder.sub("ledger.sqlite")
        do {
            let old = try DatabaseQueue(path: path)
            try Schema.migrator.migrate(old, upTo: "v3: spool purges")
        }
        let error = #expect(throws: UploaderError.self) { try Ledger(path: path, readOnly: true) }
        #expect(error?.message.contains("uploader housekeeping") == true)
        _ = try Ledger(path: path)
        _ = try Ledger(path: path, readOnly: true)
    }

    /// Events written before v7 keep their hashes; the upgrade adds its own
    /// event and the chain stays whole across it.
    @Test func theRowDigestUpgradeKeepsAnOldChainWhole() throws {
        let folder = TemporaryDirectory()
        let path = folder.sub("ledger.sqlite")
        do {
            let old = try DatabaseQueue(path: path)
            try Schema.migrator.migrate(old, upTo: "v6: the transition table in the schema")
            try old.write { db in
                var previous = Ledger.genesisHash
                for (index, message) in ["device BWC-1 registered to officer-1", "discovered DCIM/a.mp4"].enumerated() {
                    let at = "2026-11-0\(index + 1) 08:00:00.000"
                    let hash = Ledger.eventHash(format: .legacy, previous: previous, at: at, level: "notice", kind: "device.registered",
                                                fileID: nil, serial: "BWC-1", user: nil, message: message, rowDigest: nil, actor: nil)
                    try db.execute(sql: "INSERT INTO event (at, level, kind, serial, message, prev_hash, hash) VALUES (?, 'notice', 'device.registered', 'BWC-1', ?, ?, ?)",
                                   arguments: [at, message, previous, hash])
                    previous = hash
                }
            }
        }
        let ledger = try Ledger(path: path)
        let result = try ledger.verifyChain()
        // The two, the v7 upgrade's event, and v12's (framed hashes from there on).
        #expect(result.intact && result.events == 4, "\(result)")
        #expect(try ledger.events(EventFilter(minimumLevel: .debug)).map(\.kind).suffix(2) == [.ledgerMigrated, .custodyFormat])
    }
}
