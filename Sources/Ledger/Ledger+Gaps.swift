import Foundation
import GRDB
import UploaderCore

extension Ledger {
    /// Spans wider than this between two numbers seen are taken for a
    /// renumbered camera (a reset counter, a new folder), not for deletions.
    static let widestGap = 200

    /// Finds file numbers missing on camera `serial` between two files seen
    /// on it (across every dock), records each new one as a custody warning
    /// once, and returns the new ones' messages. Memory: one number per file
    /// of this camera, never the rows.
    @discardableResult
    public func recordFileNumberGaps(serial: String, pattern: FileNumberPattern) throws -> [String] {
        try write("look for gaps in camera \(serial)'s file numbers") { db in
            var numbers = Set<Int>()
            let cursor = try String.fetchCursor(db, sql: "SELECT source_path FROM media_file WHERE serial = ?", arguments: [serial])
            while let path = try cursor.next() {
                if let number = pattern.number(inPath: path) { numbers.insert(number) }
            }
            let sorted = numbers.sorted()
            var found: [String] = []
            for (before, after) in zip(sorted, sorted.dropFirst()) where after - before > 1 && after - before <= Self.widestGap {
                for missing in (before + 1)..<after {
                    let message = "\(pattern.name(missing)) missing between \(pattern.name(before)) and \(pattern.name(after)) on camera \(serial): the camera may have deleted it before docking"
                    try db.execute(sql: "INSERT OR IGNORE INTO file_gap (serial, number, message, found_at) VALUES (?, ?, ?, ?)",
                                   arguments: [serial, missing, message, Date()])
                    guard db.changesCount == 1 else { continue }
                    try Ledger.append(EventDraft(.warning, .custodyGap, serial: serial, message), in: db)
                    found.append(message)
                }
            }
            return found
        }
    }
}
