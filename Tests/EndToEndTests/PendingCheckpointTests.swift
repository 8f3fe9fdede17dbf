import Foundation
import Testing
import TestSupport
import UploaderCore
@testable import Ledger

/// A checkpoint signed while the store cannot be reached waits in the
/// ledger, and the next run that reaches the store writes it, unchanged.
@Suite(.tags(.store, .subprocess)) struct PendingCheckpointTests {
    @Test func aCheckpointLeftPendingWhileTheStoreIsDownIsWrittenByTheNextRun() throws {
        let site = try TestSite.make("pending-checkpoint") { $0.store() }
        let reachable = try String(contentsOfFile: site.configPath, encoding: .utf8)
        // The store is down: nothing listens on this port.
        let down = "http://127.0.0.1:\(try Loopback.freePort())"
        try reachable.replacingOccurrences(of: "endpoint = \"\(site.store.endpoint)\"", with: "endpoint = \"\(down)\"")
            .write(toFile: site.configPath, atomically: true, encoding: .utf8)
        for arguments in [["simulate-camera", site.folder.sub("cam"), "--files", "1", "--size", "64KiB"],
                          ["device", "add", "BWC-8001", "--user", "officer-81"],
                          ["ingest", site.folder.sub("cam"), "--serial", "BWC-8001"]] {
            let result = try UploaderProcess.run(arguments, config: site.configPath)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
        }
        let failed = try UploaderProcess.run(["upload"], config: site.configPath)
        #expect(failed.killedBySignal == nil, "\(failed.stderr)")
        let ledger = try Ledger(path: site.ledgerPath)
        let pending = try ledger.pendingCheckpoints()
        #expect(!pending.isEmpty, "the ingest signed a checkpoint")
        let client = site.client
        let folderKey = SignedCheckpoint.folder(prefix: site.area.prefix, dock: try site.configuration().hostName) + "/"
        #expect(try client.listObjectKeys(prefix: folderKey).filter { $0.hasSuffix(".json") }.isEmpty)

        // The store is back: the next run writes every waiting checkpoint, byte for byte as signed.
        try reachable.write(toFile: site.configPath, atomically: true, encoding: .utf8)
        let next = try UploaderProcess.run(["upload"], config: site.configPath)
        #expect(next.status == 0, "\(next.stderr)")
        #expect(try ledger.pendingCheckpoints().isEmpty)
        for checkpoint in pending {
            let key = SignedCheckpoint.objectKey(prefix: site.area.prefix, dock: try site.configuration().hostName, eventID: checkpoint.eventID)
            let stored = try #require(try client.getSmall(key: key), "checkpoint \(checkpoint.eventID) is not in the store")
            #expect(String(decoding: stored, as: UTF8.self) == checkpoint.body)
        }
    }
}
