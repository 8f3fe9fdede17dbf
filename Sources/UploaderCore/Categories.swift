import Foundation

/// A retention category (`[categories.NAME]`): how long the store must keep
/// a file, whether Object Lock enforces it, and whether it starts on legal hold.
public struct RetentionCategory: Sendable, Equatable, Codable {
    public enum LockMode: String, Sendable, Equatable, Codable {
        case governance = "GOVERNANCE"
        case compliance = "COMPLIANCE"
    }

    public var name: String
    /// Days kept, counted from the recording time; nil: indefinitely (enforced
    /// by a legal hold when the category has a lock mode, since a lock needs a date).
    public var retentionDays: Int?
    public var lockMode: LockMode?
    public var legalHold: Bool

    public init(name: String, retentionDays: Int?, lockMode: LockMode?, legalHold: Bool) {
        self.name = name
        self.retentionDays = retentionDays
        self.lockMode = lockMode
        self.legalHold = legalHold
    }

    /// The date the store must keep a file recorded at `recorded` until, if the category has a lock with a date.
    public func retainUntil(recordedAt recorded: Date) -> Date? {
        guard lockMode != nil, let retentionDays else { return nil }
        return recorded.addingTimeInterval(Double(retentionDays) * 86400)
    }

    /// Whether the object goes on legal hold: asked for, or an indefinite locked category.
    public var holdsLegally: Bool { legalHold || (lockMode != nil && retentionDays == nil) }

    /// "90d", "12w", "2y" (365 days a year) or "indefinite".
    public static func parseRetention(_ text: String) -> Int?? {
        if text == "indefinite" { return .some(nil) }
        let units: [Character: Int] = ["d": 1, "w": 7, "y": 365]
        guard let unit = text.last, let multiplier = units[unit], let amount = Int(text.dropLast()), amount > 0, amount <= 100 * 365 / multiplier else {
            return nil
        }
        return .some(amount * multiplier)
    }

    public var retentionText: String {
        guard let retentionDays else { return "indefinite" }
        return retentionDays % 365 == 0 ? "\(retentionDays / 365)y" : "\(retentionDays)d"
    }
}

/// Which category a file gets when nobody tagged it: the user's default,
/// else the camera model's, else the site's.
public struct CategoryDefaults: Sendable, Equatable {
    public var categories: [String: RetentionCategory] = [:]
    public var siteDefault: String?
    public var userDefaults: [String: String] = [:]

    public init(categories: [String: RetentionCategory] = [:], siteDefault: String? = nil, userDefaults: [String: String] = [:]) {
        self.categories = categories
        self.siteDefault = siteDefault
        self.userDefaults = userDefaults
    }

    /// The category for a file: its own tag, else the defaults, and where it came from.
    public func resolve(tagged: String?, user: String?, modelDefault: String?) -> (category: RetentionCategory, source: String)? {
        if let tagged, let category = categories[tagged] { return (category, "tagged") }
        if let user, let name = userDefaults[user], let category = categories[name] { return (category, "default for user \(user)") }
        if let modelDefault, let category = categories[modelDefault] { return (category, "default for the camera model") }
        if let siteDefault, let category = categories[siteDefault] { return (category, "default for the site") }
        return nil
    }
}

/// Whether the dock deletes from a camera the files the store has verified
/// (`[camera] clear`, overridable per model as `clear` in the models file).
public enum CameraClearPolicy: String, Sendable, Equatable, Codable {
    /// The camera is never written to.
    case never
    /// Files the store confirmed, still the same on the camera, are deleted at a dock.
    case afterVerified = "after-verified"
}
