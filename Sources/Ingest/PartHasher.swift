import Crypto
import Foundation
import UploaderCore

/// Hashes upload parts on a thread of its own while the copy loop reads,
/// seals and writes (and hashes the whole file, when it has more than one
/// part): the work of one camera read runs on both cores instead of one after
/// the other. With a part size past the file's end its one hash is the whole file's.
public final class PartHasher: @unchecked Sendable {
    let partSize: Int64
    private let parts: PartDigests
    private var partHashes: [SHA256Digest]?

    private let start = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 1)
    private var job: UnsafeRawBufferPointer?
    private var finished = false
    private var thread: Thread?

    public init(partSize: Int64) {
        self.partSize = partSize
        parts = PartDigests(partSize: partSize)
        let thread = Thread { [self] in loop() }
        thread.name = "uploader.ingest.part-hash"
        self.thread = thread
        thread.start()
    }

    /// Hands over a chunk; the caller must not touch it until `waitIdle()` returns.
    public func submit(_ chunk: UnsafeRawBufferPointer) {
        done.wait()
        job = chunk
        start.signal()
    }

    /// Ends the thread and returns every part's hash. Safe to call again.
    public func finish() -> [SHA256Digest] {
        if let partHashes { return partHashes }
        thread = nil
        done.wait()
        finished = true
        start.signal()
        done.wait()
        // libdispatch refuses to free a semaphore below its initial value.
        done.signal()
        let hashes = parts.finalize()
        partHashes = hashes
        return hashes
    }

    private func loop() {
        while true {
            start.wait()
            if finished {
                done.signal()
                return
            }
            if let chunk = job { parts.update(chunk) }
            done.signal()
        }
    }
}
