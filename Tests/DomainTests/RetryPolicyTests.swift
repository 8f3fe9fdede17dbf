import Foundation
@testable import Ingest
import SystemPackage
import Testing
@testable import UploaderCore

@Suite struct RetryPolicyTests {
    let policy = RetryPolicy(maxAttempts: 5, baseDelay: 1, maxDelay: 30)

    @Test func backoffGrowsAndStaysUnderTheCeiling() {
        var generator = SplitMix64(seed: 3)
        for attempt in 1...10 {
            let ceiling = min(30, pow(2, Double(attempt - 1)))
            for _ in 0..<50 {
                let delay = policy.delay(afterAttempt: attempt, retryAfter: nil, using: &generator)
                #expect(delay >= 0 && delay <= ceiling)
            }
        }
    }

    @Test func retryAfterIsAFloor() {
        var generator = SplitMix64(seed: 4)
        for _ in 0..<50 {
            #expect(policy.delay(afterAttempt: 1, retryAfter: 7, using: &generator) >= 7)
        }
        // A server asking for more than our ceiling still gets what it asked for.
        #expect(policy.delay(afterAttempt: 1, retryAfter: 90, using: &generator) == 90)
    }

    @Test func retryAfterParsesSecondsAndHTTPDates() {
        #expect(RetryPolicy.parseRetryAfter("3") == 3)
        let now = Date(timeIntervalSince1970: 1_795_000_000)
        let later = RetryPolicy.parseRetryAfter("Wed, 18 Nov 2026 11:30:20 GMT", now: now)
        #expect(later.map { abs($0 - 1420) < 1 } == true)
        #expect(RetryPolicy.parseRetryAfter("soon") == nil)
    }
}
