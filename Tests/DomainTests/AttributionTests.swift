import Foundation
@testable import Ingest
import SystemPackage
import Testing
@testable import UploaderCore

@Suite struct AttributionTests {
    let start = Date(timeIntervalSince1970: 1_795_000_000)

    @Test func aPooledCameraFileGoesToWhoeverHeldItAtRecordingTime() {
        let periods = [
            CustodyPeriod(user: "day-shift", from: start, until: start + 12 * 3600),
            CustodyPeriod(user: "night-shift", from: start + 12 * 3600, until: start + 24 * 3600),
        ]
        #expect(Attribution.user(recordedAt: start + 3600, periods: periods, defaultUser: "pool") == "day-shift")
        #expect(Attribution.user(recordedAt: start + 12 * 3600, periods: periods, defaultUser: "pool") == "night-shift")
        #expect(Attribution.user(recordedAt: start + 30 * 3600, periods: periods, defaultUser: "pool") == "pool")
    }

    @Test func aLaterOpenEndedHandOverWins() {
        let periods = [
            CustodyPeriod(user: "first", from: start, until: nil),
            CustodyPeriod(user: "second", from: start + 100, until: nil),
        ]
        #expect(Attribution.user(recordedAt: start + 50, periods: periods, defaultUser: "pool") == "first")
        #expect(Attribution.user(recordedAt: start + 500, periods: periods, defaultUser: "pool") == "second")
    }
}
