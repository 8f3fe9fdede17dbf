import Crypto
import Foundation
import GRDB
import LedgerSimulation
import Testing
import TestSupport
import Platform
import UploaderCore
@testable import Ledger

/// A file discovered, copied and spooled through the ledger's own transitions.
func spooledFile(_ ledger: Ledger, serial: String, path: String = "a.mp4", recordedAt: Date = Date()) throws -> MediaFile {
    let row = try ledger.discover(serial: serial, sourcePath: path, size: 1, modifiedNanoseconds: 1).file
    _ = try #require(try ledger.markCopying(row.id))
    let hash = SHA256Digest(bytes: Array(repeating: 0xbb, count: 32))
    return try ledger.markSpooled(row.id, copy: SpooledCopy(sha256: hash, spoolName: "\(row.id).mp4", partSize: 5 << 20, partHashes: [hash],
                                                           recordedAt: recordedAt, recordedAtSource: .containerMetadata))
}
