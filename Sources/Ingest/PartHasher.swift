import Crypto
import Foundation
import UploaderCore

/// Hashes upload parts on a thread of its own while the copy loop hashes the
/// whole file and writes: the two SHA-256 streams of one camera read run on
/// both cores instead of one after the other.
public final class PartHasher: @unchecked Sendable {
    let partSize: Int64
    private(set) var partHashes: [String] = []
    private var part = SHA256Hasher()
    private var inPart: Int64 = 0

    private let start = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 1)
    private var job: UnsafeRawBufferPointer?
    private var finished = false
    private var thread: Thread?

    public init(partSize: Int64) {
        self.partSize = partSize
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
        if thread == nil { return partHashes }
        thread = nil
        done.wait()
        finished = true
        start.signal()
        done.wait()
        // libdispatch refuses to free a semaphore below its initial value.
        done.signal()
        if inPart > 0 || partHashes.isEmpty { partHashes.append(part.finalize().hex) }
        return partHashes
    }

    private func loop() {
        while true {
            start.wait()
            if finished {
                done.signal()
                return
            }
            if let chunk = job { hash(chunk) }
            done.signal()
        }
    }

    private func hash(_ chunk: UnsafeRawBufferPointer) {
        var consumed = 0
        while consumed < chunk.count {
            let take = Int(min(Int64(chunk.count - consumed), partSize - inPart))
            part.update(UnsafeRawBufferPointer(rebasing: chunk[consumed..<(consumed + take)]))
            consumed += take
            inPart += Int64(take)
            if inPart == partSize {
                partHashes.append(part.finalize().hex)
                part = SHA256Hasher()
                inPart = 0
            }
        }
    }
}
