import Foundation
import Testing
import TestSupport
import Transport
import UploaderCore

/// `[store] server_side_encryption = "AES256"`: every request that writes
/// object data asks the store for it, as seen on the wire by a proxy in front
/// of the real store during a whole `uploader upload` (the checksum probe,
/// PutObject, CreateMultipartUpload, the dock's key and its checkpoints).
@Suite(.tags(.store, .subprocess)) struct EncryptionOnEveryWriteTests {
    @Test func everyWriteOfObjectDataOnTheWireAsksForTheConfiguredEncryption() throws {
        let store = try TestStore.fromEnvironment()
        let proxy = try FaultProxy(upstream: store.endpoint)
        defer { proxy.stop() }
        let site = try TestSite.make("sse-wire") {
            $0.store()
            $0.endpoint = proxy.endpoint
            $0.storeExtra = "server_side_encryption = \"AES256\""
        }
        let folder = site.folder, area = site.area
        // One file sent with a single PUT, one in parts (5 MiB parts).
        try CameraVolume.writeRecording(at: folder.sub("camera/DCIM/SMALL.MP4"), recordedAt: Date(timeIntervalSince1970: 1_795_000_000), payloadSize: 300_000, seed: 1)
        try CameraVolume.writeRecording(at: folder.sub("camera/DCIM/BIG.MP4"), recordedAt: Date(timeIntervalSince1970: 1_795_000_600), payloadSize: 11 << 20, seed: 2)
        for arguments in [["device", "add", "BWC-E", "--user", "officer-e"], ["ingest", folder.sub("camera"), "--serial", "BWC-E"]] {
            let result = try UploaderProcess.run(arguments, config: site.configPath)
            #expect(result.status == 0, "\(arguments): \(result.stdout)\(result.stderr)")
        }
        let upload = try UploaderProcess.run(["upload", "--now", "--json"], config: site.configPath)

        let writes = proxy.requests.filter(Self.writesObjectData)
        for write in writes {
            #expect(write.header("x-amz-server-side-encryption") == "AES256", "\(write.requestLine) does not ask for encryption")
        }
        let lines = writes.map(\.requestLine)
        guard TestStore.currentKind == .moto else {
            // This SeaweedFS has no SSE-S3 key: it refuses the first encrypted write, and the run
            // stops (exit 7) without writing anything unencrypted instead.
            #expect(upload.status == ExitStatus.storeRefused.rawValue && upload.killedBySignal == nil, "\(upload.stdout)\(upload.stderr)")
            #expect(!writes.isEmpty, "no write reached the store")
            #expect(try area.evidenceKeys(store.client(bucket: area.bucket)).isEmpty)
            return
        }
        // moto does SSE-S3 as AWS does: the whole run goes through, and each kind of write was seen.
        #expect(upload.status == 0, "\(upload.stdout)\(upload.stderr)")
        #expect(try UploaderProcess.json(upload)["verified"] as? Int == 2, "\(upload.stdout)")
        let kinds: [(String, (String) -> Bool)] = [
            ("the checksum probe", { $0.hasPrefix("PUT ") && $0.contains(S3Client.checksumProbeFolder) }),
            ("PutObject of SMALL.MP4", { $0.hasPrefix("PUT ") && $0.contains("/SMALL.MP4 ") }),
            ("CreateMultipartUpload of BIG.MP4", { $0.hasPrefix("POST ") && $0.contains("/BIG.MP4?uploads") }),
            ("the dock's public key", { $0.hasPrefix("PUT ") && $0.contains("/_custody/") && $0.contains(".pem") }),
            ("a custody checkpoint", { $0.hasPrefix("PUT ") && $0.contains("/_custody/") && $0.contains(".json") }),
        ]
        for (kind, matches) in kinds {
            #expect(lines.contains(where: matches), "no \(kind) among the writes: \(lines)")
        }
        #expect(writes.count >= kinds.count)
    }

    /// A request that writes an object's data, and so may ask for encryption: a PUT of
    /// an object (not a part, not a tag/retention/hold/ACL subresource) or a CreateMultipartUpload.
    static func writesObjectData(_ request: FaultProxy.Request) -> Bool {
        let target = request.requestLine.split(separator: " ").dropFirst().first.map(String.init) ?? ""
        let query = target.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init) ?? ""
        let parameters = Set(query.split(separator: "&").map { String($0.split(separator: "=").first ?? "") })
        switch request.method {
        case "POST": return parameters.contains("uploads")
        case "PUT": return parameters.isDisjoint(with: ["partNumber", "tagging", "retention", "legal-hold", "acl"])
        default: return false
        }
    }
}
