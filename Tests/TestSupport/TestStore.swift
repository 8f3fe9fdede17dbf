import Foundation
import Transport
import UploaderCore

/// The SeaweedFS that scripts/test started on loopback.
public struct TestStore: Sendable {
    /// Which S3 implementation the tests run against: `scripts/test` runs
    /// the store-facing suites on both.
    public enum Kind: String, Sendable {
        /// SeaweedFS: the store of the demo and the benchmarks.
        case seaweedfs
        /// moto's server mode, signatures checked: AWS's rules, written independently.
        case moto
    }

    public var endpoint: String
    public var accessKey: String
    public var secretKey: String
    public var kind: Kind = .seaweedfs

    public static func fromEnvironment() throws -> TestStore {
        let environment = ProcessInfo.processInfo.environment
        guard let endpoint = environment["UPLOADER_TEST_S3_ENDPOINT"], let key = environment["UPLOADER_TEST_S3_ACCESS_KEY"],
              let secret = environment["UPLOADER_TEST_S3_SECRET_KEY"] else { throw TestFailure.missingStore }
        return TestStore(endpoint: endpoint, accessKey: key, secretKey: secret,
                         kind: environment["UPLOADER_TEST_STORE"].flatMap(Kind.init(rawValue:)) ?? .seaweedfs)
    }

    public var credentials: Credentials { Credentials(accessKeyID: accessKey, secretAccessKey: secretKey) }

    /// The store this run of the tests is against (`UPLOADER_TEST_STORE`), for
    /// expectations where that store departs from AWS on purpose.
    public static var currentKind: Kind {
        ProcessInfo.processInfo.environment["UPLOADER_TEST_STORE"].flatMap(Kind.init(rawValue:)) ?? .seaweedfs
    }

    /// The bucket all tests share: SeaweedFS gives every bucket several volumes
    /// of its own, so a bucket per test would exhaust `-volume.max`.
    public static let sharedBucket = "uploader-tests"

    /// A key prefix of its own for each test, so tests never see each other's objects.
    public func makeArea(_ label: String) throws -> StoreArea {
        try client(bucket: Self.sharedBucket).createBucket()
        let prefix = "\(label.lowercased().filter { $0.isLetter || $0.isNumber }.prefix(30))-\(UInt32.random(in: 0...UInt32.max))"
        return StoreArea(bucket: Self.sharedBucket, prefix: prefix)
    }

    public func client(bucket: String) -> S3Client {
        S3Client(target: .init(endpoint: endpoint, bucket: bucket, addressing: .path), region: "us-east-1", credentials: credentials)
    }
}

public struct StoreArea: Sendable {
    public var bucket: String
    public var prefix: String

    public init(bucket: String, prefix: String) {
        self.bucket = bucket
        self.prefix = prefix
    }

    /// The evidence objects under this area (not the dock's custody checkpoints).
    public func evidenceKeys(_ client: S3Client) throws -> [String] {
        try client.listObjectKeys(prefix: prefix + "/").filter { !$0.hasPrefix(prefix + "/_custody/") }
    }
}
