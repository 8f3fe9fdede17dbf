/// The holder of a claim on a file: an upload run or a purge that is working
/// on it now. Another process may take the file over only once the holder is
/// gone (checked by the platform layer) or its lease has run out.
public struct ClaimOwner: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var boot: String
    public var pid: Int32
    public var startTime: UInt64
    public var nonce: String

    public init(host: String, boot: String, pid: Int32, startTime: UInt64, nonce: String) {
        self.host = host
        self.boot = boot
        self.pid = pid
        self.startTime = startTime
        self.nonce = nonce
    }

    /// "host|boot|pid|start|nonce", as stored in the ledger.
    public var token: String { [host, boot, String(pid), String(startTime), nonce].joined(separator: "|") }

    public init?(token: String) {
        let fields = token.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        guard fields.count == 5, let pid = Int32(fields[2]), let start = UInt64(fields[3]) else { return nil }
        self.init(host: fields[0], boot: fields[1], pid: pid, startTime: start, nonce: fields[4])
    }

    /// "pid 1234 on dock-7", for messages.
    public var description: String { "process \(pid) on \(host)" }
}
