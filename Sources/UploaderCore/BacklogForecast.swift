import Foundation

/// Whether tonight's window will drain the backlog: "412 GB waiting; at 80
/// Mbit/s the window drains 288 GB; 124 GB will still be here at 06:00".
public struct BacklogForecast: Sendable, Codable, Equatable {
    public var waitingBytes: Int64
    /// Measured from recent upload runs, capped by the bandwidth limit; nil before any run.
    public var bytesPerSecond: Double?
    /// The window the forecast is for: the one open now, else the next.
    public var windowStart: Date?
    public var windowEnd: Date?
    public var drainableBytes: Int64?
    public var leftAtWindowEnd: Int64?

    public static func make(waitingBytes: Int64, measuredRate: Double?, schedule: UploadSchedule,
                            bandwidth: BandwidthTimetable, now: Date = Date()) -> BacklogForecast {
        var forecast = BacklogForecast(waitingBytes: waitingBytes, bytesPerSecond: measuredRate)
        guard !schedule.windows.isEmpty, let start = schedule.nextOpening(after: now),
              let end = schedule.openWindowEnd(at: start) else { return forecast }
        forecast.windowStart = start
        forecast.windowEnd = end
        guard let measuredRate else { return forecast }
        // Integrate the rate over the window a minute at a time: the bandwidth cap may change inside it.
        var drainable = 0.0
        var instant = start
        while instant < end {
            let step = min(60, end.timeIntervalSince(instant))
            let cap = bandwidth.bytesPerSecond(at: instant).map(Double.init) ?? .infinity
            drainable += min(measuredRate, cap) * step
            instant = instant.addingTimeInterval(step)
        }
        forecast.drainableBytes = Int64(drainable)
        forecast.leftAtWindowEnd = max(0, waitingBytes - Int64(drainable))
        return forecast
    }

    /// One sentence for `uploader status`.
    public func sentence(formatTime: (Date) -> String) -> String {
        var text = "\(ByteCount.format(waitingBytes)) waiting"
        guard waitingBytes > 0 else { return text }
        guard let rate = bytesPerSecond else { return text + "; no upload rate measured yet" }
        text += "; at \(String(format: "%.1f", rate * 8 / 1_000_000)) Mbit/s"
        if let drainable = drainableBytes, let end = windowEnd, let start = windowStart {
            text += " the window \(formatTime(start))–\(formatTime(end)) drains \(ByteCount.format(drainable))"
            if let left = leftAtWindowEnd, left > 0 {
                text += "; \(ByteCount.format(left)) will still be here at \(formatTime(end))"
            } else {
                text += "; the backlog will be gone by then"
            }
        } else {
            text += " it takes \(Int(Double(waitingBytes) / rate / 60)) min (no upload windows: uploads run any time)"
        }
        return text
    }
}
