import Foundation
import Synchronization
import UploaderCore

/// One token bucket shared by every transfer of a process, so the cap is on
/// the station's uplink, not per connection. The rate is looked up in the
/// timetable on every request for bytes, so a change at 07:00 applies to the
/// transfers already running. Blocking: called from curl's read callback on
/// the transfer's own thread.
public final class BandwidthLimiter: Sendable {
    let timetable: BandwidthTimetable
    let unlimited: Bool
    private let bucket = Mutex<(tokens: Double, last: ContinuousClock.Instant)>((0, ContinuousClock.now))
    /// Never more than this many seconds of traffic in one burst.
    static let burstSeconds = 0.25

    public init(timetable: BandwidthTimetable) {
        self.timetable = timetable
        self.unlimited = timetable.isUnlimited
    }

    /// Waits until `bytes` may be sent under the limit in force now.
    public func acquire(_ bytes: Int) {
        if unlimited { return }
        let wait = reserve(bytes, at: ContinuousClock.now, wallClock: Date())
        if wait > 0 { Thread.sleep(forTimeInterval: wait) }
    }

    /// Takes `bytes` from the bucket and returns how long the caller must
    /// wait (seconds) before sending them; separate from the sleeping so the
    /// arithmetic is testable without a clock.
    func reserve(_ bytes: Int, at instant: ContinuousClock.Instant, wallClock: Date) -> Double {
        guard let rate = timetable.bytesPerSecond(at: wallClock).map(Double.init) else { return 0 }
        return bucket.withLock { state in
            let elapsed = Double((instant - state.last).components.attoseconds) / 1e18 + Double((instant - state.last).components.seconds)
            state.last = instant
            state.tokens = min(rate * Self.burstSeconds, state.tokens + max(0, elapsed) * rate)
            state.tokens -= Double(bytes)
            // Tokens owed are paid back by waiting; the next caller sees the debt too.
            return state.tokens >= 0 ? 0 : -state.tokens / rate
        }
    }
}
