import Crypto
import Foundation
import Logging
import Spool
import Testing
import TestSupport
import UploaderCore
import Platform
@testable import Ingest
@testable import Agent
@testable import Ledger
@testable import Transport

@Suite(.serialized, .tags(.store, .subprocess)) struct UploadTests {
    @Test func objectsInTheStoreHaveTheHashTakenFromTheCamera() throws {
        let fixture = try TestSite.make("hash") { $0.store() }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let small = try CameraVolume.writeRecording(at: fixture.camera + "/DCIM/VID0001.MP4", recordedAt: Date(timeIntervalSince1970: 1_795_000_000), payloadSize: 300_000)
        let large = try CameraVolume.writeRecording(at: fixture.camera + "/DCIM/VID0002.MP4", recordedAt: Date(timeIntervalSince1970: 1_795_000_600), payloadSize: 12 << 20, seed: 2)
        let cameraBefore = try CameraVolume.fingerprint(fixture.camera)
        try fixture.ingest()

        let report = try fixture.upload()
        // Nothing is lost: the camera's files are exactly as they were (bytes, times, names).
        #expect(try CameraVolume.fingerprint(fixture.camera) == cameraBefore)
        #expect(report.verified == 2 && report.failed == 0)
        let files = try fixture.ledger.files()
        #expect(files.allSatisfy { $0.state == .verified })
        #expect(files.map(\.objectKey) == ["\(fixture.area.prefix)/officer-1/2026/11/18/BWC-1/VID0001.MP4", "\(fixture.area.prefix)/officer-1/2026/11/18/BWC-1/VID0002.MP4"])
        for (file, cameraHash) in zip(files, [small, large]) {
            // Read back from the store and hashed here: the bytes are the camera's.
            let stored = try fixture.client.hashObject(key: file.objectKey!)
            #expect(stored.sha256 == cameraHash)
            #expect(stored.size == file.sourceSize)
            let head = try #require(try fixture.client.headObject(key: file.objectKey!))
            #expect(head.metadata["sha256"] == cameraHash.hex)
            #expect(head.metadata["device-serial"] == "BWC-1")
            #expect(head.metadata["user"] == "officer-1")
            #expect(head.metadata["recorded-at"] != nil && head.metadata["ingested-at"] != nil && head.metadata["host"] != nil)
            if TestStore.currentKind == .moto {
                // moto takes any checksum it is sent: the agent proved each object by reading it back.
                #expect(file.storeChecksum == "sha256:" + cameraHash.hex)
            } else {
                #expect(file.storeChecksum == head.checksumSHA256)
            }
        }
        if TestStore.currentKind == .seaweedfs {
            // The single-part file's store checksum is the plain SHA-256; the multipart one is composite.
            #expect(files[0].storeChecksum == small.base64)
            #expect(files[1].storeChecksum?.hasSuffix("-3") == true)
        }
        #expect(try fixture.ledger.verifyChain().intact)
    }

    @Test func uploadingAgainCreatesNothingTwice() throws {
        let fixture = try TestSite.make("twice") { $0.store() }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        try CameraVolume.writeRecording(at: fixture.camera + "/A.MP4", recordedAt: Date(), payloadSize: 100_000)
        try CameraVolume.writeRecording(at: fixture.camera + "/B.MP4", recordedAt: Date(), payloadSize: 6 << 20, seed: 4)
        try fixture.ingest()
        #expect(try fixture.upload().verified == 2)
        // Re-dock and re-run: no new rows, no new objects, nothing sent.
        #expect(try fixture.ingest().copied == 0)
        let again = try fixture.upload()
        #expect(again.verified == 0 && again.bytesSent == 0)
        #expect(try fixture.storedKeys().count == 2)
        #expect(try fixture.ledger.files().count == 2)
    }

    @Test func aWrongSecretStopsWithOneLineThatSaysWhatToDo() throws {
        let fixture = try TestSite.make("badsecret") { $0.store() }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        try CameraVolume.writeRecording(at: fixture.camera + "/A.MP4", recordedAt: Date(), payloadSize: 1000)
        try fixture.ingest()
        try "access_key_id = \"\(fixture.store.accessKey)\"\nsecret_access_key = \"not-the-secret\"\n"
            .write(toFile: fixture.root + "/credentials", atomically: true, encoding: .utf8)
        chmod(fixture.root + "/credentials", 0o600)

        let result = try fixture.cli(["upload"])
        #expect(result.status == 7)
        let errorLines = result.stderr.split(separator: "\n").filter { $0.hasPrefix("error:") }
        #expect(errorLines.count == 1)
        #expect(errorLines.first?.contains("SignatureDoesNotMatch") == true)
        #expect(errorLines.first?.contains("check the access key and secret") == true)
        let row = try #require(try fixture.ledger.files().first)
        #expect(row.state == .spooled)
        #expect(row.lastError?.contains("refused our credentials") == true)
        #expect(try fixture.storedKeys().isEmpty)
        #expect(try fixture.ledger.events(EventFilter(minimumLevel: .error)).contains { $0.kind == .uploadRefused })
    }

    @Test func anUnreachableStoreIsRetriedThenTheFileWaitsForTheNextRun() throws {
        let fixture = try TestSite.make("unreachable") { $0.store() }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        try CameraVolume.writeRecording(at: fixture.camera + "/A.MP4", recordedAt: Date(), payloadSize: 1000)
        try fixture.ingest()
        // Nothing listens on a port we just bound and released.
        let closed = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: 0, sin_addr: in_addr(s_addr: inet_addr("127.0.0.1")), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(closed, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(closed, $0, &length) } }
        close(closed)
        var offline = try fixture.configuration()
        offline.store.endpoint = "http://127.0.0.1:\(UInt16(bigEndian: address.sin_port))"

        let report = try UploadRunner(configuration: offline, credentials: fixture.store.credentials, ledger: fixture.ledger, logger: Logger(label: "t")).run()
        #expect(report.failed == 1 && report.retries == 2)
        let row = try #require(try fixture.ledger.files().first)
        #expect(row.state == .failed)
        #expect(row.lastError?.contains("gave up after 3 attempts") == true)
        #expect(row.nextAttemptAt != nil)
        #expect(try fixture.ledger.events(EventFilter(minimumLevel: .warning)).filter { $0.kind == .uploadRetry }.count == 2)

        // The store is back; once the wait is over the same file goes up, under the same key.
        let online = try UploadRunner(configuration: fixture.configuration(), credentials: fixture.store.credentials, ledger: fixture.ledger, logger: Logger(label: "t"))
        #expect(try online.run(now: row.nextAttemptAt!.addingTimeInterval(-0.001)).verified == 0)
        #expect(try online.run(now: row.nextAttemptAt!.addingTimeInterval(1)).verified == 1)
        #expect(try fixture.ledger.file(row.id)?.objectKey == row.objectKey)
    }

    @Test func aCredentialsFileOthersCanReadIsRefused() throws {
        let fixture = try TestSite.make("perms") { $0.store() }
        chmod(fixture.root + "/credentials", 0o644)
        let result = try fixture.cli(["upload"])
        #expect(result.status == 1)
        #expect(result.stderr == "error: the credentials file \(fixture.root)/credentials is readable by other users: run `chmod 600 \(fixture.root)/credentials`\n")
    }

    /// Sealed, the flipped byte fails the chunk's authentication as it streams;
    /// in the clear, the agent's own SHA-256 of the bytes it sends stops the
    /// transfer before its last byte (the store's check is a second line, and
    /// moto has none). Either way: held, never stored.
    @Test(arguments: [true, false])
    func aCorruptedSpoolCopyNeverBecomesEvidence(sealed: Bool) throws {
        let fixture = try TestSite.make("corrupt") { $0.store(); $0.extra = "[spool]\nencryption = \(sealed)" }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let cameraHash = try CameraVolume.writeRecording(at: fixture.camera + "/A.MP4", recordedAt: Date(), payloadSize: 200_000)
        try CameraVolume.writeRecording(at: fixture.camera + "/B.MP4", recordedAt: Date(), payloadSize: 11 << 20, seed: 8)
        try fixture.ingest()
        // Flip one byte in each spool copy (a disk fault, or tampering).
        for file in try fixture.ledger.files() {
            #expect((file.spoolKeyID != nil) == sealed)
            let handle = try #require(FileHandle(forUpdatingAtPath: fixture.spool + "/objects/" + file.spoolName!))
            try handle.seek(toOffset: UInt64(file.sourceSize - 100))
            let byte = try #require(try handle.read(upToCount: 1)?.first)
            try handle.seek(toOffset: UInt64(file.sourceSize - 100))
            try handle.write(contentsOf: [byte ^ 0xFF])
            try handle.close()
        }
        let report = try fixture.upload()
        #expect(report.verified == 0 && report.failed == 2)
        let rows = try fixture.ledger.files()
        #expect(rows.allSatisfy { $0.state == .quarantined && $0.holdReason == .spoolCorrupted })
        #expect(try fixture.storedKeys().isEmpty)
        // Docking again re-copies from the camera, and then it uploads.
        #expect(try fixture.ingest().copied == 2)
        #expect(try fixture.upload().verified == 2)
        #expect(try fixture.client.hashObject(key: rows[0].objectKey!).sha256 == cameraHash)
    }

    @Test func anExistingObjectUnderTheSameKeyIsNeverOverwritten() throws {
        let fixture = try TestSite.make("collide") { $0.store() }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let cameraHash = try CameraVolume.writeRecording(at: fixture.camera + "/A.MP4", recordedAt: Date(timeIntervalSince1970: 1_795_000_000), payloadSize: 1000)
        try fixture.ingest()
        // Somebody else's object already sits at the key this file would get.
        let other = fixture.folder.sub("other.bin")
        let otherHash = try CameraVolume.writeRecording(at: other, recordedAt: nil, payloadSize: 500, seed: 77)
        let fd = open(other, O_RDONLY)
        defer { close(fd) }
        let key = "\(fixture.area.prefix)/officer-1/2026/11/18/BWC-1/A.MP4"
        _ = try fixture.client.putObject(key: key, file: PlainFileReader(.init(rawValue: fd)), size: Int64(try FileManager.default.attributesOfItem(atPath: other)[.size] as! Int),
                                         sha256: otherHash, metadata: [:])

        #expect(try fixture.upload().verified == 1)
        let row = try #require(try fixture.ledger.files().first)
        #expect(row.objectKey == "\(fixture.area.prefix)/officer-1/2026/11/18/BWC-1/A~\(cameraHash.hex.prefix(12)).MP4")
        #expect(try fixture.client.hashObject(key: key).sha256 == otherHash)
        #expect(try fixture.client.hashObject(key: row.objectKey!).sha256 == cameraHash)
    }

    @Test func aKilledMultipartUploadResumesAndSendsOnlyTheMissingParts() throws {
        let fixture = try TestSite.make("resume") { $0.store() }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let cameraHash = try CameraVolume.writeRecording(at: fixture.camera + "/BIG.MP4", recordedAt: Date(), payloadSize: 23 << 20, seed: 5)
        try fixture.ingest()
        let file = try #require(try fixture.ledger.files().first)
        let parts = try fixture.ledger.parts(of: file.id)
        #expect(parts.count == 5)

        // SIGKILL right after the second part is recorded.
        let killed = try fixture.cli(["upload"], environment: ["UPLOADER_FAILPOINTS": "upload.part-recorded=kill@2"])
        #expect(killed.killedBySignal == SIGKILL)
        let afterKill = try #require(try fixture.ledger.file(file.id))
        #expect(afterKill.state == .uploading)
        #expect(afterKill.uploadID != nil)
        #expect(try fixture.ledger.parts(of: file.id).filter { $0.etag != nil }.count == 2)

        // Only parts 3, 4 and 5 travel again: counted on the wire, not by the runner.
        let proxy = try FaultProxy(upstream: fixture.store.endpoint)
        let resumed = try UploadRunner(configuration: fixture.configuration(through: proxy), credentials: fixture.store.credentials,
                                       ledger: try fixture.ledger, logger: Logger(label: "test")).run()
        #expect(resumed.verified == 1)
        #expect(proxy.requests.filter(\.isUploadPart).map(\.bodyBytes) == parts[2...].map { Int($0.size) })
        #expect(proxy.requests.filter { $0.method == "PUT" || $0.method == "POST" }.reduce(0) { $0 + $1.bodyBytes } < Int(parts[2...].reduce(0) { $0 + $1.size }) + 64 << 10,
                "\(proxy.requests.map { "\($0.requestLine) \($0.bodyBytes)" })")
        #expect(try fixture.ledger.file(file.id)?.state == .verified)
        #expect(try fixture.storedKeys() == [afterKill.objectKey!])
        #expect(try fixture.client.hashObject(key: afterKill.objectKey!).sha256 == cameraHash)
    }

    @Test(arguments: [Int64(200_000), Int64(11 << 20)])
    func aCrashAfterTheStoreAcceptedButBeforeTheLedgerKnewLeavesOneObject(payload: Int64) throws {
        let fixture = try TestSite.make("stored") { $0.store() }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        let cameraHash = try CameraVolume.writeRecording(at: fixture.camera + "/A.MP4", recordedAt: Date(), payloadSize: payload, seed: 6)
        try fixture.ingest()
        let killed = try fixture.cli(["upload"], environment: ["UPLOADER_FAILPOINTS": "upload.stored=kill"])
        #expect(killed.killedBySignal == SIGKILL)
        #expect(try fixture.ledger.files().first?.state == .uploading)

        let rerun = try fixture.cli(["upload"])
        #expect(rerun.status == 0, "\(rerun.stderr)")
        let row = try #require(try fixture.ledger.files().first)
        #expect(row.state == .verified)
        #expect(try fixture.storedKeys() == [row.objectKey!])
        #expect(try fixture.client.hashObject(key: row.objectKey!).sha256 == cameraHash)
        if TestStore.currentKind == .seaweedfs {
            #expect(try fixture.ledger.events(EventFilter()).contains { $0.kind == .uploadFound })
        }
        // moto, like AWS, answers a repeated CompleteMultipartUpload of the same upload with success: still one object.
    }

    @Test func memoryStaysFlatWhileUploadingALargeFile() throws {
        /// Peak RSS of `ingest` and `upload` for one recording of `payload` bytes.
        func peaks(_ label: String, payload: Int64) throws -> (ingest: Int64, upload: Int64) {
            let fixture = try TestSite.make(label) { $0.store(); $0.partSize = "16MiB" }
            try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
            try CameraVolume.writeRecording(at: fixture.camera + "/LONG.MP4", recordedAt: Date(), payloadSize: payload, seed: 12)
            // Each run reports its own VmHWM: rusage would count the spawning test process too.
            let ingest = try fixture.cli(["ingest", fixture.camera, "--serial", "BWC-1", "--json"])
            #expect(ingest.status == 0, "\(ingest.stderr)")
            let upload = try fixture.cli(["upload", "--json"])
            #expect(upload.status == 0, "\(upload.stderr)")
            #expect(try fixture.ledger.files().first?.state == .verified)
            func peak(_ result: UploaderProcess.Result) throws -> Int64 {
                Int64(try #require(try UploaderProcess.json(result)["peakMemoryBytes"] as? Int))
            }
            return (try peak(ingest), try peak(upload))
        }
        let small = try peaks("memsmall", payload: 1 << 20)
        let large = try peaks("memlarge", payload: 300 << 20)
        print("peak RSS, 1 MiB file: ingest \(small.ingest >> 20) MiB, upload \(small.upload >> 20) MiB; 300 MiB file: ingest \(large.ingest >> 20) MiB, upload \(large.upload >> 20) MiB")
        // Holding even one 16 MiB part in memory would show; holding the file would show 300 MiB.
        #expect(large.ingest - small.ingest < 12 << 20)
        #expect(large.upload - small.upload < 12 << 20)
        #expect(large.ingest < 64 << 20 && large.upload < 64 << 20)
    }
}
