import Foundation

/// When uploads may run: a list of windows such as `22:00-06:00` or
/// `Mon-Fri 22:00-06:00`, in this PC's local time. No windows means always.
/// A window that crosses midnight belongs to the day it starts on.
public struct UploadSchedule: Sendable, Equatable {
    public struct Window: Sendable, Equatable, CustomStringConvertible {
        /// 1 = Sunday … 7 = Saturday (Calendar's numbering); empty = every day.
        public var weekdays: Set<Int>
        public var startMinute: Int
        public var endMinute: Int
        public var text: String

        public var description: String { text }
        var lengthMinutes: Int { endMinute > startMinute ? endMinute - startMinute : endMinute + 1440 - startMinute }
    }

    public var windows: [Window]
    public var timeZone: TimeZone

    public init(windows: [Window], timeZone: TimeZone = .current) {
        self.windows = windows
        self.timeZone = timeZone
    }

    public static let always = UploadSchedule(windows: [])

    static let dayNames = ["sun": 1, "mon": 2, "tue": 3, "wed": 4, "thu": 5, "fri": 6, "sat": 7]

    /// Parses one window; the error says what is wrong.
    public static func parseWindow(_ text: String) -> Result<Window, UploaderError> {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard (1...2).contains(parts.count) else { return .failure(UploaderError(.config, "\"\(text)\" is not a window like \"22:00-06:00\" or \"Mon-Fri 22:00-06:00\"")) }
        var weekdays: Set<Int> = []
        if parts.count == 2 {
            for item in parts[0].lowercased().split(separator: ",") {
                let range = item.split(separator: "-").map { String($0.prefix(3)) }
                guard let first = range.first.flatMap({ dayNames[$0] }), let last = (range.last).flatMap({ dayNames[$0] }), range.count <= 2 else {
                    return .failure(UploaderError(.config, "\"\(parts[0])\" is not a list of days like Mon-Fri or Sat,Sun"))
                }
                var day = first
                while true {
                    weekdays.insert(day)
                    if day == last { break }
                    day = day % 7 + 1
                }
            }
        }
        let times = parts.last!.split(separator: "-").map(String.init)
        guard times.count == 2, let start = minutes(times[0]), let end = minutes(times[1]), start != end || start == 0 else {
            return .failure(UploaderError(.config, "\"\(parts.last!)\" is not a time range like 22:00-06:00"))
        }
        return .success(Window(weekdays: weekdays, startMinute: start, endMinute: end == 0 && start == 0 ? 1440 : end, text: text))
    }

    /// "06:30" → 390; "24:00" → 1440.
    static func minutes(_ text: String) -> Int? {
        let fields = text.split(separator: ":")
        guard fields.count == 2, let hours = Int(fields[0]), let minutes = Int(fields[1]),
              (0...24).contains(hours), (0...59).contains(minutes), hours * 60 + minutes <= 1440 else { return nil }
        return hours * 60 + minutes
    }

    var calendar: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        return calendar
    }

    /// The end of the window open at `date`, or nil when none is open.
    public func openWindowEnd(at date: Date) -> Date? {
        if windows.isEmpty { return .distantFuture }
        let calendar = self.calendar
        var latest: Date?
        // A window that started yesterday may still be open.
        for dayOffset in [-1, 0] {
            guard let day = calendar.date(byAdding: .day, value: dayOffset, to: calendar.startOfDay(for: date)) else { continue }
            let weekday = calendar.component(.weekday, from: day)
            for window in windows where window.weekdays.isEmpty || window.weekdays.contains(weekday) {
                let start = day.addingTimeInterval(TimeInterval(window.startMinute * 60))
                let end = start.addingTimeInterval(TimeInterval(window.lengthMinutes * 60))
                if start <= date && date < end { latest = max(latest ?? end, end) }
            }
        }
        return latest
    }

    public func isOpen(at date: Date) -> Bool { openWindowEnd(at: date) != nil }

    /// The next time a window opens after `date` (within a week), or nil when none ever does.
    public func nextOpening(after date: Date) -> Date? {
        if windows.isEmpty || isOpen(at: date) { return date }
        let calendar = self.calendar
        var best: Date?
        for dayOffset in 0...7 {
            guard let day = calendar.date(byAdding: .day, value: dayOffset, to: calendar.startOfDay(for: date)) else { continue }
            let weekday = calendar.component(.weekday, from: day)
            for window in windows where window.weekdays.isEmpty || window.weekdays.contains(weekday) {
                let start = day.addingTimeInterval(TimeInterval(window.startMinute * 60))
                if start > date { best = min(best ?? start, start) }
            }
        }
        return best
    }
}

