import Foundation
import Synchronization

/// A fault-injecting HTTP proxy on 127.0.0.1 between the agent and the store.
/// It reads each request's head, then applies the next fault from a seeded
/// random schedule: pass it through, answer `503 SlowDown` with
/// `Retry-After`, reset the connection in the middle of the body, stall, or
/// cut the store's answer short. One request per connection (it asks the
/// store to close), so every request gets its own fault.
public final class FaultProxy: @unchecked Sendable {
    public enum Fault: String, Sendable, CaseIterable {
        case pass, slowDown, resetMidBody, stall, truncateResponse
        /// `400 InvalidRequest`: a refusal no retry can fix.
        case reject
    }

    public let port: UInt16
    private let upstreamPort: UInt16
    private let listener: Int32
    struct Plan {
        var generator: SplitMix
        var faultRate: Double
        var faults: [Fault]
        var counts: [Fault: Int]
        /// Instead of a rate: every Nth request that arrives gets the first fault, the others pass.
        var everyNth: Int? = nil
        var arrivals = 0
    }
    private let plan = Mutex(Plan(generator: SplitMix(seed: 1), faultRate: 0, faults: [], counts: [:]))
    private let stallSeconds: Double
    private var acceptThread: Thread?

    /// A request the proxy passed whole to the store: what went on the wire.
    public struct Request: Sendable {
        public var head: String
        /// The bytes of its body relayed to the store.
        public var bodyBytes: Int
        public var method: String { String(head.prefix { $0 != " " }) }
        /// `PUT /bucket/key?query HTTP/1.1`.
        public var requestLine: String { head.split(separator: "\r\n").first.map(String.init) ?? "" }
        /// An UploadPart of a multipart upload (`PUT …?partNumber=N&uploadId=…`).
        public var isUploadPart: Bool { method == "PUT" && requestLine.contains("partNumber=") }
        public func header(_ name: String) -> String? { FaultProxy.header(name.lowercased(), in: head) }
    }
    private let passed = Mutex<[Request]>([])
    private let arrivedHeads = Mutex<[String]>([])
    private let onRequestSent: (@Sendable (Request) -> Void)?
    private let chooseFault: (@Sendable (Request) -> Fault?)?
    private let tamperResponse: (@Sendable (Request, inout [UInt8]) -> Void)?
    private let stopping = Atomic<Bool>(false)

    /// `faultRate`: the share of requests that get a fault (chosen evenly from `faults`);
    /// `everyNth`: instead, every Nth request gets `faults[0]` (a store that answers 503 to every third);
    /// `chooseFault`: a fault for this request by its head (nil: the schedule's).
    /// `onRequestSent` is called once a request's whole body has reached the store, before its answer
    /// goes back: a test acts "between" two requests there, with no clock.
    /// `tamperResponse` gets the store's whole answer (head and body) to a request passed whole, and may change it: a store that lies.
    public init(upstream: String, seed: UInt64 = 1, faultRate: Double = 0, faults: [Fault] = [.slowDown, .resetMidBody, .stall, .truncateResponse],
                everyNth: Int? = nil, stallSeconds: Double = 4, onRequestSent: (@Sendable (Request) -> Void)? = nil,
                tamperResponse: (@Sendable (Request, inout [UInt8]) -> Void)? = nil,
                chooseFault: (@Sendable (Request) -> Fault?)? = nil) throws {
        self.onRequestSent = onRequestSent
        self.chooseFault = chooseFault
        self.tamperResponse = tamperResponse
        guard let port = URLComponents(string: upstream)?.port else { throw TestFailure.message("no port in \(upstream)") }
        upstreamPort = UInt16(port)
        self.stallSeconds = stallSeconds
        (listener, self.port) = try Loopback.listen(backlog: 64)
        plan.withLock { $0 = Plan(generator: SplitMix(seed: seed), faultRate: faultRate, faults: faults, counts: [:], everyNth: everyNth) }
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "fault-proxy"
        acceptThread = thread
        thread.start()
    }

    deinit { stop() }

    public var endpoint: String { "http://127.0.0.1:\(port)" }

    /// How many requests got each fault so far.
    public var counts: [Fault: Int] { plan.withLock { $0.counts } }

    public func setFaultRate(_ rate: Double) { plan.withLock { $0.faultRate = rate } }

    /// From now on every `n`-th request is answered `503 SlowDown` (a store that sheds load on a schedule).
    public func answer503(every n: Int) { plan.withLock { $0.everyNth = n; $0.arrivals = 0; $0.faults = [.slowDown] } }

    /// The requests that reached the store whole, in the order their bodies were sent.
    public var requests: [Request] { passed.withLock { $0 } }

    /// Every request that arrived, whole or not (one aborted mid-body too): its head.
    public var arrived: [Request] { arrivedHeads.withLock { $0 }.map { Request(head: $0, bodyBytes: 0) } }

