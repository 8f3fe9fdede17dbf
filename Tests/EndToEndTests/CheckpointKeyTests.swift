import Crypto
import Foundation
import Testing
import TestSupport
import UploaderCore

/// The dock's signing key from systemd's `LoadCredential=dock-key:…`, and its
/// checkpoints checked by OpenSSL alone, with no code of the agent in the way.
@Suite(.tags(.store, .subprocess)) struct CheckpointKeyTests {
    @Test func aKeyFromLoadCredentialSignsCheckpointsThatOpenSSLVerifies() throws {
        let site = try TestSite.make("loadcredential") { $0.store() }
        // What systemd puts in $CREDENTIALS_DIRECTORY: the key, the agent's only, read-only.
        let credentials = site.folder.sub("credentials")
        try FileManager.default.createDirectory(atPath: credentials, withIntermediateDirectories: true)
        let key = try Ed25519PrivateKey()
        try ("# a dock key from LoadCredential=\n" + key.rawRepresentation.map { String(format: "%02x", $0) }.joined() + "\n")
            .write(toFile: credentials + "/dock-key", atomically: true, encoding: .utf8)
        #expect(chmod(credentials + "/dock-key", 0o400) == 0)
        let environment = ["CREDENTIALS_DIRECTORY": credentials]
        for arguments in [["simulate-camera", site.folder.sub("cam"), "--files", "2", "--size", "64KiB"],
                          ["device", "add", "BWC-7001", "--user", "officer-71"],
                          ["ingest", site.folder.sub("cam"), "--serial", "BWC-7001"],
                          ["upload"]] {
            let result = try UploaderProcess.run(arguments, config: site.configPath, environment: environment)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
        }
        // The credential was used: no key of the agent's own was made beside it.
        #expect(!FileManager.default.fileExists(atPath: site.root + "/state/dock-key"))

        let client = site.client
        let dock = try site.configuration().hostName
        let checkpointKeys = try client.listObjectKeys(prefix: SignedCheckpoint.folder(prefix: site.area.prefix, dock: dock) + "/").filter { $0.hasSuffix(".json") }.sorted()
        let newest = try #require(checkpointKeys.last, "no checkpoint in the store")
        let checkpoint = try JSONDecoder().decode(SignedCheckpoint.self, from: Data(try #require(try client.getSmall(key: newest))))
        let pem = try #require(try client.getSmall(key: SignedCheckpoint.publicKeyObjectKey(prefix: site.area.prefix, dock: dock)))
        #expect(String(decoding: pem, as: UTF8.self) == key.publicKey.pem, "the store's dock-key.pem is not the credential's key")
        #expect(checkpoint.decodedPayload?.key == key.publicKey.fingerprint)

        // As an auditor would check it: openssl, the PEM from the store, the exact payload bytes.
        try Data(pem).write(to: URL(fileURLWithPath: site.folder.sub("dock-key.pem")))
        try Data(checkpoint.payload.utf8).write(to: URL(fileURLWithPath: site.folder.sub("payload")))
        try Data(try #require(Data(base64Encoded: checkpoint.signature))).write(to: URL(fileURLWithPath: site.folder.sub("signature")))
        let verify = ["pkeyutl", "-verify", "-pubin", "-inkey", site.folder.sub("dock-key.pem"), "-rawin", "-in", site.folder.sub("payload"), "-sigfile", site.folder.sub("signature")]
        let verified = try runToolResult("/usr/bin/openssl", verify)
        #expect(verified.status == 0 && verified.stdout.contains("Signature Verified Successfully"), "\(verified.stdout)\(verified.stderr)")
        // One byte of the payload changed (an event count): openssl refuses it.
        let altered = checkpoint.payload.replacingOccurrences(of: "\"events\":", with: "\"events\":1")
        #expect(altered != checkpoint.payload)
        try Data(altered.utf8).write(to: URL(fileURLWithPath: site.folder.sub("payload")))
        let refused = try runToolResult("/usr/bin/openssl", verify)
        #expect(refused.status != 0 && refused.stdout.contains("Signature Verification Failure"), "\(refused.stdout)\(refused.stderr)")
    }
}
