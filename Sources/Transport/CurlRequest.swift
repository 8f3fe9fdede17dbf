internal import CCurl
import Crypto
import Foundation
import SystemPackage
import UploaderCore
import Platform

/// What a request sends as its body.
enum RequestBody {
    case none
    case bytes([UInt8])
    /// `length` bytes from `offset` of a file read by position (a spool copy,
    /// opened chunk by chunk as it streams when it is sealed).
    case file(any PositionalReader, offset: Int64, length: Int64)
}

/// What came back: status, headers (lowercased names) and a small body
/// (S3's XML answers; capped, since a media body is never read into memory).
struct HTTPResponse: Sendable {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]

    var bodyText: String { String(decoding: body, as: UTF8.self) }
}

extension UploaderError {
    /// A failure below HTTP (connection, TLS, timeout), or the transfer
    /// aborted on purpose: a stop was asked for, or our own file could not be read.
    static func transfer(_ code: CURLcode, text: String, localReadError: String? = nil, stopped: Bool = false) -> UploaderError {
        let underlying = Underlying.curl(code: Int(code.rawValue), text: text)
        if stopped {
            return UploaderError(.stopped, "the transfer was stopped; it resumes on the next run", underlying: underlying)
        }
        if let localReadError {
            return UploaderError(.spoolCorrupted, "reading the spool file failed: \(localReadError)", underlying: underlying)
        }
        if tlsCodes.contains(code.rawValue) {
            return UploaderError(.storeTLS, "the evidence store's TLS connection could not be trusted (\(text)): check [store] endpoint and ca_bundle, or this PC's CA certificates; the files wait and the next run tries again", underlying: underlying)
        }
        let transient: Bool
        switch code {
        // CURLE_SEND_FAIL_REWIND: a kept-alive connection died under a request with a body (the
        // store restarted) and libcurl could not resend it on a fresh one; the next attempt can.
        case CURLE_COULDNT_CONNECT, CURLE_OPERATION_TIMEDOUT, CURLE_SEND_ERROR, CURLE_RECV_ERROR,
             CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY,
             CURLE_SSL_CONNECT_ERROR, CURLE_HTTP2, CURLE_HTTP2_STREAM, CURLE_WEIRD_SERVER_REPLY, CURLE_AGAIN,
             CURLE_SEND_FAIL_REWIND:
            transient = true
        default:
            transient = false
        }
        return UploaderError(transient ? .storeUnavailable : .storeRejected,
                             "the evidence store cannot be reached (curl-\(code.rawValue): \(text)): check the network and [store] endpoint with `uploader store check`",
                             underlying: underlying)
    }

    /// libcurl's TLS failures: handshake (35), certificate problems (51, 58, 60, 77, 83, 90, 91), cipher (59).
    private static let tlsCodes: Set<UInt32> = [35, 51, 58, 59, 60, 77, 83, 90, 91]
}

/// Settings shared by every request to one store.
struct CurlSettings: Sendable {
    var region: String
    var accessKeyID: String
    var secretAccessKey: String
    var connectTimeout: Int
    var stallTimeout: Int
    var caBundle: String?
}

/// Per-transfer state reachable from curl's C callbacks.
final class TransferContext {
    var body: RequestBody
    var sent: Int64 = 0
    var readError: String?
    var responseBody: [UInt8] = []
    var responseLimit = 1 << 20
    var responseSink: ((UnsafeRawBufferPointer) -> Void)?
    var headers: [String: String] = [:]
    var progress: ((Int64) -> Void)?
    var limiter: BandwidthLimiter?
    var stop: StopFlag?
    var stoppedByRequest = false
    /// The SHA-256 a file body must have: hashed as it is read, and the
    /// transfer aborted before its last byte leaves if it differs, so a
    /// damaged spool copy is never completed even on a store that does not
    /// check the checksum it is sent.
    var bodyHasher: SHA256Hasher?
    var bodySHA256: SHA256Digest?

    init(body: RequestBody) {
        self.body = body
    }

    static func from(userData: UnsafeMutableRawPointer?) -> TransferContext {
        Unmanaged<TransferContext>.fromOpaque(userData!).takeUnretainedValue()
    }
}

/// One libcurl easy handle. Blocking: `perform` runs on the calling thread,
/// which is always one of the uploader's own threads, never the cooperative pool.
/// Not Sendable: a handle belongs to one worker thread.
/// A JSON POST (alert webhooks) through the same libcurl settings as the
/// store's requests: http/https only, TLS 1.2 at least. Returns the HTTP status.
public enum WebhookPost {
    public static func send(_ body: [UInt8], to url: String, connectTimeout: Int, stallTimeout: Int, caBundle: String?) throws -> Int {
        let settings = CurlSettings(region: "", accessKeyID: "", secretAccessKey: "", connectTimeout: connectTimeout,
                                    stallTimeout: stallTimeout, caBundle: caBundle)
        do {
            return try CurlEasy().perform(method: "POST", url: url, headers: ["Content-Type": "application/json"],
                                          body: .bytes(body), settings: settings).status
        } catch let error as UploaderError {
            // A webhook is not the evidence store: say what libcurl said, not the store's advice.
            throw UploaderError(.io, error.cause ?? error.message, underlying: error.underlying)
        }
    }
}

