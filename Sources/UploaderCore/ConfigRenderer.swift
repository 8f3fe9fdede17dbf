import Foundation

/// Writes a commented `uploader.toml` for a configuration: what
/// `uploader account import` leaves behind for the admin to read and edit.
/// Keys, order and comments come from `ConfigKeys`.
public enum ConfigRenderer {
    static func quoted(_ text: String) -> String { ConfigKeys.toml(text) }

    public static func render(_ c: Configuration) -> String {
        var text = ConfigKeys.comment([
            "uploader configuration. Check it with `uploader config check`.",
            "Relative paths are resolved against this file's folder.",
        ])
        for section in ConfigKeys.sections where section.rendered {
            text += "\n[\(section.name)]\n" + ConfigKeys.comment(section.doc)
            for key in section.keys {
                text += ConfigKeys.comment(key.doc)
                text += key.render(c).map { "\(key.name) = \($0)\n" } ?? "# \(key.name) = \(key.shown)\n"
            }
        }
        return text + "\n" + renderCategories(c.categories)
    }

    /// `[categories.NAME]` and `[tagging]`, so an account import keeps them.
    static func renderCategories(_ defaults: CategoryDefaults) -> String {
        var text = ""
        for (name, category) in defaults.categories.sorted(by: { $0.key < $1.key }) {
            text += """
                [categories.\(name)]
                retention = \(quoted(category.retentionText))
                lock = \(quoted(category.lockMode.map { $0.rawValue.lowercased() } ?? "none"))
                legal_hold = \(category.legalHold)

                """
        }
        if defaults.siteDefault != nil || !defaults.userDefaults.isEmpty {
            text += "[tagging]\ndefault_category = \(quoted(defaults.siteDefault ?? ""))\n"
            if !defaults.userDefaults.isEmpty {
                text += "[tagging.users]\n" + defaults.userDefaults.sorted { $0.key < $1.key }.map { "\(quoted($0.key)) = \(quoted($0.value))" }.joined(separator: "\n") + "\n"
            }
        }
        return text
    }
}
