import Crypto
import Foundation
import UploaderCore

/// Hashes upload parts on a thread of its own while the copy loop hashes the
/// whole file and writes: the two SHA-256 streams of one camera read run on
/// both cores instead of one after the other.
public final class PartHasher: @unchecked Sendable {
    let partSize: Int64
    private let parts: PartDigests
    private var partHashes: [String]?

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
    public func finish() -> [String] {
        if let partHashes { return partHashes }
        thread = nil
        done.wait()
        finished = true
        start.signal()
        done.wait()
        // libdispatch refuses to free a semaphore below its initial value.
        done.signal()
        let hashes = parts.finalize().map(\.hex)
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
