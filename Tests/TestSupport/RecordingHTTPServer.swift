import Foundation
import Synchronization

/// A tiny HTTP server on 127.0.0.1 that answers 200 to everything and keeps
/// each request's body: the webhook receiver in alert tests.
public final class RecordingHTTPServer: @unchecked Sendable {
    public let port: UInt16
    private let listener: Int32
    private let bodies = Mutex<[String]>([])
    private let heads = Mutex<[String]>([])
    private let received = DispatchSemaphore(value: 0)

    public init() throws {
        (listener, port) = try Loopback.listen()
        Thread { [self] in serve() }.start()
    }

    deinit {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    public var url: String { "http://127.0.0.1:\(port)/hook" }
    public var requests: [String] { bodies.withLock { $0 } }
    /// Each request's line and headers, lowercased.
    public var requestHeads: [String] { heads.withLock { $0 } }

    /// Waits (at most `seconds`) until `count` requests have arrived.
    public func wait(for count: Int, seconds: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while requests.count < count {
            if received.wait(timeout: .now() + max(0, deadline.timeIntervalSinceNow)) == .timedOut { return requests.count >= count }
        }
        return true
    }

    private func serve() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 { return }
            var data: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            var body: String?
            var requestHead = ""
            while body == nil {
                let count = recv(client, &buffer, buffer.count, 0)
                if count <= 0 { break }
                data += buffer.prefix(count)
                let text = String(decoding: data, as: UTF8.self)
                if let split = text.range(of: "\r\n\r\n") {
                    let head = text[..<split.lowerBound].lowercased()
                    let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                        .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                    let rest = String(text[split.upperBound...])
                    requestHead = head
                    if rest.utf8.count >= length { body = rest }
                }
            }
            // Recorded before the reply: a client that has its answer finds its request here.
            if let body {
                heads.withLock { $0.append(requestHead) }
                bodies.withLock { $0.append(body) }
            }
            let reply = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            _ = reply.withCString { send(client, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
            close(client)
            if body != nil { received.signal() }
        }
    }
}
