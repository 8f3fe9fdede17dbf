import Foundation
import Ledger
import Synchronization
import Testing
import TestSupport
import UploaderCore

/// Spool encryption as an admin lives with it: on by default, keys rotated
/// while copies wait, old keys retired once their copies are purged, copies
/// from before encryption still sent, all with real processes and a real store.
@Suite(.tags(.store, .subprocess)) struct SpoolEncryptionTests {
    /// A site against its own store area: sealing on unless `extra` says otherwise.
    static func site(extra: String = "") throws -> TestSite {
        try TestSite.make("sealing") { $0.store(); $0.extra = extra }
    }

    struct KeyUse: Decodable { var id: String; var current: Bool; var spoolCopies: Int }
    static func keys(_ site: TestSite) throws -> [KeyUse] {
        try JSONDecoder().decode([KeyUse].self, from: Data(try site.run(["key", "list", "--json"]).stdout.utf8))
    }

    @Test func keysRotateWhileCopiesWaitAndOldKeysGoWithTheirLastCopy() throws {
        let site = try Self.site(extra: "[spool]\nkeep_verified_days = 0")
        try site.dockSimulatedCamera(serial: "BWC-1", files: 2, seed: 1, volume: site.folder.sub("cam-BWC-1"))
        let first = try Self.keys(site)
        #expect(first.count == 1 && first[0].current && first[0].spoolCopies == 2)
        let mode = try FileManager.default.attributesOfItem(atPath: site.spoolKeyring)[.posixPermissions] as! Int
        #expect(mode == 0o600)

        #expect(try site.run(["key", "rotate"]).stdout.contains("now seals new spool copies; 1 older key(s) kept"))
        try site.dockSimulatedCamera(serial: "BWC-2", files: 2, seed: 2, volume: site.folder.sub("cam-BWC-2"))
        let rotated = try Self.keys(site)
        #expect(rotated.map(\.spoolCopies) == [2, 2] && rotated.map(\.current) == [false, true] && rotated[0].id == first[0].id)

        // Copies sealed with either key decrypt as they stream; the store checks the camera's SHA-256.
        try site.run(["upload"])
        let ledger = try Ledger(path: site.ledgerPath)
        #expect(try ledger.files().allSatisfy { $0.state == .verified })
        for file in try ledger.files() {
            #expect(try site.store.client(bucket: site.area.bucket).hashObject(key: file.objectKey!).sha256.hex == file.sha256)
        }
        #expect(try site.run(["verify", "--all"]).stdout.contains("4 files: 4 ok"))

        // The purge removes the last copies the first key sealed, and with them the key.
        try site.run(["purge"])
        let after = try Self.keys(site)
        #expect(after.map(\.id) == [rotated[1].id])
        let log = try site.run(["log", "--json"]).stdout
        #expect(log.contains("\"kind\":\"spool.key-added\"") && log.contains("spool key \(first[0].id) retired"))
    }

    @Test func copiesWrittenInTheClearStillUploadBesideSealedOnes() throws {
        var site = try Self.site(extra: "[spool]\nencryption = false")
        try site.dockSimulatedCamera(serial: "BWC-1", files: 2, seed: 3, volume: site.folder.sub("cam-BWC-1"))
        #expect(!FileManager.default.fileExists(atPath: site.spoolKeyring))
        site = try site.reconfigured { _ in }
        try site.dockSimulatedCamera(serial: "BWC-2", files: 1, seed: 4, volume: site.folder.sub("cam-BWC-2"))
        let list = try site.run(["key", "list"]).stdout
        #expect(list.contains("1 spool copy") && list.contains("2 spool copies are in the clear"), "\(list)")
        try site.run(["upload"])
        #expect(try Ledger(path: site.ledgerPath).files().allSatisfy { $0.state == .verified })
        #expect(try site.run(["verify", "--all", "--offline"]).stdout.contains("3 files: 3 ok"))
    }

    @Test func rotationsByProcessesAtOnceKeepEveryKey() throws {
        let site = try Self.site()
        let results = Mutex<[UploaderProcess.Result]>([])
        DispatchQueue.concurrentPerform(iterations: 3) { _ in
            if let result = try? UploaderProcess.run(["key", "rotate", "--verbose"], config: site.configPath) {
                results.withLock { $0.append(result) }
            }
        }
        #expect(results.withLock { $0.count == 3 && $0.allSatisfy { $0.status == 0 } },
                "\(results.withLock { $0.map { "\($0.status): \($0.stdout)\($0.stderr)" } })")
        // One first key (made by whichever process came first) and one per rotation.
        let keys = try Self.keys(site)
        #expect(keys.count == 4 && Set(keys.map(\.id)).count == 4 && keys.last?.current == true)
    }

    /// A lost keyring is never silently replaced while copies it sealed wait:
    /// the dock refuses with advice, those copies are held (not sent, not lost
    /// quietly), and the admin's `key rotate` is what starts a new keyring.
    @Test func aLostKeyringStopsTheDockAndHoldsTheCopiesItSealed() throws {
        let site = try Self.site()
        try site.dockSimulatedCamera(serial: "BWC-1", files: 1, seed: 7, volume: site.folder.sub("cam-BWC-1"))
        try FileManager.default.moveItem(atPath: site.spoolKeyring, toPath: site.folder.sub("keyring-backup"))
        let camera = site.folder.sub("cam-BWC-1-later")
        try site.run(["simulate-camera", camera, "--files", "1", "--size", "1MiB", "--seed", "8", "--start", "2026-11-24T08:00:00Z"])
        let refused = try site.run(["ingest", camera, "--serial", "BWC-1"], expecting: 1)
        #expect(refused.stderr.contains("the spool keyring \(site.spoolKeyring) is missing, but 1 spool copies are sealed with its keys: restore it from backup"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: site.spoolKeyring))
        // The copy whose key is gone is held, never sent.
        try site.run(["upload"], expecting: 1)
        let held = try #require(try Ledger(path: site.ledgerPath).file(1))
        #expect(held.state == .quarantined && held.holdReason == .spoolCorrupted, "\(held.state)")
        #expect(try site.area.evidenceKeys(site.store.client(bucket: site.area.bucket)).isEmpty)
        // The admin decides: a new keyring, and docks go on.
        try site.run(["key", "rotate"])
        try site.run(["ingest", camera, "--serial", "BWC-1"])
    }

    @Test func aKeyringOthersCanReadStopsTheDockWithAdvice() throws {
        let site = try Self.site()
        try site.dockSimulatedCamera(serial: "BWC-1", files: 1, seed: 5, volume: site.folder.sub("cam-BWC-1"))
        chmod(site.spoolKeyring, 0o644)
        let camera = site.folder.sub("cam-BWC-1-later")
        try site.run(["simulate-camera", camera, "--files", "2", "--size", "1MiB", "--seed", "6"])
        let result = try site.run(["ingest", camera, "--serial", "BWC-1"], expecting: 1)
        #expect(result.stderr.contains("the spool keyring \(site.spoolKeyring) is readable by other users: run `chmod 600 \(site.spoolKeyring)`"), "\(result.stderr)")
    }
}
