import Foundation
import Platform
import SystemPackage
import TOMLKit
import UploaderCore

/// An access key pair. `description` never shows the secret, so logging a
/// value of this type by mistake leaks nothing.
public struct Credentials: Sendable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String

    public init(accessKeyID: String, secretAccessKey: String) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
    }

    public var description: String { "Credentials(\(accessKeyID), secret redacted)" }

    public static func load(_ source: Configuration.CredentialSource,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Credentials {
        switch source {
        case .environment:
            guard let key = environment["UPLOADER_ACCESS_KEY_ID"], let secret = environment["UPLOADER_SECRET_ACCESS_KEY"],
                  !key.isEmpty, !secret.isEmpty else {
                throw UploaderError(.credentials, "credentials = \"env\" but UPLOADER_ACCESS_KEY_ID and UPLOADER_SECRET_ACCESS_KEY are not both set: set them in the service's environment")
            }
            return Credentials(accessKeyID: key, secretAccessKey: secret)
        case .file(let path):
            let info: stat
            do { info = try Syscall.status(path) } catch {
                throw UploaderError(.credentials, "cannot read the credentials file \(path): create it (see README, \"Credentials\") or run `uploader account import FILE.json`",
                                    cause: error.summary)
            }
            if info.st_mode & 0o077 != 0 {
                throw UploaderError(.credentials, "the credentials file \(path) is readable by other users: run `chmod 600 \(path)`")
            }
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw UploaderError(.credentials, "cannot read the credentials file \(path): it must belong to the user the agent runs as (`sudo chown uploader \(path)` on a packaged install), mode 0600", cause: "\(error)")
            }
            guard let table = try? TOMLTable(string: text) else {
                throw UploaderError(.credentials, "the credentials file \(path) is not valid TOML: it needs access_key_id = \"…\" and secret_access_key = \"…\"")
            }
            guard let key = table["access_key_id"]?.tomlValue.string, let secret = table["secret_access_key"]?.tomlValue.string,
                  !key.isEmpty, !secret.isEmpty else {
                throw UploaderError(.credentials, "the credentials file \(path) needs both access_key_id = \"…\" and secret_access_key = \"…\"")
            }
            return Credentials(accessKeyID: key, secretAccessKey: secret)
        }
    }
}
