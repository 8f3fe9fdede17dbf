import Foundation
import Testing
import TestSupport
import UploaderCore
@testable import Ledger

/// A checkpoint signed while the store cannot be reached waits in the
/// ledger, and the next run that reaches the store writes it, unchanged.
@Suite(.tags(.store, .subprocess)) struct PendingCheckpointTests {
    @Test func aCheckpointLeftPendingWhileTheStoreIsDownIsWrittenByTheNextRun() throws {
        let store = try TestStore.fromEnvironment()
        let area = try store.makeArea("pending-checkpoint")
        let folder = TemporaryDirectory("uploader-pending")
        let site = try TestSite.withStore(store, area: area, root: folder.sub("site"))
        let reachable = try String(contentsOfFile: site.configPath, encoding: .utf8)
        // The store is down: nothing listens on this port.
        let down = "http://127.0.0.1:\(try Loopback.freePort())"
        try reachable.replacingOccurrences(of: "endpoint = \"\(store.endpoint)\"", with: "endpoint = \"\(down)\"")
            .write(toFile: site.configPath, atomically: true, encoding: .utf8)
        for arguments in [["simulate-camera", folder.sub("cam"), "--files", "1", "--size", "64KiB"],
                          ["device", "add", "BWC-8001", "--user", "officer-81"],
                          ["ingest", folder.sub("cam"), "--serial", "BWC-8001"]] {
            let result = try UploaderProcess.run(arguments, config: site.configPath)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
        }
        let failed = try UploaderProcess.run(["upload"], config: site.configPath)
        #expect(failed.killedBySignal == nil, "\(failed.stderr)")
        let ledger = try Ledger(path: site.ledgerPath)
        let pending = try ledger.pendingCheckpoints()
        #expect(!pending.isEmpty, "the ingest signed a checkpoint")
        let client = store.client(bucket: area.bucket)
        let folderKey = SignedCheckpoint.folder(prefix: area.prefix, dock: try site.configuration().hostName) + "/"
        #expect(try client.listObjectKeys(prefix: folderKey).filter { $0.hasSuffix(".json") }.isEmpty)

        // The store is back: the next run writes every waiting checkpoint, byte for byte as signed.
        try reachable.write(toFile: site.configPath, atomically: true, encoding: .utf8)
        let next = try UploaderProcess.run(["upload"], config: site.configPath)
        #expect(next.status == 0, "\(next.stderr)")
        #expect(try ledger.pendingCheckpoints().isEmpty)
        for checkpoint in pending {
            let key = SignedCheckpoint.objectKey(prefix: area.prefix, dock: try site.configuration().hostName, eventID: checkpoint.eventID)
            let stored = try #require(try client.getSmall(key: key), "checkpoint \(checkpoint.eventID) is not in the store")
            #expect(String(decoding: stored, as: UTF8.self) == checkpoint.body)
        }
    }
}
