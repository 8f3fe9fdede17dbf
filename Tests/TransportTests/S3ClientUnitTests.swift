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

@Suite struct S3ClientUnitTests {
    @Test func urlsAreInSigV4CanonicalForm() {
        let client = S3Client(target: .init(endpoint: "https://s3.example.gov/", bucket: "evidence", addressing: .path),
                              region: "us-east-1", credentials: Credentials(accessKeyID: "a", secretAccessKey: "b"))
        #expect(client.url(key: "pd/a b+c/ü.mp4", query: [("uploadId", "x/y"), ("partNumber", "2")])
                == "https://s3.example.gov/evidence/pd/a%20b%2Bc/%C3%BC.mp4?partNumber=2&uploadId=x%2Fy")
        #expect(client.url(key: "k", query: [("uploads", "")]) == "https://s3.example.gov/evidence/k?uploads=")
        let virtual = S3Client(target: .init(endpoint: "https://s3.example.gov", bucket: "evidence", addressing: .virtualHosted),
                               region: "us-east-1", credentials: Credentials(accessKeyID: "a", secretAccessKey: "b"))
        #expect(virtual.url(key: "k", query: []) == "https://evidence.s3.example.gov/k")
    }

    /// Issue 15.1: one multipart proof in the forms stores write it, compared by
    /// value and part count; a form that cannot be read asks for a read-back.
    @Test func storeChecksumsCompareByValueAndPartCountInEveryForm() {
        let whole = SHA256Hasher.hash(Array("the whole file".utf8))
        let parts = (1...3).map { SHA256Hasher.hash(Array("part \($0)".utf8)) }
        let expected = StoreChecksum.Expected(wholeFile: whole, partDigests: parts)
        let composite = SHA256Digest.compositeChecksum(ofParts: parts)
        let value = String(composite.split(separator: "-")[0])
        #expect(composite.hasSuffix("-3"))
        for (header, type) in [(composite, nil), (value, nil), (value, "COMPOSITE"), (composite, "COMPOSITE"), (composite, "composite")] as [(String, String?)] {
            #expect(StoreChecksum.compare(header, type: type, with: expected) == .matches, "\(header) \(type ?? "-")")
        }
        // The right value with another part count, or another value: not this file.
        #expect(StoreChecksum.compare(value + "-4", type: nil, with: expected) == .differs)
        #expect(StoreChecksum.compare(parts[0].base64 + "-3", type: nil, with: expected) == .differs)
        // A full-object SHA-256 is the whole file's.
        #expect(StoreChecksum.compare(whole.base64, type: "FULL_OBJECT", with: expected) == .matches)
        #expect(StoreChecksum.compare(whole.base64, type: nil, with: expected) == .matches)
        #expect(StoreChecksum.compare(value, type: "FULL_OBJECT", with: expected) == .differs)
        // Forms the agent cannot read: the object is read back instead, never retried forever.
        for (header, type) in [("not base64!", nil), (value + "-x", nil), ("AAAA", nil), (value, "PER_PART")] as [(String, String?)] {
            #expect(StoreChecksum.compare(header, type: type, with: expected) == .unreadable, "\(header)")
        }
        // A single PUT: its plain SHA-256, with or without a type.
        let single = StoreChecksum.Expected(wholeFile: whole, partDigests: [whole])
        #expect(StoreChecksum.compare(whole.base64, type: nil, with: single) == .matches)
        #expect(StoreChecksum.compare(whole.base64, type: "COMPOSITE", with: single) == .matches)
        #expect(StoreChecksum.compare(parts[0].base64, type: nil, with: single) == .differs)
        // What `verify` compares with: the proof recorded at upload, in the form the store wrote it then.
        let recorded = try! #require(StoreChecksum.Expected(wholeFile: whole, recorded: value))
        #expect(StoreChecksum.compare(composite, type: "COMPOSITE", with: recorded) == .matches)
        #expect(StoreChecksum.Expected(wholeFile: whole, recorded: "sha256:" + whole.hex) == nil)
    }

    @Test func failuresAreClassifiedForRetry() {
        func classify(_ status: Int, _ code: String, retryAfter: String? = nil) -> UploaderError {
            UploaderError.storeAnswer(HTTPResponse(status: status, headers: retryAfter.map { ["retry-after": $0] } ?? [:],
                                        body: Array("<Error><Code>\(code)</Code><Message>m</Message></Error>".utf8)))
        }
        #expect(classify(503, "SlowDown", retryAfter: "4").code == .storeUnavailable)
        #expect(classify(503, "SlowDown", retryAfter: "4").retryAfter == 4)
        #expect(classify(500, "InternalError").code == .storeUnavailable)
        #expect(classify(429, "TooManyRequests").code == .storeUnavailable)
        #expect(classify(403, "SignatureDoesNotMatch").code == .storeAuth)
        #expect(classify(403, "RequestTimeTooSkewed").message.contains("clock"))
        #expect(classify(404, "NoSuchBucket").code == .storeMissingBucket)
        #expect(classify(400, "BadDigest").code == .storeChecksumMismatch)
        #expect(classify(412, "PreconditionFailed").code == .storeObjectExists)
        #expect(classify(404, "NoSuchUpload").code == .storeUploadGone)
        #expect(classify(400, "InvalidArgument").code == .storeRejected)
    }

    @Test func noMetadataNameIsAnotherFollowedByADash() throws {
        // libcurl 7.88 orders signed headers as "name:value" strings; such a pair breaks the signature.
        let site = try TestSite.make()
        let runner = UploadRunner(configuration: try site.configuration(), credentials: Credentials(accessKeyID: "a", secretAccessKey: "b"),
                                  ledger: try Ledger(path: site.folder.sub("l.sqlite")), logger: Logger(label: "t"))
        let row = try runner.ledger.discover(serial: "S", sourcePath: "a.mp4", size: 1, modifiedNanoseconds: 1).file
        let names = runner.metadata(for: row).keys
        for name in names {
            #expect(!names.contains { $0 != name && $0.hasPrefix(name + "-") }, "\(name)")
        }
    }

    @Test func xmlEntitiesAreDecoded() {
        #expect(XMLText.first("ETag", in: "<ETag>&#34;abc&#34;</ETag>") == "\"abc\"")
        #expect(XMLText.all("Key", in: "<Key>a&amp;b</Key><Key>c</Key>") == ["a&b", "c"])
    }
}
