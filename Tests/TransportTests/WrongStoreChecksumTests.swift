import Crypto
import Foundation
import Logging
import Synchronization
import Testing
import TestSupport
import UploaderCore
@testable import Agent
@testable import Ledger
@testable import Transport

/// The store's word on what it holds is checked, never taken: a store that
/// reports a checksum that is not the camera's (or, where the agent reads
/// the object back, bytes that are not the camera's) keeps the file out of
/// `verified`, with a ledger entry that says why, until an honest answer.
@Suite(.tags(.store)) struct WrongStoreChecksumTests {
    @Test func aWrongChecksumFromTheStoreKeepsTheFileFromVerifiedUntilAnHonestRun() throws {
        let fixture = try TestSite.make("wrongchecksum") { $0.store() }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        // One single-part object (plain SHA-256) and one multipart (composite checksum).
        let small = try CameraVolume.writeRecording(at: fixture.camera + "/DCIM/VID0001.MP4", recordedAt: Date(timeIntervalSince1970: 1_795_000_000), payloadSize: 300_000)
        let large = try CameraVolume.writeRecording(at: fixture.camera + "/DCIM/VID0002.MP4", recordedAt: Date(timeIntervalSince1970: 1_795_000_600),
                                                    payloadSize: 11 << 20, seed: 2)
        try fixture.ingest()

        // Between the agent and the store, a proxy that alters the store's answers about the
        // evidence objects: the checksum a HEAD reports, and the first byte a GET returns.
        let store = LyingStore()
        let prefix = fixture.area.prefix
        let proxy = try FaultProxy(upstream: fixture.store.endpoint, tamperResponse: { request, response in
            guard store.lying.load(ordering: .relaxed), Self.isEvidenceObject(request, prefix: prefix) else { return }
            if let change = Self.alter(request, &response) { store.altered.withLock { $0.append(change) } }
        })
        defer { proxy.stop() }
        let configuration = try fixture.configuration(through: proxy)
        let runner = UploadRunner(configuration: configuration, credentials: fixture.store.credentials, ledger: (try fixture.ledger), logger: Logger(label: "t"))

        let lied = try runner.run()
        #expect(lied.verified == 0 && lied.failed == 2, "\(lied)")
        #expect(store.altered.withLock { $0.count } >= 2, "the proxy altered no answer: \(store.altered.withLock { $0 })")
        for file in try fixture.ledger.files() {
            #expect(file.state == .failed && file.storeChecksum == nil && file.verifiedAt == nil, "\(file.name): \(file.state)")
            #expect(file.lastError?.contains("which is not the camera's file") == true, "\(file.name): \(file.lastError ?? "no error")")
            let events = try fixture.ledger.events(EventFilter(fileID: file.id, minimumLevel: .debug))
            #expect(!events.contains { $0.kind == .uploadVerified })
            let failure = events.last { $0.kind == .fileFailed }
            #expect(failure?.message.contains("the store holds \(file.objectKey ?? "?") with size \(file.sourceSize)") == true
                    && failure?.message.contains("which is not the camera's file (\(file.sourceSize) bytes, SHA-256 \(file.sha256 ?? "?"))") == true,
                    "\(file.name): \(failure?.message ?? "no file.failed event")")
        }
        // The store itself holds the camera's bytes: only its answers were wrong.
        for (file, hash) in zip(try fixture.ledger.files(), [small, large]) {
            #expect(try fixture.client.hashObject(key: try #require(file.objectKey)).sha256 == hash)
        }

        // A later run, with the store's answers honest again, verifies both.
        store.lying.store(false, ordering: .relaxed)
        let honest = try runner.run(now: Date().addingTimeInterval(3600))
        #expect(honest.verified == 2 && honest.failed == 0, "\(honest)")
        for file in try fixture.ledger.files() {
            #expect(file.state == .verified && file.storeChecksum != nil, "\(file.name): \(file.state) \(file.lastError ?? "")")
        }
        #expect(try fixture.ledger.verifyChain().intact)
    }

    /// A request about one of the test's evidence objects (not a listing, not a checkpoint).
    static func isEvidenceObject(_ request: FaultProxy.Request, prefix: String) -> Bool {
        let target = request.requestLine.split(separator: " ").dropFirst().first.map(String.init) ?? ""
        let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        return path.contains("/\(prefix)/") && !path.contains("/_custody/") && !path.contains(S3Client.checksumProbeFolder)
    }

    /// A HEAD's `x-amz-checksum-sha256` replaced by another file's (same form), or a
    /// GET body's first byte flipped; what was changed, or nil.
    static func alter(_ request: FaultProxy.Request, _ response: inout [UInt8]) -> String? {
        guard let end = (0..<max(0, response.count - 3)).first(where: { Array(response[$0..<$0 + 4]) == [13, 10, 13, 10] }) else { return nil }
        switch request.method {
        case "HEAD":
            var lines = String(decoding: response[..<end], as: UTF8.self).components(separatedBy: "\r\n")
            guard let index = lines.firstIndex(where: { $0.lowercased().hasPrefix("x-amz-checksum-sha256:") }) else { return nil }
            let value = lines[index].split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces)
            let suffix = value.firstIndex(of: "-").map { String(value[$0...]) } ?? ""
            lines[index] = "x-amz-checksum-sha256: " + SHA256Hasher.hash(Array("not the camera's file".utf8)).base64 + suffix
            response = Array(lines.joined(separator: "\r\n").utf8) + Array(response[end...])
            return "HEAD checksum \(value)"
        case "GET" where response.count > end + 4:
            response[end + 4] ^= 0xFF
            return "GET first byte"
        default:
            return nil
        }
    }
}

/// What the proxy's store says: lies (or not), and what it altered so far.
final class LyingStore: Sendable {
    let lying = Atomic<Bool>(true)
    let altered = Mutex<[String]>([])
}
