import Foundation
import SystemPackage

/// Something read by position: a plain file, or a sealed spool copy opened as it streams.
public protocol PositionalReader: AnyObject {
    /// Fills `buffer` from `offset` (fewer bytes at the end, 0 past it).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int
}

/// A plain file read with pread.
public final class PlainFileReader: PositionalReader {
    let fd: FileDescriptor
    public init(_ fd: FileDescriptor) { self.fd = fd }
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        try Syscall.pread(fd, into: buffer, at: offset)
    }
}
