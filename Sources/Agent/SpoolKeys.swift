import Foundation
import Ledger
import Platform
import Spool
import UploaderCore

/// The spool keyring's life: rotation by an admin, and retirement of the
/// keys no spool copy needs any more (after the purge), each a custody event.
public enum SpoolKeys {
    public struct Usage: Sendable, Codable {
        public var id: String
        public var addedAt: Date
        public var current: Bool
        public var spoolCopies: Int
    }

    /// Each key with the number of spool copies on disk it sealed.
    public static func usage(configuration: Configuration, ledger: Ledger) throws -> (keyring: SpoolKeyring?, keys: [Usage], clearCopies: Int) {
        let counts = try ledger.spoolCopiesByKey()
        guard let keyring = try SpoolKeyring.existing(path: configuration.ingest.spoolKeyring) else { return (nil, [], counts[nil] ?? 0) }
        let keys = keyring.entries.map { entry in
            Usage(id: entry.key.id, addedAt: entry.addedAt, current: entry.key == keyring.current, spoolCopies: counts[entry.key.id] ?? 0)
        }
        return (keyring, keys, counts[nil] ?? 0)
    }

    /// A new key seals new copies from now on.
    public static func rotate(configuration: Configuration, ledger: Ledger) throws -> SpoolKeyring {
        let keyring = try SpoolKeyring.loadOrCreate(path: configuration.ingest.spoolKeyring)
        let rotated = try keyring.rotated()
        try ledger.log(EventDraft(.notice, .spoolKeyAdded,
                                  "spool key \(rotated.current.id) seals new spool copies from now on; \(rotated.entries.count - 1) older key(s) stay until no copy needs them"))
        return rotated
    }

    /// Drops older keys that no spool copy on disk was sealed with. Blocking.
    @discardableResult
    public static func retireUnused(configuration: Configuration, ledger: Ledger) throws -> [String] {
        guard let keyring = try SpoolKeyring.existing(path: configuration.ingest.spoolKeyring) else { return [] }
        let (_, retired) = try keyring.retiring { key in try !ledger.spoolKeyInUse(key.id) }
        for key in retired {
            try ledger.log(EventDraft(.notice, .spoolKeyRetired, "spool key \(key.id) retired: no spool copy is sealed with it any more"))
        }
        return retired.map(\.id)
    }
}
