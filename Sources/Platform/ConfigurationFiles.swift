import Foundation
import UploaderCore

// The domain parses configuration text; reading the files (and asking the
// system for its host name) happens here.

extension ConfigurationLoader {
    public static func load(path: String) throws -> Configuration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw UploaderError(.config, "cannot read the configuration \(path): create it from Config/uploader.toml or run `uploader account import FILE.json`",
                                cause: "\(error)")
        }
        return try parse(text, path: path)
    }

    /// Parses with this machine's host name.
    public static func parse(_ text: String, path: String) throws -> Configuration {
        try parse(text, path: path, hostName: ProcessInfo.processInfo.hostName)
    }
}

extension CameraModels {
    public static func load(path: String) throws -> CameraModels {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw UploaderError(.config, "cannot read the camera models file \(path): copy Config/cameras.toml there, or set [docking] models", cause: "\(error)")
        }
        return try parse(text, path: path)
    }
}