    public func stop() {
        if stopping.exchange(true, ordering: .relaxed) { return }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func nextFault() -> Fault {
        plan.withLock { state in
            var fault = Fault.pass
            state.arrivals += 1
            if let every = state.everyNth {
                if state.arrivals % every == 0, let first = state.faults.first { fault = first }
            } else if Double(state.generator.next() % 10_000) / 10_000 < state.faultRate, !state.faults.isEmpty {
                fault = state.faults[Int(state.generator.next() % UInt64(state.faults.count))]
            }
            state.counts[fault, default: 0] += 1
            return fault
        }
    }

    private func acceptLoop() {
        while !stopping.load(ordering: .relaxed) {
            let client = accept(listener, nil, nil)
            if client < 0 { if errno == EINTR { continue }; return }
            let thread = Thread { [self] in handle(client) }
            thread.start()
        }
    }

    private func handle(_ client: Int32) {
        defer { close(client) }
        guard var (head, leftover) = readHead(client) else { return }
        arrivedHeads.withLock { [head] in $0.append(head) }
        let fault = chooseFault?(Request(head: head, bodyBytes: 0)).map { chosen in
            plan.withLock { $0.counts[chosen, default: 0] += 1 }
            return chosen
        } ?? nextFault()
        let contentLength = Self.header("content-length", in: head).flatMap { Int($0) } ?? 0
        switch fault {
        case .slowDown:
            _ = drain(client, leftover: leftover.count, total: contentLength)
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            writeAll(client, Array("HTTP/1.1 503 Slow Down\r\nRetry-After: 1\r\nContent-Type: application/xml\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8))
            return
        case .reject:
            _ = drain(client, leftover: leftover.count, total: contentLength)
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InvalidRequest</Code><Message>Refused by policy.</Message></Error>"
            writeAll(client, Array("HTTP/1.1 400 Bad Request\r\nContent-Type: application/xml\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)".utf8))
            return
        case .stall:
            // Read nothing and answer nothing: the client's stall timeout must notice.
            Thread.sleep(forTimeInterval: stallSeconds)
            return
        default:
            break
        }
        let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(upstream) }
        var address = Loopback.address(port: upstreamPort)
        guard withUnsafePointer(to: &address, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }) == 0 else { return }
        // One request per connection, so the next request meets the next fault.
        head = head.replacingOccurrences(of: "\r\n\r\n", with: "\r\nConnection: close\r\n\r\n")
        writeAll(upstream, Array(head.utf8))
        if fault == .resetMidBody, contentLength > 0 {
            let half = contentLength / 2
            let first = min(half, leftover.count)
            writeAll(upstream, Array(leftover.prefix(first)))
            _ = relay(from: client, to: upstream, count: half - first)
            // An abrupt reset of both sides, as a dropped uplink looks.
            var linger = linger(l_onoff: 1, l_linger: 0)
            setsockopt(client, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
            setsockopt(upstream, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
            return
        }
        writeAll(upstream, leftover)
        guard relay(from: client, to: upstream, count: contentLength - leftover.count) else { return }
        leftover = []
        let request = Request(head: head, bodyBytes: contentLength)
        passed.withLock { $0.append(request) }
        onRequestSent?(request)
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(upstream, &buffer, buffer.count, 0)
            if count <= 0 { break }
            response += buffer.prefix(count)
            if fault == .truncateResponse, response.count > 40 { break }
            if fault != .truncateResponse, tamperResponse == nil {
                writeAll(client, response)
                response = []
            }
        }
        if fault == .truncateResponse {
            // The first bytes of the status line only: an answer cut short.
            writeAll(client, Array(response.prefix(20)))
        } else if let tamperResponse {
            // The whole answer (the store closes after it), as the test alters it.
            tamperResponse(request, &response)
            writeAll(client, response)
        }
    }

    private func readHead(_ fd: Int32) -> (String, [UInt8])? {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { return nil }
            data += buffer.prefix(count)
            if let end = Self.find([13, 10, 13, 10], in: data) {
                return (String(decoding: data[..<(end + 4)], as: UTF8.self), Array(data[(end + 4)...]))
            }
            if data.count > 1 << 20 { return nil }
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for index in 0...(haystack.count - needle.count) where Array(haystack[index..<index + needle.count]) == needle { return index }
        return nil
    }

    static func header(_ name: String, in head: String) -> String? {
        for line in head.split(separator: "\r\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == name { return parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return nil
    }

    private func drain(_ fd: Int32, leftover: Int, total: Int) -> Bool {
        var remaining = total - leftover
        var buffer = [UInt8](repeating: 0, count: 65536)
        while remaining > 0 {
            let count = recv(fd, &buffer, min(buffer.count, remaining), 0)
            if count <= 0 { return false }
            remaining -= count
        }
        return true
    }

    private func relay(from source: Int32, to destination: Int32, count: Int) -> Bool {
        var remaining = count
        var buffer = [UInt8](repeating: 0, count: 65536)
        while remaining > 0 {
            let got = recv(source, &buffer, min(buffer.count, remaining), 0)
            if got <= 0 { return false }
            writeAll(destination, Array(buffer.prefix(got)))
            remaining -= got
        }
        return true
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return }
            offset += sent
        }
    }
}

/// The proxy's own seeded generator (fault schedules repeat for a seed).
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
