import Foundation

/// TCP on 127.0.0.1 for the test servers: one way to listen on a free port,
/// one way to wait until a server another process started accepts.
public enum Loopback {
    public static func address(port: UInt16) -> sockaddr_in {
        sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: port.bigEndian, sin_addr: in_addr(s_addr: inet_addr("127.0.0.1")), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
    }

    /// A listening socket on a port the kernel picked.
    public static func listen(backlog: Int32 = 16) throws -> (fd: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = address(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        guard withUnsafePointer(to: &address, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }) == 0,
              Glibc.listen(fd, backlog) == 0,
              withUnsafeMutablePointer(to: &address, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }) == 0 else {
            let error = errno
            close(fd)
            throw TestFailure.message("cannot listen on 127.0.0.1: errno \(error)")
        }
        return (fd, UInt16(bigEndian: address.sin_port))
    }

    /// A port free right now, for a server another process will bind.
    public static func freePort() throws -> UInt16 {
        let (fd, port) = try listen()
        close(fd)
        return port
    }

    /// Whether something accepts connections on `port` within `timeout`.
    public static func waitUntilAccepting(port: UInt16, timeout: TimeInterval = 15) -> Bool {
        eventually(within: timeout) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var target = address(port: port)
            return withUnsafePointer(to: &target) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
        }
    }
}
