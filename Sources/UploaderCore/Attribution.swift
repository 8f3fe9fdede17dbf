import Foundation

/// A period during which one user held a (pooled) camera. `until == nil`
/// means "still holds it".
public struct CustodyPeriod: Sendable, Equatable {
    public var user: String
    public var from: Date
    public var until: Date?

    public init(user: String, from: Date, until: Date?) {
        self.user = user
        self.from = from
        self.until = until
    }

    public func covers(_ instant: Date) -> Bool {
        from <= instant && (until.map { instant < $0 } ?? true)
    }
}

public enum Attribution {
    /// The user who held the camera when the file was recorded: the covering
    /// period that started last (a later hand-over wins), else the device's
    /// default user.
    public static func user(recordedAt: Date, periods: [CustodyPeriod], defaultUser: String) -> String {
        periods.filter { $0.covers(recordedAt) }.max { $0.from < $1.from }?.user ?? defaultUser
    }
}

extension CustodyPeriod {
    /// Whether the two periods share an instant (an open end reaches forever).
    public func overlaps(_ other: CustodyPeriod) -> Bool {
        let endsAfterOtherStarts = until.map { $0 > other.from } ?? true
        let otherEndsAfterThisStarts = other.until.map { $0 > from } ?? true
        return endsAfterOtherStarts && otherEndsAfterThisStarts
    }
}
