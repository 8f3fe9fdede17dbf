import Foundation
import Platform
import Testing
import TestSupport
import Transport
import UploaderCore
@testable import Ledger

/// A file claimed for upload by a process on another docking PC (sharing the
/// ledger): this PC cannot ask whether that process still runs, so the claim
/// holds for its whole lease. While it is fresh the file is left alone; once
/// it has run out, an upload here takes the file over, and says so in the
/// custody log.
@Suite(.tags(.store, .subprocess)) struct ForeignClaimTests {
    /// An uploader on another host: alive as far as this PC can tell.
    static let elsewhere = ClaimOwner(host: "dock-elsewhere", boot: "boot-elsewhere", pid: 4242, startTime: 77, nonce: "upload-1")

    @Test func anotherHostsClaimIsLeftAloneWhileFreshAndTakenOverOnceItHasRunOut() throws {
        let site = try TestSite.make("foreign-claim") { $0.store() }
        let folder = site.folder, store = site.store, area = site.area
        let camera = site.camera
        var hashes: [String: String] = [:]
        for index in 1...2 {
            let name = String(format: "DCIM/VID%04d.MP4", index)
            hashes[name] = try CameraVolume.writeRecording(at: camera + "/" + name, recordedAt: Date(timeIntervalSince1970: 1_795_000_000 + Double(index) * 60),
                                                           payloadSize: 200_000, seed: UInt64(index)).hex
        }
        func cli(_ arguments: [String]) throws -> UploaderProcess.Result {
            let result = try UploaderProcess.run(arguments, config: site.configPath)
            #expect(result.status == 0 && result.killedBySignal == nil, "\(arguments): \(result.stdout)\(result.stderr)")
            return result
        }
        _ = try cli(["device", "add", "BWC-F", "--user", "officer-f"])
        _ = try cli(["ingest", camera, "--serial", "BWC-F"])
        let ledger = try Ledger(path: site.ledgerPath)
        let files = try ledger.files()
        #expect(files.count == 2 && files.allSatisfy { $0.state == .spooled })
        let (watched, contested) = (try #require(files.first), try #require(files.last))

        // The other host claims both now: its lease runs an hour from here.
        let claimedAt = Date()
        for file in files { _ = try #require(try ledger.claimForUpload(file.id, owner: Self.elsewhere, now: claimedAt)) }
        let lease = try #require(try ledger.file(contested.id)?.claimUntil)
        #expect(lease > claimedAt.addingTimeInterval(Ledger.claimLease - 60))

        // The lease's boundary, asked with `now:`: a minute before it ends the file is
        // still the other host's; a minute after, it is this PC's to take.
        let here = ProcessIdentity.newOwner("test")
        #expect(try ledger.claimForUpload(watched.id, owner: here, now: lease.addingTimeInterval(-60)) == nil,
                "a fresh claim of another host was taken over")
        #expect(try ledger.file(watched.id)?.claimOwner == Self.elsewhere.token)
        let heir = try #require(try ledger.claimForUpload(watched.id, owner: here, now: lease.addingTimeInterval(60)),
                                "a claim whose lease ran out was not taken over")
        #expect(heir.claimOwner == here.token)
        try ledger.releaseClaim(watched.id, owner: here)

        // A real upload run while the other host's claim on the second file is fresh: it uploads
        // the first file and leaves the second as it is, claimed, with nothing sent for it.
        let first = try UploaderProcess.json(try cli(["upload", "--now", "--json"]))
        #expect(first["verified"] as? Int == 1, "\(first)")
        let untouched = try #require(try ledger.file(contested.id))
        #expect(untouched.state == .spooled && untouched.claimOwner == Self.elsewhere.token && untouched.objectKey == nil,
                "\(untouched.state) \(untouched.claimOwner ?? "unclaimed")")
        #expect(try area.evidenceKeys(store.client(bucket: area.bucket)).count == 1)
        #expect(try takeOvers(ledger, of: contested.id).isEmpty)

        // The other host took the file long ago and never wrote again: its lease has run out.
        _ = try #require(try ledger.claimForUpload(contested.id, owner: Self.elsewhere, now: Date().addingTimeInterval(-Ledger.claimLease - 60)))
        let expired = try #require(try ledger.file(contested.id)?.claimUntil)
        #expect(expired < Date())
        let second = try UploaderProcess.json(try cli(["upload", "--now", "--json"]))
        #expect(second["verified"] as? Int == 1, "\(second)")
        let taken = try #require(try ledger.file(contested.id))
        #expect(taken.state == .verified && taken.claimOwner == nil, "\(taken.state) \(taken.lastError ?? "")")
        // The custody log names whose claim was taken over, and why: the other host may well
        // still run, only its lease ran out (it is not "gone"). The trace an auditor follows.
        let trace = try takeOvers(ledger, of: contested.id)
        #expect(trace.count == 1 && trace.first?.message.hasPrefix("taken over from process 4242 on dock-elsewhere, whose claim ran out at \(Timestamps.iso(expired))") == true,
                "\(trace.map(\.message))")
        let stored = try store.client(bucket: area.bucket).hashObject(key: try #require(taken.objectKey))
        #expect(stored.sha256.hex == hashes[taken.sourcePath])
        #expect(try ledger.verifyChain().intact)
    }

    func takeOvers(_ ledger: Ledger, of id: Int64) throws -> [LedgerEvent] {
        try ledger.events(EventFilter(fileID: id, minimumLevel: .debug)).filter { $0.kind == .uploadTakenOver }
    }
}
