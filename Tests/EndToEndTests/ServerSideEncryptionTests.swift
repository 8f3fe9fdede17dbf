import Foundation
import GRDB
import Testing
import TestSupport
@testable import Ledger
@testable import Transport
import UploaderCore

/// `[store] server_side_encryption`: asked for on every object written, and
/// a store that cannot do it is a clear, site-wide stop.
@Suite(.tags(.store, .subprocess)) struct ServerSideEncryptionTests {
    @Test func everyWriteAsksForTheConfiguredEncryption() throws {
        let server = try RecordingHTTPServer()
        let client = S3Client(target: .init(endpoint: "http://127.0.0.1:\(server.port)", bucket: "evidence", addressing: .path), region: "us-east-1",
                              credentials: Credentials(accessKeyID: "AK", secretAccessKey: "SK"),
                              serverSideEncryption: .kms(keyID: "arn:aws:kms:us-east-1:111122223333:key/agency"))
        #expect(try client.putOnce(key: "pd/_custody/dock/000000000001.json", bytes: Array("{}".utf8), contentType: "application/json") == .created)
        let head = try #require(server.requestHeads.first)
        #expect(head.contains("x-amz-server-side-encryption: aws:kms"), "\(head)")
        #expect(head.contains("x-amz-server-side-encryption-aws-kms-key-id: arn:aws:kms:us-east-1:111122223333:key/agency"), "\(head)")
    }

    @Test func aStoreWithoutEncryptionStopsTheRunAndNamesTheSetting() throws {
        let site = try TestSite.make("sse") { $0.store(); $0.storeExtra = "server_side_encryption = \"AES256\"" }
        for arguments in [["simulate-camera", site.folder.sub("cam"), "--files", "2", "--size", "1MiB"],
                          ["device", "add", "BWC-5001", "--user", "officer-51"],
                          ["ingest", site.folder.sub("cam"), "--serial", "BWC-5001"]] {
            #expect(try UploaderProcess.run(arguments, config: site.configPath).status == 0)
        }
        let upload = try UploaderProcess.run(["upload"], config: site.configPath)
        guard TestStore.currentKind == .seaweedfs else {
            // moto does SSE-S3 (as AWS does): there the files upload.
            #expect(upload.status == 0, "\(upload.stdout)\(upload.stderr)")
            return
        }
        // The store refuses the site (exit 7), one line that names the setting: not a crash, not any failure.
        #expect(upload.status == ExitStatus.storeRefused.rawValue && upload.killedBySignal == nil, "\(upload.stdout)\(upload.stderr)")
        let error = upload.stderr.split(separator: "\n").filter { !$0.isEmpty }
        #expect(error.count == 1 && error[0].hasPrefix("error: the evidence store refused the server-side encryption asked for (")
                && error[0].hasSuffix("check [store] server_side_encryption and kms_key_id (\"\" leaves encryption to the bucket's default)"), "\(upload.stderr)")
        let status = try UploaderProcess.json(try UploaderProcess.run(["status", "--json"], config: site.configPath))
        let states = try #require(status["states"] as? [String: Any])
        #expect(states["failed"] == nil && states["verified"] == nil, "\(states)")
    }
}