/// A bandwidth limit that changes with the time of day, written as rclone
/// admins know it: `"07:00,2M 18:00,10M 22:00,off"` (bytes per second, K/M/G
/// are KiB/MiB/GiB; `off` is no limit), or one value such as `"10M"`.
public struct BandwidthTimetable: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var minute: Int
        /// Bytes per second; nil is unlimited.
        public var bytesPerSecond: Int64?
    }

    public var entries: [Entry]
    public var timeZone: TimeZone

    /// No entry limits anything ("off" all day): the hot path skips the clock.
    public var isUnlimited: Bool { entries.allSatisfy { $0.bytesPerSecond == nil } }

    public static let unlimited = BandwidthTimetable(entries: [], timeZone: .current)

    /// The timetable in the configuration's notation.
    public var text: String {
        func rate(_ value: Int64?) -> String {
            guard let value else { return "off" }
            if value % (1 << 30) == 0 { return "\(value >> 30)G" }
            if value % (1 << 20) == 0 { return "\(value >> 20)M" }
            if value % (1 << 10) == 0 { return "\(value >> 10)K" }
            return "\(value)B"
        }
        if entries.isEmpty { return "off" }
        if entries.count == 1, entries[0].minute == 0 { return rate(entries[0].bytesPerSecond) }
        return entries.map { String(format: "%02d:%02d,", $0.minute / 60, $0.minute % 60) + rate($0.bytesPerSecond) }.joined(separator: " ")
    }

    public static func parse(_ text: String, timeZone: TimeZone = .current) -> Result<BandwidthTimetable, UploaderError> {
        let items = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        if items.count == 1, !items[0].contains(",") {
            guard let rate = parseRate(items[0]) else { return .failure(UploaderError(.config, "\"\(items[0])\" is not a rate like 10M or off")) }
            return .success(BandwidthTimetable(entries: [Entry(minute: 0, bytesPerSecond: rate.value)], timeZone: timeZone))
        }
        var entries: [Entry] = []
        for item in items {
            let fields = item.split(separator: ",").map(String.init)
            guard fields.count == 2, let minute = UploadSchedule.minutes(fields[0]), minute < 1440, let rate = parseRate(fields[1]) else {
                return .failure(UploaderError(.config, "\"\(item)\" is not a timetable entry like 07:00,2M or 22:00,off"))
            }
            entries.append(Entry(minute: minute, bytesPerSecond: rate.value))
        }
        return .success(BandwidthTimetable(entries: entries.sorted { $0.minute < $1.minute }, timeZone: timeZone))
    }

    /// 1 TiB/s: above any link a dock has; larger numbers are typing mistakes.
    static let maximumRate: Double = 1_099_511_627_776

    /// `.some(nil)` for off, `.some(n)` for a rate, nil when unreadable.
    static func parseRate(_ text: String) -> (value: Int64?, Void)? {
        if text.lowercased() == "off" { return (nil, ()) }
        var number = text
        var multiplier: Int64 = 1024
        switch text.last?.uppercased() {
        case "B": multiplier = 1; number = String(text.dropLast())
        case "K": multiplier = 1024; number = String(text.dropLast())
        case "M": multiplier = 1024 * 1024; number = String(text.dropLast())
        case "G": multiplier = 1024 * 1024 * 1024; number = String(text.dropLast())
        default: break
        }
        // "inf", "nan" and absurd rates are refused here, before any arithmetic traps on them.
        guard let value = Double(number), value.isFinite, value > 0, value * Double(multiplier) <= maximumRate else { return nil }
        return (max(1, Int64(value * Double(multiplier))), ())
    }

    /// The limit in force at `date`: the last entry at or before that time of
    /// day, else the day's last entry (still in force since yesterday).
    public func bytesPerSecond(at date: Date) -> Int64? {
        guard let last = entries.last, !isUnlimited else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let parts = calendar.dateComponents([.hour, .minute], from: date)
        let minute = (parts.hour ?? 0) * 60 + (parts.minute ?? 0)
        return (entries.last { $0.minute <= minute } ?? last).bytesPerSecond
    }
}
