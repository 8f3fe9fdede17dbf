import Agent
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
                let written = try AccountImport.apply(file: file, configPath: options.configPath, credentialsPath: credentials)
                print("wrote \(written.configPath) (store \(written.endpoint), bucket \(written.bucket)) and \(written.credentialsPath) (mode 0600, readable by the agent's user only)")
                print("next: `uploader config check` and `uploader store check`")
            }
        }
    }
}
