import ArgumentParser
import Foundation
import Platform
import Transport
import UploaderCore

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Check the configuration.", subcommands: [Check.self, Keys.self])

    struct Check: BlockingCommand {
        static let configuration = CommandConfiguration(abstract: "Validate uploader.toml and report every problem with its line and key.")
        @OptionGroup var options: GlobalOptions

        func runBlocking() throws {
            try options.run {
                let configuration = try options.loadConfiguration()
                // The credentials are part of a working configuration, but never printed.
                let credentials = try Credentials.load(configuration.store.credentials)
                print("\(configuration.sourcePath): OK")
                print("  store: \(configuration.store.endpoint) bucket \(configuration.store.bucket) (\(configuration.store.addressing.rawValue) addressing), key \(configuration.store.keyTemplate)")
                print("  credentials: access key \(credentials.accessKeyID) from \(describe(configuration.store.credentials))")
                print("  spool: \(configuration.spoolDirectory)  ledger: \(configuration.ledgerPath)")
                print("  uploads: part size \(ByteCount.format(configuration.upload.partSize)), \(configuration.upload.concurrency) at a time, \(configuration.upload.maxAttempts) attempts per run")
            }
        }

        func describe(_ source: Configuration.CredentialSource) -> String {
            switch source {
            case .environment: "the environment"
            case .file(let path): path
            }
        }
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

struct AccountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "account", abstract: "Load an evidence-store account connection file.", subcommands: [Import.self])

    struct Import: BlockingCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write uploader.toml and a 0600 credentials file from an account connection file (JSON).",
            discussion: """
            The file looks like:
              {"format": "uploader-account-v1", "endpoint": "https://s3.example.gov", "region": "us-east-1",
               "bucket": "evidence", "prefix": "springfield-pd", "addressing": "path",
               "access_key_id": "AK…", "secret_access_key": "…"}
            Settings of an existing uploader.toml outside [store] are kept; the old file is saved as uploader.toml.bak.
            """)
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The account connection file (JSON).") var file: String
        @Option(help: "Where to write the credentials (default: 'credentials' beside the configuration).") var credentials: String?

        func runBlocking() throws {
            try options.run {
                let account = try readAccount()
                // Absolute paths: a relative --config must not turn into a credentials
                // path that resolves against the configuration's folder a second time.
                let configPath = Self.absolute(options.configPath)
                let folder = (configPath as NSString).deletingLastPathComponent
                let credentialsPath = Self.absolute(credentials ?? (folder as NSString).appendingPathComponent("credentials"))
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
                try writePrivately(credentialsPath, """
                    # Written by `uploader account import` from \(file). Keep this file mode 0600.
                    access_key_id = "\(account.accessKeyID)"
                    secret_access_key = "\(account.secretAccessKey)"

                    """)
                // Root writes the files, the agent's user (the owner of the state
                // folder) reads the credentials: give them to that user.
                if geteuid() == 0 {
                    var state = stat()
                    if stat(base.stateDirectory, &state) == 0, state.st_uid != 0 {
                        guard chown(credentialsPath, state.st_uid, state.st_gid) == 0 else {
                            throw UploaderError(.io, "cannot give \(credentialsPath) to the agent's user (uid \(state.st_uid)): run `chown \(state.st_uid) \(credentialsPath)`")
                        }
                    }
                }
                try Data(rendered.utf8).write(to: URL(fileURLWithPath: configPath), options: .atomic)
                print("wrote \(configPath) (store \(account.endpoint), bucket \(account.bucket)) and \(credentialsPath) (mode 0600, readable by the agent's user only)")
                print("next: `uploader config check` and `uploader store check`")
            }
        }

        static func absolute(_ path: String) -> String {
            path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
        }

        func readAccount() throws -> AccountFile {
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

        /// Creates the file with mode 0600 from the start, so the secret is never readable by others.
        func writePrivately(_ path: String, _ text: String) throws {
            let temporary = path + ".tmp"
            try? FileManager.default.removeItem(atPath: temporary)
            guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw UploaderError(.io, "cannot write \(path): check that this user may write to its folder")
            }
            guard rename(temporary, path) == 0 else {
                throw UploaderError(.io, "cannot write \(path): check that this user may write to its folder")
            }
        }
    }
}
