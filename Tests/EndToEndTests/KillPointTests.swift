import Foundation
import Testing
import TestSupport
import Transport
import UploaderCore
@testable import Ledger

/// SIGKILL at random crash points during ingest and upload, again and again,
/// shift after shift. Whatever the order, every file must end verified in
/// the store with its camera SHA-256, once, and the camera must be untouched.
@Suite(.serialized, .tags(.store, .subprocess, .slow)) struct KillPointTests {
    static let ingestPoints = ["ingest.chunk-written", "ingest.copy-synced", "ingest.renamed"]
    static let uploadPoints = ["upload.part-recorded", "upload.stored", "upload.verified"]

    @Test(arguments: [UInt64(2026)])
    func fiftyRandomKillsLoseNothingAndDuplicateNothing(seed: UInt64) throws {
        let site = try TestSite.make("kills") { $0.store() }
        let camera = site.camera
        var generator = SplitMix64(seed: seed)
        let ledger = try Ledger(path: site.ledgerPath)
        try ledger.addDevice(serial: "BWC-K", defaultUser: "officer-k", name: nil, model: nil)

        var recorded = 0
        var cameraHashes: [String: String] = [:]
        /// Each recording's fingerprint, taken as the test wrote it, before any run (killed or not) saw it.
        var cameraWritten: [String: String] = [:]
        /// The next shift's recordings: a few small files and a multipart one.
        func addShift() throws {
            for index in 0..<4 {
                recorded += 1
                let name = String(format: "DCIM/VID%04d.MP4", recorded)
                let size: Int64 = index == 0 ? 11 << 20 : 40_000 + Int64(generator.next() % 200_000)
                cameraHashes[name] = try CameraVolume.writeRecording(at: camera + "/" + name, recordedAt: Date(timeIntervalSince1970: 1_795_000_000 + Double(recorded) * 600),
                                                                     payloadSize: size, seed: generator.next()).hex
                cameraWritten[name] = try CameraVolume.fingerprint(of: name, in: camera)
            }
        }
        func allVerified() throws -> Bool {
            let files = try ledger.files()
            return files.count == cameraHashes.count && files.allSatisfy { $0.state == .verified }
        }

        try addShift()
        var kills: [String] = []
        var runs = 0
        while kills.count < 50 && runs < 400 {
            runs += 1
            if try allVerified() { try addShift() }
            let unspooled = try ledger.files().count < cameraHashes.count || ledger.files().contains { $0.spoolName == nil }
            let ingest = unspooled || generator.next() % 4 == 0
            let points = ingest ? Self.ingestPoints : Self.uploadPoints
            let point = points[Int(generator.next() % UInt64(points.count))]
            let count = 1 + Int(generator.next() % 3)
            let arguments = ingest ? ["ingest", camera, "--serial", "BWC-K"] : ["upload", "--now"]
            let result = try UploaderProcess.run(arguments, config: site.configPath, environment: ["UPLOADER_FAILPOINTS": "\(point)=kill@\(count)"])
            if result.killedBySignal == SIGKILL {
                kills.append("\(point)@\(count)")
            } else {
                #expect(result.status == 0, "uploader \(arguments.joined(separator: " ")): \(result.stderr)")
            }
        }
        // Then undisturbed runs finish whatever the kills left.
        #expect(try UploaderProcess.run(["ingest", camera, "--serial", "BWC-K"], config: site.configPath).status == 0)
        let finish = try UploaderProcess.run(["upload", "--now"], config: site.configPath)
        #expect(finish.status == 0, "\(finish.stderr)")
        print("\(kills.count) kills in \(runs) runs over \(recorded) recordings: \(Dictionary(grouping: kills) { $0.split(separator: "@")[0] }.mapValues(\.count))")
        #expect(kills.count >= 50)

        let files = try ledger.files()
        #expect(files.count == cameraHashes.count)
        #expect(files.allSatisfy { $0.state == .verified })
        #expect(Dictionary(uniqueKeysWithValues: files.map { ($0.sourcePath, $0.sha256 ?? "") }) == cameraHashes)
        let client = site.client
        let keys = try site.area.evidenceKeys(client)
        #expect(keys.count == files.count)
        for file in files {
            #expect(try client.hashObject(key: file.objectKey!).sha256.hex == cameraHashes[file.sourcePath])
        }
        #expect(CameraVolume.files(under: site.spool + "/tmp").isEmpty)
        #expect(try CameraVolume.fingerprint(camera) == cameraWritten.keys.sorted().map { cameraWritten[$0]! })
        #expect(try ledger.verifyChain().intact)
    }
}
