import Foundation
import Ingest
import Ledger
import Spool
import SystemPackage
import UploaderCore
import Platform

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
        /// Spool keys dropped because no copy needs them any more.
        public var keysRetired: [String] = []
    }

    /// Streams the candidates in pages; each copy is claimed first, so a
    /// second purge (or anything else) never works on the same file, and a
    /// copy is deleted only as a regular file directly inside the spool.
    @discardableResult
    public func purge(now: Date = Date(), dryRun: Bool = false) throws -> Result {
        let cutoff = now.addingTimeInterval(-configuration.ingest.keepVerifiedDays * 86400)
        var result = Result()
        let spool = Spool(root: configuration.spoolDirectory)
        let owner = ProcessIdentity.newOwner("purge")
        try ledger.forEachPurgeCandidate(verifiedBefore: cutoff) { candidate in
            if dryRun {
                result.files += 1
                result.bytes += candidate.sourceSize
                return
            }
            guard let file = try ledger.claimForPurge(candidate.id, owner: owner, now: now), let name = file.spoolName else { return }
            do {
                // Already gone (an earlier purge died before recording it): record it now.
                try spool.removeObject(name)
            } catch {
                try? ledger.releaseClaim(file.id, owner: owner)
                throw error
            }
            try ledger.markPurged(file.id, owner: owner)
            result.files += 1
            result.bytes += file.sourceSize
        }
        if !dryRun {
            // Older spool keys go once the last copy they sealed has.
            result.keysRetired = try SpoolKeys.retireUnused(configuration: configuration, ledger: ledger)
        }
        return result
    }
}