final class CurlEasy {
    private let handle: UnsafeMutableRawPointer
    /// libcurl writes its error text here during a transfer: memory of our own that
    /// lives as long as the handle (a Swift array's storage may not outlive the call that lent it).
    private let errorBuffer: UnsafeMutablePointer<CChar> = {
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        buffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        return buffer
    }()

    /// `UPLOADER_CURL_VERBOSE=1` prints libcurl's request trace (never the secret) to stderr.
    private static let verbose = ProcessInfo.processInfo.environment["UPLOADER_CURL_VERBOSE"] == "1"

    private static let globalInit: Void = {
        // OpenSSL first, so libcurl's own initialisation of it does not register its exit-time cleanup.
        OpenSSLLibrary.prepare()
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
    }()

    init() {
        _ = Self.globalInit
        guard let handle = curl_easy_init() else { fatalError("curl_easy_init failed: out of memory") }
        self.handle = handle
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// Sends one signed request and waits for the answer.
    func perform(method: String, url: String, headers: [String: String], body: RequestBody,
                 settings: CurlSettings, responseSink: ((UnsafeRawBufferPointer) -> Void)? = nil,
                 progress: ((Int64) -> Void)? = nil, limiter: BandwidthLimiter? = nil, stop: StopFlag? = nil,
                 bodySHA256: SHA256Digest? = nil) throws -> HTTPResponse {
        BlockingCallCheck.assertNotInTask("curl \(method)")
        curl_easy_reset(handle)
        let context = TransferContext(body: body)
        if let bodySHA256, case .file = body {
            context.bodyHasher = SHA256Hasher()
            context.bodySHA256 = bodySHA256
        }
        context.responseSink = responseSink
        context.progress = progress
        context.limiter = limiter
        context.stop = stop
        let unmanaged = Unmanaged.passRetained(context)
        defer { unmanaged.release() }
        let userData = unmanaged.toOpaque()

        var list: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(list) }
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
            list = curl_slist_append(list, "\(name): \(value)")
        }
        // libcurl would otherwise add a form content type to POSTs.
        if method == "POST", headers["Content-Type"] == nil { list = curl_slist_append(list, "Content-Type: application/xml") }

