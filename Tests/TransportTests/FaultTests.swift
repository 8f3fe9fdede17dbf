import Foundation
import Logging
import Testing
import TestSupport
import UploaderCore
@testable import Ingest
@testable import Agent
@testable import Ledger
@testable import Transport

/// Uploads through a proxy that resets, stalls, answers 503 SlowDown and cuts
/// answers short. Whatever happens, every file must end `verified` with the
/// camera's SHA-256 in the store, exactly once, with the camera untouched.
@Suite(.serialized, .tags(.store, .slow)) struct FaultTests {
    @Test(arguments: [UInt64(11), 12, 13])
    func everyFileArrivesOnceAndIntactThroughAFaultyNetwork(seed: UInt64) throws {
        let fixture = try TestSite.make("faults\(seed)") { $0.store() }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        var hashes: [String: SHA256DigestHex] = [:]
        for index in 0..<6 {
            let name = String(format: "VID%04d.MP4", index)
            let size: Int64 = index < 2 ? 11 << 20 : 300_000
            hashes[name] = SHA256DigestHex(try CameraVolume.writeRecording(at: fixture.camera + "/DCIM/" + name, recordedAt: Date(timeIntervalSince1970: 1_795_000_000 + Double(index)), payloadSize: size, seed: seed &+ UInt64(index)).hex)
        }
        let cameraBefore = try CameraVolume.fingerprint(fixture.camera)
        try fixture.ingest()

        let proxy = try FaultProxy(upstream: fixture.store.endpoint, seed: seed, faultRate: 0.35, stallSeconds: 4)
        defer { proxy.stop() }
        var configuration = try fixture.configuration(through: proxy)
        configuration.upload.stallTimeout = 2
        configuration.upload.maxAttempts = 6
        configuration.upload.retryBaseDelay = 0.05
        configuration.upload.retryMaxDelay = 0.2
        let runner = UploadRunner(configuration: configuration, credentials: fixture.store.credentials, ledger: try fixture.ledger, logger: Logger(label: "faults"))
        var runs = 0
        var retries = 0
        // Failed files wait for their retry time: each run looks a little later.
        while try fixture.ledger.files().contains(where: { $0.state != .verified }), runs < 12 {
            runs += 1
            retries += try runner.run(now: Date().addingTimeInterval(Double(runs) * 3600)).retries
        }
        let counts = proxy.counts
        print("seed \(seed): \(runs) runs, \(retries) retries, faults \(counts.filter { $0.key != .pass }.map { "\($0.key.rawValue)=\($0.value)" }.sorted().joined(separator: " ")), passed \(counts[.pass] ?? 0)")
        let injected: Int = counts.filter { $0.key != .pass }.values.reduce(0, +)
        #expect(injected >= 4)

        let files = try fixture.ledger.files()
        #expect(files.count == 6)
        #expect(files.allSatisfy { $0.state == .verified })
        // Checked straight against the store, not through the proxy.
        let keys = try fixture.storedKeys()
        #expect(keys.count == 6)
        #expect(Set(keys) == Set(files.compactMap(\.objectKey)))
        for file in files {
            #expect(SHA256DigestHex(try fixture.client.hashObject(key: file.objectKey!).sha256.hex) == hashes[file.name])
        }
        #expect(try fixture.client.listMultipartUploads(prefix: fixture.area.prefix + "/").isEmpty)
        #expect(try CameraVolume.fingerprint(fixture.camera) == cameraBefore)
        #expect(try fixture.ledger.verifyChain().intact)
    }

    @Test func aRefusalIsNotRetriedOnItsOwnButAlertsAndWaitsForAnAdmin() throws {
        let fixture = try TestSite.make("refused") { $0.store() }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        try CameraVolume.writeRecording(at: fixture.camera + "/A.MP4", recordedAt: Date(), payloadSize: 1000)
        try fixture.ingest()
        let proxy = try FaultProxy(upstream: fixture.store.endpoint, seed: 1, faultRate: 1, faults: [.reject])
        defer { proxy.stop() }
        let configuration = try fixture.configuration(through: proxy)
        let runner = UploadRunner(configuration: configuration, credentials: fixture.store.credentials, ledger: try fixture.ledger, logger: Logger(label: "t"))
        let first = try runner.run()
        #expect(first.failed == 1 && first.retries == 0)
        let row = try #require(try fixture.ledger.files().first)
        #expect(row.state == .failed && row.nextAttemptAt == nil)
        #expect(row.lastError?.contains("InvalidRequest") == true && row.lastError?.contains("uploader retry #\(row.id)") == true)
        // The store would take it now, but nothing retries a refusal on its own…
        proxy.setFaultRate(0)
        #expect(try runner.run(now: Date().addingTimeInterval(86400)).verified == 0)
        #expect(try AlertDispatcher(configuration: configuration, ledger: fixture.ledger, logger: Logger(label: "t")).run(send: false)
                    .contains { $0.key == "file-\(row.id)-failed" })
        // …until an admin says so.
        try fixture.ledger.retryNow([row.id])
        #expect(try runner.run().verified == 1)
    }

    @Test func slowDownWithRetryAfterIsHonoured() throws {
        let fixture = try TestSite.make("slowdown") { $0.store() }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        try CameraVolume.writeRecording(at: fixture.camera + "/A.MP4", recordedAt: Date(), payloadSize: 1000)
        try fixture.ingest()
        // Every request answered "503 SlowDown, Retry-After: 1" for the first run.
        let proxy = try FaultProxy(upstream: fixture.store.endpoint, seed: 1, faultRate: 1, faults: [.slowDown])
        defer { proxy.stop() }
        var configuration = try fixture.configuration(through: proxy)
        configuration.upload.maxAttempts = 2
        configuration.upload.retryBaseDelay = 0.01
        let runner = UploadRunner(configuration: configuration, credentials: fixture.store.credentials, ledger: try fixture.ledger, logger: Logger(label: "t"))
        let first = try runner.run()
        #expect(first.failed == 1 && first.retries == 1)
        let retry = try #require(try fixture.ledger.events(EventFilter(minimumLevel: .warning)).first { $0.kind == .uploadRetry })
        // The wait is the server's Retry-After (1 s), not the 0.01 s backoff.
        #expect(retry.message.contains("SlowDown (HTTP 503)"))
        #expect(retry.message.contains("retrying in 1.0 s"))
        let row = try #require(try fixture.ledger.files().first)
        #expect(row.nextAttemptAt.map { $0.timeIntervalSince(row.updatedAt) >= 0.9 } == true)
        proxy.setFaultRate(0)
        #expect(try runner.run(now: Date().addingTimeInterval(60)).verified == 1)
    }
}

/// A hex digest as a plain value (keeps the test's dictionary simple).
struct SHA256DigestHex: Equatable {
    var hex: String
    init(_ hex: String) { self.hex = hex }
}
