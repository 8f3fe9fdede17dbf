/// Text from outside (camera file names, serials, store answers) made safe
/// to print: control characters and other invisible or line-breaking
/// characters become `\u{…}` escapes, so a name can neither move the cursor,
/// recolour a terminal nor forge a second log line.
public enum DisplayText {
    public static func escaped(_ text: String) -> String {
        escaping(text, backslashes: true)
    }

    /// For output to a terminal: only invisible and control characters are
    /// escaped (text stored escaped already stays as it is).
    public static func terminalSafe(_ text: String) -> String {
        escaping(text, backslashes: false)
    }

    private static func escaping(_ text: String, backslashes: Bool) -> String {
        guard text.unicodeScalars.contains(where: { needsEscape($0) || (backslashes && $0 == "\\") }) else { return text }
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            if needsEscape(scalar) {
                result += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else if backslashes, scalar == "\\" {
                result += "\\\\"
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned:
            return true
        default:
            return false
        }
    }

    /// Whether the text holds a control, invisible or line-breaking character
    /// (what `escaped` would spell out): never acceptable in a secret or a setting.
    public static func containsInvisibleCharacters(_ text: String) -> Bool {
        text.unicodeScalars.contains(where: needsEscape)
    }

    /// Refuses (exit 2) a serial, user, name or similar value `problemWithIdentifier` finds fault with.
    public static func checkIdentifier(_ value: String, _ what: String) throws {
        if let problem = problemWithIdentifier(value, what: what) {
            throw UploaderError(.usage, problem + ": give a printable value")
        }
    }

    /// Whether a user id, serial or similar value is acceptable: not empty,
    /// no control or invisible characters, no leading or trailing space.
    public static func problemWithIdentifier(_ value: String, what: String) -> String? {
        if value.isEmpty { return "\(what) must not be empty" }
        if value.unicodeScalars.contains(where: needsEscape) {
            return "\(what) \"\(escaped(value))\" contains control or invisible characters"
        }
        if value.first!.isWhitespace || value.last!.isWhitespace {
            return "\(what) \"\(value)\" starts or ends with a space"
        }
        if value.utf8.count > 128 { return "\(what) is longer than 128 bytes" }
        return nil
    }
}
