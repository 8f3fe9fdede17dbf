import Foundation
import Platform
import UploaderCore

/// `uploader account import`: an evidence-store admin's account file becomes
/// the [store] section of uploader.toml and a 0600 credentials file the
/// agent's user reads. Everything is checked before anything is written.
public enum AccountImport {
    /// What was written.
    public struct Written: Sendable {
        public var configPath: String
        public var credentialsPath: String
        public var endpoint: String
        public var bucket: String
    }

    /// Reads the account `file` and rewrites the configuration at `configPath`
    /// (its settings outside [store] kept, the old file saved as .bak); the
    /// credentials go to `credentialsPath`, else beside the configuration.
    public static func apply(file: String, configPath: String, credentialsPath credentials: String?) throws -> Written {
        let account = try readAccount(file)
        // Absolute paths: a relative --config must not turn into a credentials
        // path that resolves against the configuration's folder a second time.
        let configPath = absolute(configPath)
        let folder = (configPath as NSString).deletingLastPathComponent
        let credentialsPath = absolute(credentials ?? (folder as NSString).appendingPathComponent("credentials"))
        guard let addressing = Configuration.Addressing(rawValue: account.addressing ?? "path") else {
            throw UploaderError(.config, "the account file \(file) has addressing \"\(account.addressing ?? "")\"; it must be \"path\" or \"virtual-hosted\": nothing was changed")
        }

        var base: Configuration
        if FileManager.default.fileExists(atPath: configPath) {
            base = try ConfigurationLoader.load(path: configPath)
        } else {
            base = try ConfigurationLoader.parse("""
                [store]
                endpoint = "https://placeholder.invalid"
                bucket = "placeholder"
                credentials = "env"
                """, path: configPath)
            base.spoolDirectory = "/var/spool/uploader"
            base.stateDirectory = "/var/lib/uploader"
        }
        base.store.endpoint = account.endpoint
        base.store.region = account.region ?? "us-east-1"
        base.store.bucket = account.bucket
        base.store.prefix = account.prefix ?? ""
        base.store.addressing = addressing
        base.store.credentials = .file(credentialsPath)

        // Everything is checked before anything is written: a refused import
        // leaves the working configuration and credentials as they were.
        let rendered = ConfigRenderer.render(base)
        do {
            _ = try ConfigurationLoader.parse(rendered, path: configPath)
        } catch let error as UploaderError where !error.problems.isEmpty {
            throw UploaderError(.config, "the account file \(file) does not make a valid configuration (\(error.problems.map(\.description).joined(separator: "; "))): nothing was changed")
        }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        if FileManager.default.fileExists(atPath: configPath) {
            try? FileManager.default.removeItem(atPath: configPath + ".bak")
            try FileManager.default.copyItem(atPath: configPath, toPath: configPath + ".bak")
        }
        try SideFile.write(Data("""
            # Written by `uploader account import` from \(file). Keep this file mode 0600.
            access_key_id = "\(account.accessKeyID)"
            secret_access_key = "\(account.secretAccessKey)"

            """.utf8), to: credentialsPath, mode: 0o600)
        // Root writes the files, the agent's user (the owner of the state
        // folder) reads the credentials: give them to that user.
        if Syscall.isRoot {
            do {
                try Syscall.giveToOwner(of: base.stateDirectory, credentialsPath)
            } catch {
                let owner = Syscall.owner(of: base.stateDirectory).map { "\($0.uid)" } ?? "?"
                throw UploaderError(.io, "cannot give \(credentialsPath) to the agent's user (uid \(owner)): run `chown \(owner) \(credentialsPath)`", cause: "\(error)")
            }
        }
        try Data(rendered.utf8).write(to: URL(fileURLWithPath: configPath), options: .atomic)
        return Written(configPath: configPath, credentialsPath: credentialsPath, endpoint: account.endpoint, bucket: account.bucket)
    }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
    }

    static func readAccount(_ file: String) throws -> AccountFile {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: file))
        } catch {
            throw UploaderError(.config, "cannot read the account file \(file): check the path", cause: "\(error)")
        }
        let account: AccountFile
        do {
            account = try JSONDecoder().decode(AccountFile.self, from: data)
        } catch DecodingError.keyNotFound(let key, _) {
            throw UploaderError(.config, "the account file \(file) has no \"\(key.stringValue)\": ask the store admin for a complete file")
        } catch {
            throw UploaderError(.config, "the account file \(file) is not a valid uploader account file (JSON with endpoint, bucket, access_key_id, secret_access_key)", cause: "\(error)")
        }
        guard account.format == AccountFile.formatName else {
            throw UploaderError(.config, "the account file \(file) has format \"\(account.format)\"; this uploader reads \"\(AccountFile.formatName)\"")
        }
        // A control character would land in the credentials file or the configuration (a NUL, a CR, a
        // tab the TOML reader keeps): the store would refuse every request, long after "wrote …".
        for (name, value) in [("endpoint", account.endpoint), ("region", account.region ?? ""), ("bucket", account.bucket),
                              ("prefix", account.prefix ?? ""), ("access_key_id", account.accessKeyID), ("secret_access_key", account.secretAccessKey)]
            where DisplayText.containsInvisibleCharacters(value) {
            throw UploaderError(.config, "the account file \(file) has a control or invisible character in its \(name): ask the store admin for a clean file; nothing was changed")
        }
        for (name, value) in [("access_key_id", account.accessKeyID), ("secret_access_key", account.secretAccessKey)]
            where value.contains("\"") || value.contains("\\") || value.contains("\n") {
            throw UploaderError(.config, "the account file \(file) has an unusable \(name) (quotes, backslashes or line breaks)")
        }
        return account
    }
}

/// The account connection file an evidence-store admin hands out.
struct AccountFile: Codable {
    static let formatName = "uploader-account-v1"
    var format: String
    var endpoint: String
    var region: String?
    var bucket: String
    var prefix: String?
    var addressing: String?
    var accessKeyID: String
    var secretAccessKey: String

    enum CodingKeys: String, CodingKey {
        case format, endpoint, region, bucket, prefix, addressing
        case accessKeyID = "access_key_id"
        case secretAccessKey = "secret_access_key"
    }
}
