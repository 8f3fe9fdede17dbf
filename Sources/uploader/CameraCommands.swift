import Agent
import ArgumentParser
import Dock
import Foundation
import Ledger
import Platform
import Spool
import UploaderCore

struct CameraCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "camera",
        abstract: "Give cameras back empty: delete from a camera the files the store has verified.",
        discussion: """
        With [camera] clear = "after-verified" (or a model's clear), each dock deletes from the camera
        exactly the files whose ledger state is verified and that are still the same on the camera:
        same path, size and time, and re-read from the camera to the SHA-256 the store confirmed. The
        dock plans it (as the uploader user); the dock unit's root step makes the volume writable for
        that step only and back; every deletion and every file kept is a custody event.
        """,
        subcommands: [Clear.self, ClearApply.self, ClearRecord.self])

    struct Clear: BlockingCommand {
        static let configuration = CommandConfiguration(
            abstract: "List (--dry-run) or delete the files of camera SERIAL that the store has verified.",
            discussion: """
            With --volume PATH (a camera volume mounted read-write, e.g. from a card reader), checks each
            file on it and deletes those still the same as verified; without --volume, --dry-run lists
            the verified files the next dock would delete if they are still on the camera.
            """)
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The camera's serial.") var serial: String
        @Option(help: "The camera's volume, mounted (read-write to delete).") var volume: String?
        @Flag(help: "Only list what would be deleted.") var dryRun = false
        @OptionGroup var display: OutputOptions

        func validate() throws {
            guard volume != nil || dryRun else {
                throw ValidationError("say where the camera is: --volume PATH (mounted read-write), or --dry-run to list what the next dock would delete")
            }
        }

        func runBlocking() throws {
            try options.run {
                let configuration = try options.loadConfiguration()
                let ledger = try options.openLedger(configuration)
                guard try ledger.device(serial: serial) != nil || !(try ledger.clearableFiles(serial: serial)).isEmpty else {
                    throw UploaderError(.notFound, "no camera \(serial) in the ledger: see `uploader device list`")
                }
                guard let volume else {
                    let files = try ledger.clearableFiles(serial: serial)
                    if display.json { return try Output.json(files.map { ClearPlan.Item(id: $0.id, path: $0.sourcePath, size: $0.sourceSize, modifiedNanoseconds: $0.sourceModifiedNanoseconds, sha256: $0.sha256 ?? "") }) }
                    for file in files { print("would delete #\(file.id) \(DisplayText.escaped(file.sourcePath)) (\(ByteCount.format(file.sourceSize)), verified \(file.verifiedAt.map(Timestamps.iso) ?? "?"), SHA-256 \(file.sha256 ?? ""))") }
                    print("\(files.count) verified file\(files.count == 1 ? "" : "s") of \(serial) would be deleted at the next dock if still unchanged on the camera (policy: \(configuration.cameraClear.rawValue); a model's clear overrides it)")
                    return
                }
                let plan = try CameraClearing.plan(serial: serial, volume: volume, ledger: ledger)
                if dryRun {
                    if display.json { return try Output.json(plan.items) }
                    for item in plan.items { print("would delete #\(item.id) \(DisplayText.escaped(item.path)) (\(ByteCount.format(item.size)), SHA-256 \(item.sha256))") }
                    print("\(plan.items.count) file\(plan.items.count == 1 ? "" : "s") on \(volume) verified in the store and unchanged since: they would be deleted after a re-read")
                    return
                }
                let (result, deleted, kept) = try CameraClearing.clearByHand(plan, volume: volume, configuration: configuration, ledger: ledger)
                if display.json { return try Output.json(result) }
                for item in result.items { print(item.deleted ? "deleted #\(item.id) \(DisplayText.escaped(item.path))" : "kept #\(item.id) \(DisplayText.escaped(item.path)): \(item.kept ?? "")") }
                print("camera \(serial): \(deleted) deleted, \(kept) kept\(result.error.map { "; \($0)" } ?? "")")
            }
        }
    }

    /// The dock unit's root step (ExecStartPost=+): carries out the dock's plan,
    /// trusting none of it but the names it proposes (`ClearingAuthority`).
    struct ClearApply: BlockingCommand {
        static let configuration = CommandConfiguration(
            commandName: "clear-apply",
            abstract: "Carry out a dock's clearing plan for DEVNODE (run as root by uploader-dock@.service).",
            discussion: """
            Never opens the ledger, and takes nothing from the plan (which the uploader user writes) but the
            files it proposes: the policy and the clock file come from the configuration and the camera model
            (the device identified through udev: a partition of a USB disk). It remounts the volume read-write,
            re-reads each file from the camera, deletes it only when the store, asked with the configured
            credentials, holds an object of that SHA-256 and size under the planned key, remounts the volume
            read-only, and leaves the result beside the mount report.
            """)
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The block device, e.g. /dev/sdb1.") var devnode: String

        func runBlocking() throws {
            try options.run {
                let sysname = try DockPartition.sysname(devnode)
                guard Syscall.isRoot else { throw UploaderError(.usage, "uploader camera clear-apply must run as root: it is the dock unit's ExecStartPost=+ step") }
                print(try RootClearStep.apply(devnode: devnode, sysname: sysname, configuration: try options.loadConfiguration()))
            }
        }
    }

    /// The dock unit's last agent step (ExecStartPost=): writes the root step's result to the custody log.
    struct ClearRecord: BlockingCommand {
        static let configuration = CommandConfiguration(
            commandName: "clear-record",
            abstract: "Record in the custody log what clearing DEVNODE's camera did (run by uploader-dock@.service).")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The block device, e.g. /dev/sdb1.") var devnode: String

        func runBlocking() throws {
            try options.run {
                let configuration = try options.loadConfiguration()
                let sysname = (devnode as NSString).lastPathComponent
                print(try RootClearStep.record(devnode: devnode, sysname: sysname, configuration: configuration) { try options.openLedger(configuration) })
            }
        }
    }
}
