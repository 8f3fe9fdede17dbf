import Foundation
import UploaderCore

// The domain parses configuration text; reading the files (and asking the
// system for its host name) happens here.

extension ConfigurationLoader {
    public static func load(path: String) throws -> Configuration {
        try parse(try readConfigurationText(path, what: "the configuration",
                                            fix: "create it from Config/uploader.toml or run `uploader account import FILE.json`"),
                  path: path)
    }

    /// Parses with this machine's host name.
    public static func parse(_ text: String, path: String) throws -> Configuration {
        try parse(text, path: path, hostName: ProcessInfo.processInfo.hostName)
    }
}

extension CameraModels {
    public static func load(path: String) throws -> CameraModels {
        try parse(try readConfigurationText(path, what: "the camera models file",
                                            fix: "copy Config/cameras.toml there, or set [docking] models"),
                  path: path)
    }
}

/// Reads a small configuration file whole, with one clear error when it cannot.
func readConfigurationText(_ path: String, what: String, fix: String) throws -> String {
    do {
        return try String(contentsOfFile: path, encoding: .utf8)
    } catch {
        throw UploaderError(.config, "cannot read \(what) \(path): \(fix)", cause: "\(error)")
    }
}
