import Ledger
import Transport
import UploaderCore

/// `uploader cancel`: an admin stops files from uploading; their spool copies stay.
public enum UploadCancellation {
    /// Cancels each of `files` still waiting or uploading: the ledger first (a run
    /// uploading the file loses it at its next write), then its multipart upload,
    /// as it was at that moment, is aborted on the store. A file the ledger will
    /// not cancel is told to `refused` with the reason. Returns how many were
    /// cancelled. Blocking.
    public static func cancel(_ files: [MediaFile], configuration: Configuration, ledger: Ledger,
                              refused: (Int64, String) -> Void) throws -> Int {
        var client: S3Client?
        var cancelled = 0
        for file in files where [.spooled, .uploading, .failed].contains(file.state) {
            let before: MediaFile
            do {
                before = try ledger.markCancelled(file.id, reason: "cancelled by an admin; the spool copy is kept (`uploader retry #\(file.id)` queues it again)")
            } catch let error as UploaderError where error.code == .transitionRefused {
                refused(file.id, error.message)
                continue
            }
            cancelled += 1
            if let uploadID = before.uploadID, let key = before.objectKey {
                if client == nil { client = S3Client(configuration: configuration, credentials: try Credentials.load(configuration.store.credentials)) }
                try client!.abortMultipartUpload(key: key, uploadID: uploadID)
            }
        }
        return cancelled
    }
}