        try check(uploader_curl_setopt_string(handle, CURLOPT_URL, url))
        try check(uploader_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        try check(uploader_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT, settings.connectTimeout))
        try check(uploader_curl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1024))
        try check(uploader_curl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, settings.stallTimeout))
        try check(uploader_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0))
        // Evidence goes over http(s) only (the configuration allows plain http for
        // this machine alone), and never over anything older than TLS 1.2.
        try check(uploader_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https"))
        try check(uploader_curl_setopt_string(handle, CURLOPT_REDIR_PROTOCOLS_STR, "https"))
        try check(uploader_curl_setopt_long(handle, CURLOPT_SSLVERSION, Int(CURL_SSLVERSION_TLSv1_2)))
        if !settings.accessKeyID.isEmpty {
            try check(uploader_curl_setopt_string(handle, CURLOPT_AWS_SIGV4, "aws:amz:\(settings.region):s3"))
            try check(uploader_curl_setopt_string(handle, CURLOPT_USERNAME, settings.accessKeyID))
            try check(uploader_curl_setopt_string(handle, CURLOPT_PASSWORD, settings.secretAccessKey))
        }
        if let caBundle = settings.caBundle { try check(uploader_curl_setopt_string(handle, CURLOPT_CAINFO, caBundle)) }
        try check(uploader_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, list))
        if Self.verbose { try check(uploader_curl_setopt_long(handle, CURLOPT_VERBOSE, 1)) }
        // Large reads from the spool: fewer callbacks and syscalls per part (libcurl's default is 64 KiB).
        try check(uploader_curl_setopt_long(handle, CURLOPT_UPLOAD_BUFFERSIZE, 1 << 20))
        try check(uploader_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer)))

        try check(uploader_curl_setopt_data_callback(handle, CURLOPT_HEADERFUNCTION, { buffer, size, count, userData in
            let context = TransferContext.from(userData: userData)
            let line = String(decoding: UnsafeRawBufferPointer(start: buffer, count: size * count), as: UTF8.self)
            if line.hasPrefix("HTTP/") { context.headers = [:] }
            if let colon = line.firstIndex(of: ":") {
                let name = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
                context.headers[name] = value
            }
            return size * count
        }))
        try check(uploader_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, userData))
        try check(uploader_curl_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION, { buffer, size, count, userData in
            let context = TransferContext.from(userData: userData)
            let bytes = UnsafeRawBufferPointer(start: buffer, count: size * count)
            if let sink = context.responseSink {
                sink(bytes)
            } else if context.responseBody.count < context.responseLimit {
                context.responseBody.append(contentsOf: bytes.prefix(context.responseLimit - context.responseBody.count))
            }
            return size * count
        }))
        try check(uploader_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, userData))

        switch method {
        case "PUT":
            try check(uploader_curl_setopt_long(handle, CURLOPT_UPLOAD, 1))
        case "HEAD":
            try check(uploader_curl_setopt_long(handle, CURLOPT_NOBODY, 1))
        case "GET":
            break
        case "POST":
            try check(uploader_curl_setopt_long(handle, CURLOPT_POST, 1))
        default:
            try check(uploader_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method))
        }

        switch body {
        case .none:
            if method == "PUT" { try check(uploader_curl_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, 0)) }
            if method == "POST" { try check(uploader_curl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, 0)) }
        case .bytes(let bytes):
            if method == "POST" {
                try check(uploader_curl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(bytes.count)))
                try bytes.withUnsafeBytes { raw in
                    try check(uploader_curl_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress)))
                }
            } else {
                try setStreamingBody(length: Int64(bytes.count), method: method, userData: userData)
            }
        case .file(_, _, let length):
            try setStreamingBody(length: length, method: method, userData: userData)
        }
        if progress != nil {
            try check(uploader_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0))
            try check(uploader_curl_setopt_xferinfo_callback(handle, { userData, _, _, _, uploaded in
                TransferContext.from(userData: userData).progress?(Int64(uploaded))
                return 0
            }))
            try check(uploader_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, userData))
        }

        errorBuffer[0] = 0
        let result = curl_easy_perform(handle)
        if result != CURLE_OK {
            let detail = String(cString: errorBuffer)
            throw UploaderError.transfer(result, text: detail.isEmpty ? String(cString: curl_easy_strerror(result)) : detail,
                                         localReadError: context.readError, stopped: context.stoppedByRequest)
        }
        var status = 0
        _ = uploader_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: context.headers, body: context.responseBody)
    }

    private func setStreamingBody(length: Int64, method: String, userData: UnsafeMutableRawPointer) throws {
        if method == "PUT" {
            try check(uploader_curl_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(length)))
        } else {
            try check(uploader_curl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(length)))
        }
        try check(uploader_curl_setopt_data_callback(handle, CURLOPT_READFUNCTION, { buffer, size, count, userData in
            let context = TransferContext.from(userData: userData)
            let capacity = size * count
            switch context.body {
            case .none:
                return 0
            case .bytes(let bytes):
                let take = min(capacity, bytes.count - Int(context.sent))
                guard take > 0, let buffer else { return 0 }
                bytes.withUnsafeBytes { raw in
                    UnsafeMutableRawPointer(buffer).copyMemory(from: raw.baseAddress! + Int(context.sent), byteCount: take)
                }
                context.sent += Int64(take)
                return take
            case .file(let reader, let offset, let length):
                let want = Int(min(Int64(capacity), length - context.sent))
                guard want > 0, let buffer else { return 0 }
                if context.stop?.isRequested == true {
                    context.stoppedByRequest = true
                    return uploader_curl_readfunc_abort()
                }
                context.limiter?.acquire(want)
                do {
                    let got = try reader.read(into: UnsafeMutableRawBufferPointer(start: buffer, count: want), at: offset + context.sent)
                    // A spool file shorter than the ledger says is a damaged spool, not a network error.
                    if got == 0 {
                        context.readError = "the spool copy ends before the size the ledger records"
                        return uploader_curl_readfunc_abort()
                    }
                    context.sent += Int64(got)
                    if let hasher = context.bodyHasher {
                        hasher.update(UnsafeRawBufferPointer(start: buffer, count: got))
                        if context.sent == length, hasher.finalize() != context.bodySHA256 {
                            context.readError = "the bytes read from the spool copy do not match the SHA-256 taken from the camera"
                            return uploader_curl_readfunc_abort()
                        }
                    }
                    return got
                } catch {
                    context.readError = (error as? UploaderError)?.message ?? (error as? Errno)?.summary ?? "\(error)"
                    return uploader_curl_readfunc_abort()
                }
            }
        }))
        try check(uploader_curl_setopt_pointer(handle, CURLOPT_READDATA, userData))
    }

    private func check(_ code: CURLcode) throws {
        if code != CURLE_OK {
            throw UploaderError.transfer(code, text: String(cString: curl_easy_strerror(code)))
        }
    }
}
