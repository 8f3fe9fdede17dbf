import Foundation
import Ledger
import SystemPackage
import UploaderCore

/// Deletes spool copies of files the store verified more than
/// `keep_verified_days` ago. Only `verified` files qualify: a copy is never
/// removed before the store has confirmed the exact bytes.
public struct SpoolPurger {
    let configuration: Configuration
    let ledger: Ledger

    public init(configuration: Configuration, ledger: Ledger) {
        self.configuration = configuration
        self.ledger = ledger
    }

    public struct Result: Sendable, Codable {
        public var files = 0
        public var bytes: Int64 = 0
    }

    @discardableResult
    public func purge(now: Date = Date(), dryRun: Bool = false) throws -> Result {
        let cutoff = now.addingTimeInterval(-configuration.ingest.keepVerifiedDays * 86400)
        var result = Result()
        let spool = Spool(root: configuration.spoolDirectory)
        for file in try ledger.purgeCandidates(verifiedBefore: cutoff) {
            guard let name = file.spoolName else { continue }
            result.files += 1
            result.bytes += file.sourceSize
            if dryRun { continue }
            do {
                try FileManager.default.removeItem(atPath: spool.objectPath(name))
            } catch CocoaError.fileNoSuchFile {
                // Already gone (an earlier purge died before recording it): record it now.
            }
            try ledger.markPurged(file.id)
        }
        return result
    }
}
