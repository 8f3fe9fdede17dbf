import ArgumentParser
import Agent
import Dock
import Foundation
import Ingest
import Ledger
import Logging
import ServiceLifecycle
import Synchronization
import Transport
import UploaderCore
import Platform

struct DockCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "dock",
        abstract: "Ingest the camera whose file system is DEVNODE, mounted read-only by its dock unit.",
        discussion: """
        Run by uploader-dock@.service (as the uploader user) when udev sees a supported camera;
        the unit mounts the volume before (`uploader mount`) and unmounts it after (`uploader
        unmount`), as root. To dock by hand: systemctl start uploader-dock@sdb1.service. Exit
        status: 0 all secured; 1 some files held back or failed; 3 interrupted (camera removed,
        spool full: the next dock resumes); 5 not a supported camera (nothing touched); 6 a
        supported camera that could not be read (no serial, file system, or mount).
        """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "The block device, e.g. /dev/sdb1.") var devnode: String
    @OptionGroup var display: OutputOptions

    func runBlocking() throws {
        var exitCode: Int32 = 0
        try options.run {
            let configuration = try options.loadConfiguration()
            let models = try CameraModels.load(path: configuration.docking.modelsPath)
            let ledger = try options.openLedger(configuration)
            let device = try DockRunner.dockedDevice(devnode, ledger: ledger)
            let runner = DockRunner(configuration: configuration, models: models, ledger: ledger,
                                    mounter: PreparedMounts(mountRoot: configuration.docking.mountRoot), logger: Logger(label: "uploader.dock"))
            TerminationSignals.install()
            let outcome = runner.dock(device, stop: TerminationSignals.flag)
            if display.json { try Output.json(outcome) } else { print("dock \(devnode): \(outcome.result.rawValue): \(DisplayText.terminalSafe(outcome.message))") }
            exitCode = outcome.exitCode
        }
        if exitCode != 0 { throw ExitCode(exitCode) }
    }
}

struct DaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Run the agent: have docked cameras ingested, upload inside the windows, housekeeping. Stops gracefully on SIGTERM.",
        discussion: """
        Run by uploader.service as the uploader user. For every supported camera docked (and
        those docked before it started) it starts uploader-dock@DEVICE.service, which the
        package's polkit rule allows; udev starts the same units on its own.
        """)
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        // Loading reads files and opens SQLite: on a thread of its own, then the
        // daemon's services run on Swift's executors.
        let loaded = await BlockingThread.run(name: "uploader.daemon-load") { [options] in
            Result { () throws -> (Configuration, CameraModels, Ledger) in
                var loaded: (Configuration, CameraModels, Ledger)?
                try options.run {
                    let configuration = try options.loadConfiguration()
                    loaded = (configuration, try CameraModels.load(path: configuration.docking.modelsPath), try options.openLedger(configuration))
                }
                return loaded!
            }
        }
        let (configuration, models, ledger) = try loaded.get()
        try await AgentDaemon(configuration: configuration, models: models, ledger: ledger,
                              logger: Logger(label: "uploader.daemon")).run()
    }
}

/// The dock unit's privileged steps. They read the configuration and udev
/// but never the ledger or the spool, so nothing of the agent's becomes
/// owned by root; what they did is left in a `MountReport` for the dock.
struct MountCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount a docked camera's volume read-only for its dock (run as root by uploader-dock@.service).",
        discussion: """
        Mounts DEVNODE at [docking] mount_root/DEVICE with ro,nosuid,nodev,noexec, giving FAT,
        exFAT and NTFS volumes to the agent's user (read-only). Devices that match no camera
        model are left alone. Mounts left by cameras pulled out earlier are detached first.
        The outcome is left beside the mount point for `uploader dock` to record.
        """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "The block device, e.g. /dev/sdb1.") var devnode: String
    @Option(help: "The user who may read the volume (default: the owner of [paths] state).") var owner: String?

    func runBlocking() throws {
        try options.run {
            let sysname = try DockPartition.sysname(devnode)
            guard Syscall.isRoot else {
                throw UploaderError(.usage, "uploader mount must run as root: it is the dock unit's ExecStartPre=+ step (systemctl start uploader-dock@\(SystemdUnitName.escape(sysname)).service)")
            }
            print(try RootMountStep.mount(devnode: devnode, sysname: sysname, owner: owner, configuration: try options.loadConfiguration()))
        }
    }
}

struct UnmountCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "unmount",
        abstract: "Unmount a camera's volume after its dock (run as root by uploader-dock@.service).",
        discussion: "A volume whose camera was pulled out is detached; the mount point is removed either way.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "The block device, e.g. /dev/sdb1 (it may be gone already).") var devnode: String

    func runBlocking() throws {
        try options.run {
            // The camera is usually gone by now: its name is all there is to check.
            let sysname = try DockPartition.sysname(devnode)
            guard Syscall.isRoot else {
                throw UploaderError(.usage, "uploader unmount must run as root: it is the dock unit's ExecStopPost=+ step")
            }
            print(try RootMountStep.unmount(sysname: sysname, configuration: try options.loadConfiguration()))
        }
    }
}

struct UdevRulesCommand: BlockingCommand {
    static let configuration = CommandConfiguration(
        commandName: "udev-rules",
        abstract: "Print udev rules that start uploader-dock@.service for the supported camera models.")
    @OptionGroup var options: GlobalOptions
    @Option(help: "The camera models file (default: [docking] models of the configuration).") var models: String?

    func runBlocking() throws {
        try options.run {
            let path = try models ?? options.loadConfiguration().docking.modelsPath
            print(UdevRules.render(try CameraModels.load(path: path)), terminator: "")
        }
    }
}
