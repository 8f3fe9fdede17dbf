import Foundation
import Platform
import Synchronization
import SystemPackage

/// Reads a camera file ahead of the copy loop, on a thread of its own, into
/// a small ring of chunks: the disk works while the copy loop hashes, seals
/// and writes the chunks before. Reads go straight into the ring (O_DIRECT)
/// where the camera's file system allows, so no chunk is copied out of the
/// page cache; a direct read waits for the disk, hence the thread. Memory is
/// the ring, whatever the file's size. Not Sendable: one per copy.
final class ReadAhead: @unchecked Sendable {
    /// A chunk read, or why reading stopped.
    enum Slot {
        case bytes(Int)
        case failed(Errno)
    }

    let source: FileDescriptor
    let chunkSize: Int
    private let memory: UnsafeMutableRawBufferPointer
    private let slotCount: Int
    /// Each slot's outcome: written by the reader, read by the copy loop after `filled` says so.
    private let results: UnsafeMutablePointer<Slot>
    /// Free slots (the reader waits on it) and read ones (the copy loop waits on it).
    /// Both start at 0: libdispatch refuses to free a semaphore below its initial value.
    private let free = DispatchSemaphore(value: 0)
    private let filled = DispatchSemaphore(value: 0)
    private let readerEnded = DispatchSemaphore(value: 0)
    private let cancelled = Atomic<Bool>(false)
    private var nextToTake = 0

    /// `slots` chunks of `chunkSize` in flight at most; reading starts at once.
    init(source: FileDescriptor, chunkSize: Int, slots: Int) {
        self.source = source
        self.chunkSize = chunkSize
        slotCount = slots
        memory = IOBuffer.allocate(byteCount: chunkSize * slots)
        results = .allocate(capacity: slots)
        results.initialize(repeating: .bytes(0), count: slots)
        for _ in 0..<slots { free.signal() }
        let thread = Thread { [self] in
            read()
            readerEnded.signal()
        }
        thread.name = "uploader.ingest.read"
        thread.start()
    }

    private func slot(_ index: Int) -> UnsafeMutableRawBufferPointer {
        let start = (index % slotCount) * chunkSize
        return UnsafeMutableRawBufferPointer(rebasing: memory[start..<start + chunkSize])
    }

    private func read() {
        var direct = (try? Syscall.setUncached(source, true)) == true
        var index = 0
        while true {
            free.wait()
            if cancelled.load(ordering: .acquiring) { return }
            let result: Slot
            do {
                result = .bytes(try readOnce(into: slot(index), direct: &direct))
            } catch {
                result = .failed(error as? Errno ?? .ioError)
            }
            results[index % slotCount] = result
            index += 1
            filled.signal()
            if case .bytes(let count) = result, count > 0 { continue }
            return
        }
    }

    /// One read at the file's offset. A direct read needs an aligned offset
    /// and length, which only a short read before the end could upset: then
    /// the rest is read through the page cache.
    private func readOnce(into buffer: UnsafeMutableRawBufferPointer, direct: inout Bool) throws -> Int {
        do {
            return try source.read(into: buffer)
        } catch Errno.invalidArgument where direct {
            direct = false
            guard try Syscall.setUncached(source, false) else { throw Errno.invalidArgument }
            return try source.read(into: buffer)
        }
    }

    /// The next chunk in the file's order (empty at the end). It stays valid
    /// until `release()` is called for it; chunks are released in the order taken.
    func next() throws(Errno) -> UnsafeRawBufferPointer {
        filled.wait()
        let index = nextToTake
        nextToTake += 1
        switch results[index % slotCount] {
        case .failed(let error):
            throw error
        case .bytes(let count):
            return UnsafeRawBufferPointer(rebasing: slot(index)[0..<count])
        }
    }

    /// The oldest chunk taken is no longer used: the reader may fill it again.
    func release() {
        free.signal()
    }

    /// Stops the reader and waits for it: the ring is freed only then.
    func close() {
        cancelled.store(true, ordering: .releasing)
        free.signal()
        readerEnded.wait()
        memory.deallocate()
        results.deallocate()
    }
}
