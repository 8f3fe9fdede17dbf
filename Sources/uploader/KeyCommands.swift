import Agent
import Crypto
import ArgumentParser
import Foundation
import Platform
import Spool
import UploaderCore

struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "The spool keys that seal spool copies at rest (AES-256-GCM), and the dock's signing key's fingerprint.",
        discussion: """
        Spool copies are sealed with the keyring's current key ([spool] keyring, made at first run,
        mode 0600). `rotate` adds a key that seals new copies from then on; older keys stay until
        no spool copy on disk needs them, and `uploader purge` then retires them.
        `fingerprint` prints the fingerprint of the dock's custody signing key, for the agency's
        list of trusted keys (`uploader verify-bag --trusted-keys FILE`).
        """,
        subcommands: [KeyListCommand.self, KeyRotateCommand.self, KeyFingerprintCommand.self],
        defaultSubcommand: KeyListCommand.self)
}

struct KeyListCommand: BlockingCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Show the spool keys and how many spool copies each one sealed.")
    @OptionGroup var options: GlobalOptions
    @OptionGroup var display: OutputOptions

    func runBlocking() throws {
        try options.run {
            let configuration = try options.loadConfiguration()
            let ledger = try options.openLedger(configuration)
            let (keyring, keys, clear) = try SpoolKeys.usage(configuration: configuration, ledger: ledger)
            if display.json {
                try Output.json(keys)
                return
            }
            print("Spool encryption: \(configuration.ingest.encryptSpool ? "on" : "OFF ([spool] encryption = false): new copies are written in the clear")")
            guard let keyring else {
                print("Keyring: none yet at \(configuration.ingest.spoolKeyring) (made by the first dock)")
                return
            }
            print("Keyring: \(keyring.path)\(keyring.isCredential ? " (systemd credential)" : "")")
            for key in keys {
                print("  \(key.id)  added \(Timestamps.iso(key.addedAt))  \(key.spoolCopies) spool cop\(key.spoolCopies == 1 ? "y" : "ies")\(key.current ? "  (current: seals new copies)" : "")")
            }
            if clear > 0 { print("  \(clear) spool cop\(clear == 1 ? "y is" : "ies are") in the clear (written before encryption or with it off)") }
        }
    }
}

struct KeyRotateCommand: BlockingCommand {
    static let configuration = CommandConfiguration(commandName: "rotate", abstract: "Add a new spool key: new copies are sealed with it; older keys stay for their copies.")
    @OptionGroup var options: GlobalOptions

    func runBlocking() throws {
        try options.run {
            let configuration = try options.loadConfiguration()
            let ledger = try options.openLedger(configuration)
            let keyring = try SpoolKeys.rotate(configuration: configuration, ledger: ledger)
            print("spool key \(keyring.current.id) now seals new spool copies; \(keyring.entries.count - 1) older key(s) kept until no copy needs them. Back up \(keyring.path).")
        }
    }
}

struct KeyFingerprintCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "fingerprint",
        abstract: "Print the fingerprint of this dock's custody signing key (SHA-256 of the Ed25519 public key).",
        discussion: """
        The line is ready for the agency's trusted-keys file: the evidence custodian collects it from each
        dock, over a channel of the agency's own, and publishes the list that `uploader verify-bag
        --trusted-keys FILE` checks bags against.
        """)
    @OptionGroup var options: GlobalOptions

    func runBlocking() throws {
        try options.run {
            let configuration = try options.loadConfiguration()
            guard let key = try DockKey.existing(configuration) else {
                throw UploaderError(.notFound, "this dock has no signing key yet at \(DockKey.path(configuration)): the first ingest or upload run makes it")
            }
            print("\(key.publicKey.groupedFingerprint)  # dock \(DisplayText.escaped(configuration.hostName))")
        }
    }
}
