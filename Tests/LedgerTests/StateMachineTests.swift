import Crypto
import Foundation
import GRDB
import LedgerSimulation
import Testing
import TestSupport
import Platform
import UploaderCore
@testable import Ledger

@Suite struct StateMachineTests {
    @Test func theTransitionTableAllowsNoWayOutOfVerified() {
        for state in FileState.allCases {
            #expect(!FileState.verified.canChange(to: state))
        }
        #expect(FileState.uploaded.canChange(to: .verified))
        #expect(!FileState.spooled.canChange(to: .verified))
        #expect(!FileState.copying.canChange(to: .uploading))
    }

    @Test func theSchemaEnforcesTheDomainsTransitionTable() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        let stored = try ledger.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT from_state, to_state FROM state_transition").map { "\($0["from_state"] as String)→\($0["to_state"] as String)" }
        }
        let domain = FileState.allCases.flatMap { target in
            target.allowedSources.filter { $0 != target }.map { "\($0.rawValue)→\(target.rawValue)" }
        }
        #expect(Set(stored) == Set(domain), "the transition table changed: add a migration that rewrites state_transition")
        try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let file = try spooledFile(ledger, serial: "BWC-1")
        // Raw SQL that skips the ledger's checks is refused by the schema itself.
        #expect(throws: (any Error).self) {
            try ledger.pool.write { try $0.execute(sql: "UPDATE media_file SET state = 'verified' WHERE id = ?", arguments: [file.id]) }
        }
        #expect(try ledger.file(file.id)?.state == .spooled)
    }

    @Test func aChangeFromAStateTheWriterDidNotExpectIsRefused() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let file = try spooledFile(ledger, serial: "BWC-1")
        // A late copy failure from a second process must not overwrite `spooled`.
        let error = #expect(throws: UploaderError.self) { try ledger.markCopyFailed(file.id, error: "late") }
        #expect(error?.code == .transitionRefused)
        #expect(error?.underlying == .transition(from: .spooled, to: .failed))
        #expect(try ledger.file(file.id)?.state == .spooled)
        // The state machine does not copy a secured file again.
        #expect(try ledger.markCopying(file.id) == nil)
    }

    @Test func oneUploaderHoldsAFileAndAVerifiedFileIsNeverClaimed() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let file = try spooledFile(ledger, serial: "BWC-1")
        let first = ProcessIdentity.newOwner("a"), second = ProcessIdentity.newOwner("b")
        #expect(try ledger.claimForUpload(file.id, owner: first) != nil)
        // The same (live) process's other run is refused: one holder at a time.
        #expect(try ledger.claimForUpload(file.id, owner: second) == nil)
        _ = try ledger.beginUpload(file.id, objectKey: "k", owner: first)
        let refused = #expect(throws: UploaderError.self) { try ledger.markUploaded(file.id, owner: second) }
        #expect(refused?.code == .transitionRefused)
        try ledger.markUploaded(file.id, owner: first)
        try ledger.markVerified(file.id, storeChecksum: "x", owner: first)
        #expect(try ledger.claimForUpload(file.id, owner: second) == nil)
        #expect(try ledger.claimForUpload(file.id, owner: second, force: true) == nil)
    }

    @Test func aDeadHoldersClaimIsTakenOverAtOnce() throws {
        let folder = TemporaryDirectory()
        let dead = ClaimOwner(host: "h", boot: "b", pid: 1, startTime: 1, nonce: "gone")
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"), isAlive: { $0 != dead })
        try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let file = try spooledFile(ledger, serial: "BWC-1")
        #expect(try ledger.claimForUpload(file.id, owner: dead) != nil)
        let heir = ProcessIdentity.newOwner("heir")
        #expect(try ledger.claimForUpload(file.id, owner: heir)?.claimOwner == heir.token)
        #expect(try ledger.events(EventFilter(minimumLevel: .warning)).contains { $0.kind == .uploadTakenOver })
    }

    @Test func cancellingTakesTheFileFromItsUploader() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let file = try spooledFile(ledger, serial: "BWC-1")
        let owner = ProcessIdentity.newOwner("upload")
        _ = try ledger.claimForUpload(file.id, owner: owner)
        _ = try ledger.beginUpload(file.id, objectKey: "k", owner: owner)
        try ledger.recordUploadID(file.id, uploadID: "u-1", owner: owner)
        let before = try ledger.markCancelled(file.id, reason: "admin")
        #expect(before.uploadID == "u-1")
        let late = #expect(throws: UploaderError.self) { try ledger.recordPart(file.id, number: 1, etag: "e", owner: owner) }
        #expect(late?.code == .transitionRefused)
        #expect(try ledger.file(file.id)?.state == .cancelled)
        #expect(try ledger.retryNow([file.id]) == [file.id])
        #expect(try ledger.file(file.id)?.state == .spooled)
    }

    @Test func twoFilesWhoseTemplateValuesAreEqualGetDistinctKeys() throws {
        let folder = TemporaryDirectory()
        let ledger = try Ledger(path: folder.sub("ledger.sqlite"))
        try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let a = try spooledFile(ledger, serial: "BWC-1", path: "DCIM/100BWC/FILE0001.MP4")
        let b = try spooledFile(ledger, serial: "BWC-1", path: "DCIM/101BWC/FILE0001.MP4")
        let owner = ProcessIdentity.newOwner("upload")
        _ = try ledger.claimForUpload(a.id, owner: owner)
        _ = try ledger.claimForUpload(b.id, owner: owner)
        let first = try ledger.beginUpload(a.id, objectKey: "p/officer-1/FILE0001.MP4", owner: owner)
        let second = try ledger.beginUpload(b.id, objectKey: "p/officer-1/FILE0001.MP4", owner: owner)
        #expect(first.objectKey == "p/officer-1/FILE0001.MP4")
        #expect(second.objectKey == "p/officer-1/FILE0001~\(b.id).MP4")
    }
}
