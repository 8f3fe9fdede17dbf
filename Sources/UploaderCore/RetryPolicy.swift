import Foundation

/// How long to wait before the next attempt: exponential backoff with full
/// jitter, never shorter than a server's `Retry-After`. Whether to retry at
/// all is decided elsewhere (the transport knows what a failure means).
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int
    public var baseDelay: Double
    public var maxDelay: Double

    public init(maxAttempts: Int, baseDelay: Double, maxDelay: Double) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    public init(_ upload: Configuration.Upload) {
        self.init(maxAttempts: upload.maxAttempts, baseDelay: upload.retryBaseDelay, maxDelay: upload.retryMaxDelay)
    }

    /// The delay before attempt `attempt + 1`, where `attempt` starts at 1.
    public func delay<G: RandomNumberGenerator>(afterAttempt attempt: Int, retryAfter: Double?, using generator: inout G) -> Double {
        let ceiling = min(maxDelay, baseDelay * pow(2, Double(max(0, attempt - 1))))
        let jittered = Double.random(in: 0...ceiling, using: &generator)
        guard let retryAfter else { return jittered }
        return min(max(jittered, retryAfter), max(maxDelay, retryAfter))
    }

    public func delay(afterAttempt attempt: Int, retryAfter: Double?) -> Double {
        var generator = SystemRandomNumberGenerator()
        return delay(afterAttempt: attempt, retryAfter: retryAfter, using: &generator)
    }

    /// Parses `Retry-After`: delta-seconds or an HTTP date.
    public static func parseRetryAfter(_ value: String, now: Date = Date()) -> Double? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        if let seconds = Double(trimmed), seconds >= 0 { return seconds }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: trimmed) else { return nil }
        return max(0, date.timeIntervalSince(now))
    }
}
