import Foundation
import Transport
import UploaderCore

/// `uploader store check`: what the configured store says about this site:
/// whether it takes our signature and bucket, and what it enforces itself
/// beyond the agent's own If-None-Match.
public struct StoreCheck: Sendable {
    /// The bucket's versioning status ("Enabled", "Suspended"; nil: never enabled).
    public var versioning: String?
    /// Whether the store refuses bytes that do not match their SHA-256, and what the probe left behind.
    public var checksums: S3Client.ChecksumProbe
    public var objectLock: Bool
    /// The configured categories that lock their files (retention or legal hold).
    public var lockingCategories: [String]

    /// Asks the store; throws what it answers when it refuses (credentials, bucket, TLS). Blocking.
    public static func run(configuration: Configuration, client: S3Client) throws -> StoreCheck {
        // A HEAD of a key that cannot exist proves signing and bucket access without touching evidence.
        _ = try client.headObject(key: ".uploader-store-check")
        let versioning = try client.versioning()
        // A store that takes a wrong checksum gives none of the protection the store's checksum promises.
        let checksums = try client.probeChecksumEnforcement(under: configuration.store.prefix)
        let locking = configuration.categories.categories.values.filter { $0.lockMode != nil || $0.holdsLegally }.map(\.name).sorted()
        return StoreCheck(versioning: versioning, checksums: checksums, objectLock: try client.objectLockEnabled(), lockingCategories: locking)
    }
}
