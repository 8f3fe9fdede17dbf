import Ledger
import Transport
import UploaderCore

/// `uploader tag`: tags the selected files in the ledger (each change a custody
/// event) and, for files already verified, the stored object at once; what the
/// store cannot take now follows with the next upload run.
public enum FileTagging {
    public struct Counts: Sendable {
        public var files = 0
        /// Stored objects updated now.
        public var stored = 0
        /// Verified files whose object follows with the next upload run.
        public var waitingForStore = 0
        /// Files not uploaded yet: the tags go with the upload.
        public var beforeUpload = 0
    }

    /// A usage error when `category` is not one of the configuration's.
    public static func checkCategory(_ category: String?, configuration: Configuration) throws {
        guard let category, configuration.categories.categories[category] == nil else { return }
        let known = configuration.categories.categories.keys.sorted()
        throw UploaderError(.usage, "there is no category \"\(category)\": \(known.isEmpty ? "define one under [categories.NAME] in \(configuration.sourcePath)" : "known categories are \(known.joined(separator: ", "))")")
    }

    /// Tags the files `selection` names with `tags`, 500 at a time; each stored
    /// object's outcome is told to `stored` (file id, line). A lock the bucket
    /// cannot enforce is refused before anything is written. Blocking.
    public static func tag(_ selection: VerifySelection, with tags: FileTags, configuration: Configuration, ledger: Ledger,
                           stored report: (Int64, String) -> Void) throws -> Counts {
        let rules = ObjectRules(configuration: configuration, ledger: ledger)
        let client = (try? Credentials.load(configuration.store.credentials)).map { S3Client(configuration: configuration, credentials: $0) }
        let locks = client.map { StoreAnswerCache(client: $0) }
        if let name = tags.category, let wanted = configuration.categories.categories[name], wanted.lockMode != nil || wanted.holdsLegally,
           let locks, let enforced = try? locks.get(), !enforced {
            throw UploaderError(.config, "category \(name) locks its files, but bucket \(configuration.store.bucket) has no Object Lock: use a bucket created with Object Lock (see `uploader store check`), or set lock = \"none\" in [categories.\(name)]")
        }
        var ids: [Int64] = []
        try ledger.forEachFileRecord(selection) { ids.append($0.file.id) }
        guard !ids.isEmpty else { throw UploaderError(.notFound, "no file in the ledger matches: see `uploader status` or `uploader device show SERIAL`") }
        var counts = Counts(files: ids.count)
        for start in stride(from: 0, to: ids.count, by: 500) {
            for file in try ledger.tag(Array(ids[start..<min(ids.count, start + 500)]), with: tags) {
                guard file.storeTagsPending else {
                    counts.beforeUpload += file.state == .verified ? 0 : 1
                    continue
                }
                guard file.state == .verified, let client, let locks else { counts.waitingForStore += 1; continue }
                do {
                    report(file.id, try StoreTagging.apply(file, rules: rules, client: client, bucketLocks: locks.get))
                    counts.stored += 1
                } catch {
                    let message = (error as? UploaderError)?.message ?? "\(error)"
                    try? ledger.markStoreTagsPending(file.id, reason: message)
                    report(file.id, "tagged in the ledger; the stored object follows with the next upload run: \(message)")
                    counts.waitingForStore += 1
                }
            }
        }
        return counts
    }
}
