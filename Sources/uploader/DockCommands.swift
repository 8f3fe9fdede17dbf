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
        abstract: "Ingest the camera whose file system is DEVNODE: identify, mount read-only, ingest, unmount.",
        discussion: """
        Started by uploader-dock@.service when udev sees a supported camera. Exit status:
        0 all secured; 1 some files held back or failed; 3 interrupted (camera removed,
        spool full: the next dock resumes); 5 not a supported camera (nothing touched);
        6 a supported camera that could not be read (no serial, file system, or mount).
        """)
    @OptionGroup var options: GlobalOptions
    @Argument(help: "The block device, e.g. /dev/sdb1.") var devnode: String
    @Flag(help: "Print the outcome as JSON.") var json = false

    func runBlocking() throws {
        var exitCode: Int32 = 0
        try options.run {
            let configuration = try options.loadConfiguration()
            let models = try CameraModels.load(path: configuration.docking.modelsPath)
            let ledger = try options.openLedger(configuration)
            let device: DockedDevice
            do {
                device = try UdevContext().dockedDevice(devnode: devnode)
            } catch let error as UploaderError {
                try? ledger.log(EventDraft(.error, .dockRefused, "\(devnode): \(error.message)"))
                throw error
            }
            let runner = DockRunner(configuration: configuration, models: models, ledger: ledger,
                                    mounter: KernelMounter(), logger: Logger(label: "uploader.dock"))
            TerminationSignals.install()
            let outcome = runner.dock(device, stop: TerminationSignals.flag)
            if json { try Output.json(outcome) } else { print("dock \(devnode): \(outcome.result.rawValue): \(outcome.message)") }
            exitCode = outcome.exitCode
        }
        if exitCode != 0 { throw ExitCode(exitCode) }
    }
}

struct DaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Run the agent: ingest cameras as they are docked (and those docked already). Stops gracefully on SIGTERM.")
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
        try await AgentDaemon(configuration: configuration, models: models, ledger: ledger, mounter: KernelMounter(),
                              logger: Logger(label: "uploader.daemon")).run()
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

/// A connected camera as `device scan` shows it.
struct ConnectedCamera: Encodable {
    var devnode: String?
    var usbID: String
    var model: String?
    var serial: String?
    var registered: Bool
    var user: String?
    var note: String?
}

enum ConnectedCameras {
    static func scan(configuration: Configuration, ledger: Ledger) throws -> [ConnectedCamera] {
        let models = try CameraModels.load(path: configuration.docking.modelsPath)
        let volumes = try UdevContext().connectedVolumes()
        var cameras: [ConnectedCamera] = []
        var seen: Set<String> = []
        for volume in volumes {
            let model = models.model(for: volume.id)
            var serial: String?
            var note: String?
            if let model {
                switch model.serialSource {
                case .usb: serial = volume.usbSerial
                case .file(let path): note = "serial is in \(path) on the camera: dock it to read it"
                }
            } else {
                note = "not a supported camera"
            }
            let device = try serial.flatMap { try ledger.device(serial: $0) }
            cameras.append(ConnectedCamera(devnode: volume.devnode, usbID: volume.id.description, model: model?.name, serial: serial,
                                           registered: device != nil, user: device?.defaultUser, note: note))
            if let bus = volume.busNumber, let address = volume.deviceAddress { seen.insert("\(bus)-\(address)") }
        }
        // Supported cameras on the bus that show no storage (charging only, or in MTP mode).
        for usb in (try? USBBus.devices()) ?? [] where !seen.contains("\(usb.busNumber)-\(usb.deviceAddress)") {
            guard let model = models.model(for: usb.id) else { continue }
            cameras.append(ConnectedCamera(devnode: nil, usbID: usb.id.description, model: model.name, serial: nil, registered: false,
                                           user: nil, note: "on USB bus \(usb.busNumber) address \(usb.deviceAddress) but no storage volume: is it in mass-storage mode?"))
        }
        return cameras
    }
}
