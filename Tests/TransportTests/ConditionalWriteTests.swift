import Foundation
import Logging
import Testing
import TestSupport
@testable import Agent
@testable import Transport

/// Every request that creates an object says `If-None-Match: *`, so no
/// upload ever replaces an object already in the store: the single PUT and
/// the CompleteMultipartUpload that makes a multipart object exist.
@Suite(.tags(.store)) struct ConditionalWriteTests {
    @Test func everyRequestThatCreatesAnObjectAsksIfNoneMatch() throws {
        let fixture = try TestSite.make("ifnonematch") { $0.store() }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        try CameraVolume.writeRecording(at: fixture.camera + "/SMALL.MP4", recordedAt: Date(timeIntervalSince1970: 1_795_000_000), payloadSize: 100_000, seed: 1)
        try CameraVolume.writeRecording(at: fixture.camera + "/BIG.MP4", recordedAt: Date(timeIntervalSince1970: 1_795_000_600), payloadSize: 11 << 20, seed: 2)
        try fixture.ingest()
        let proxy = try FaultProxy(upstream: fixture.store.endpoint)
        let report = try UploadRunner(configuration: fixture.configuration(through: proxy), credentials: fixture.store.credentials,
                                      ledger: try fixture.ledger, logger: Logger(label: "test")).run()
        #expect(report.verified == 2)
        let evidence = proxy.requests.filter { $0.requestLine.contains("/" + fixture.area.prefix + "/") && !$0.requestLine.contains("/_custody/") }
        let singlePuts = evidence.filter { $0.method == "PUT" && !$0.isUploadPart }
        let completes = evidence.filter { $0.method == "POST" && $0.requestLine.contains("uploadId=") }
        #expect(singlePuts.contains { $0.requestLine.contains("/SMALL.MP4 ") } && completes.count == 1, "\(evidence.map(\.requestLine))")
        for request in singlePuts + completes {
            #expect(request.header("If-None-Match") == "*", "\(request.requestLine) has no If-None-Match: *")
        }
    }
}
