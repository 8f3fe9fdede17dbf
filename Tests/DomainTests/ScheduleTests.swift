import Foundation
import Testing
@testable import UploaderCore

@Suite struct ScheduleTests {
    let utc = TimeZone(identifier: "UTC")!

    func date(_ text: String) -> Date { try! Date(text, strategy: Date.ISO8601FormatStyle()) }

    func schedule(_ windows: [String]) -> UploadSchedule {
        UploadSchedule(windows: windows.map { try! UploadSchedule.parseWindow($0).get() }, timeZone: utc)
    }

    @Test func aNightWindowCrossesMidnight() {
        let night = schedule(["22:00-06:00"])
        #expect(night.isOpen(at: date("2026-11-24T23:30:00Z")))
        #expect(night.isOpen(at: date("2026-11-25T05:59:00Z")))
        #expect(!night.isOpen(at: date("2026-11-25T06:00:00Z")))
        #expect(!night.isOpen(at: date("2026-11-25T12:00:00Z")))
        #expect(night.openWindowEnd(at: date("2026-11-24T23:30:00Z")) == date("2026-11-25T06:00:00Z"))
        #expect(night.nextOpening(after: date("2026-11-25T12:00:00Z")) == date("2026-11-25T22:00:00Z"))
    }

    @Test func weekdayWindowsBelongToTheDayTheyStart() {
        // 2026-11-27 is a Friday, 2026-11-28 a Saturday.
        let weekdays = schedule(["Mon-Fri 19:00-06:00", "Sat,Sun 00:00-24:00"])
        #expect(weekdays.isOpen(at: date("2026-11-28T03:00:00Z")))   // Friday night's window, and Saturday's
        #expect(weekdays.isOpen(at: date("2026-11-28T15:00:00Z")))   // Saturday all day
        #expect(!weekdays.isOpen(at: date("2026-11-27T15:00:00Z")))  // Friday afternoon
        #expect(weekdays.nextOpening(after: date("2026-11-27T15:00:00Z")) == date("2026-11-27T19:00:00Z"))
    }

    @Test func noWindowsMeansAlways() {
        #expect(UploadSchedule.always.isOpen(at: Date()))
    }

    @Test(arguments: ["22:00", "25:00-06:00", "Someday 22:00-06:00", "22:00-22:00", "22-06"])
    func badWindowsAreRefused(text: String) {
        #expect(throws: UploaderError.self) { try UploadSchedule.parseWindow(text).get() }
    }

    @Test func theBandwidthTimetableFollowsTheClock() throws {
        let timetable = try BandwidthTimetable.parse("07:00,2M 18:00,10M 22:00,off", timeZone: utc).get()
        #expect(timetable.bytesPerSecond(at: date("2026-11-24T06:59:00Z")) == nil)          // still last night's "off"
        #expect(timetable.bytesPerSecond(at: date("2026-11-24T07:00:00Z")) == 2 << 20)
        #expect(timetable.bytesPerSecond(at: date("2026-11-24T18:30:00Z")) == 10 << 20)
        #expect(timetable.bytesPerSecond(at: date("2026-11-24T23:00:00Z")) == nil)
        #expect(timetable.text == "07:00,2M 18:00,10M 22:00,off")
        #expect(try BandwidthTimetable.parse("512K").get().bytesPerSecond(at: Date()) == 512 << 10)
        #expect(throws: UploaderError.self) { try BandwidthTimetable.parse("07:00,fast").get() }
    }

    @Test func theForecastSaysWhatTheWindowWillLeave() {
        let now = date("2026-11-24T12:00:00Z")
        // 8 hours at 10 MB/s drains 288 GB; 412 GB waiting leaves 124 GB.
        let forecast = BacklogForecast.make(waitingBytes: 412_000_000_000, measuredRate: 10_000_000, schedule: schedule(["22:00-06:00"]),
                                            bandwidth: .unlimited, now: now)
        #expect(forecast.windowStart == date("2026-11-24T22:00:00Z"))
        #expect(forecast.windowEnd == date("2026-11-25T06:00:00Z"))
        #expect(forecast.drainableBytes == 288_000_000_000)
        #expect(forecast.leftAtWindowEnd == 124_000_000_000)
        #expect(forecast.sentence { _ in "06:00" }.contains("at 80.0 Mbit/s"))
        // A bandwidth cap inside the window is honoured: 2 MiB/s from 22:00 to 06:00.
        let capped = BacklogForecast.make(waitingBytes: 412_000_000_000, measuredRate: 10_000_000, schedule: schedule(["22:00-06:00"]),
                                          bandwidth: try! BandwidthTimetable.parse("2M", timeZone: utc).get(), now: now)
        #expect(capped.drainableBytes == Int64(2 << 20) * 8 * 3600)
    }
}
