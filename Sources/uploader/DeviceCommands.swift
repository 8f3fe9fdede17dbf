import Agent
import ArgumentParser
import Foundation
import Ledger
import UploaderCore

struct DeviceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "device", abstract: "Register cameras and record who holds them.",
        subcommands: [Add.self, List.self, Show.self, Remove.self, Rename.self, Model.self, Assign.self, End.self, Unassign.self, Scan.self])

    struct Scan: BlockingCommand {
        static let configuration = CommandConfiguration(abstract: "List connected cameras: model, serial, registered or not, user.")
        @OptionGroup var options: GlobalOptions
        @OptionGroup var display: OutputOptions

        func runBlocking() throws {
            try options.run {
                let configuration = try options.loadConfiguration()
                let cameras = try ConnectedCameras.scan(configuration: configuration, ledger: try options.openLedger(configuration))
                if display.json { return try Output.json(cameras) }
                if cameras.isEmpty { print("no USB storage or supported camera connected"); return }
                for camera in cameras {
                    // The serial and names come from the camera or an admin: escaped, never raw on a terminal.
                    let who = camera.registered ? "registered to \(DisplayText.escaped(camera.user ?? "?"))" : (camera.serial == nil ? "" : "NOT registered")
                    print([camera.devnode ?? "-", camera.usbID, camera.model ?? "-", camera.serial ?? "-", who, camera.note ?? ""]
                        .filter { !$0.isEmpty }.map(DisplayText.terminalSafe).joined(separator: "  "))
                }
            }
        }
    }

    struct Add: BlockingCommand {
        static let configuration = CommandConfiguration(abstract: "Register a camera by serial; releases its held files.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The camera's serial number.") var serial: String?
        @Option(help: "The user (officer id) the camera belongs to by default.") var user: String
        @Option(help: "A display name.") var name: String?
        @Option(help: "The camera model.") var model: String?
        @Flag(help: "Register the supported cameras docked right now (instead of SERIAL).") var connected = false

        func validate() throws {
            if connected == (serial != nil) { throw ValidationError("give either a SERIAL or --connected") }
        }

        func runBlocking() throws {
            try options.run {
                // A name or model is shown wherever the camera is: nothing that moves a cursor or fakes a line.
                if let name { try DisplayText.checkIdentifier(name, "the name") }
                if let model { try DisplayText.checkIdentifier(model, "the model") }
                let configuration = try options.loadConfiguration()
                let ledger = try options.openLedger(configuration)
                var targets: [(serial: String, model: String?)] = serial.map { [($0, model)] } ?? []
                if connected {
                    let cameras = try ConnectedCameras.scan(configuration: configuration, ledger: ledger)
                    targets = cameras.filter { !$0.registered && $0.model != nil }.compactMap { camera in camera.serial.map { ($0, model ?? camera.model) } }
                    if targets.isEmpty {
                        throw UploaderError(.notFound, "no unregistered supported camera with a readable serial is docked: see `uploader device scan`")
                    }
                }
                for target in targets {
                    if let done = try FleetCommand.writeThrough(RegistryChange(kind: .deviceAdd, serial: target.serial, user: user, name: name, model: target.model),
                                                                configuration: configuration, ledger: ledger) {
                        print("registered \(DisplayText.escaped(target.serial)) to \(DisplayText.escaped(user)) (\(done))")
                        continue
                    }
                    let released = try ledger.addDevice(serial: target.serial, defaultUser: user, name: name, model: target.model)
                    print("registered \(DisplayText.escaped(target.serial)) to \(DisplayText.escaped(user))" + (released > 0 ? "; released \(released) held file\(released == 1 ? "" : "s") for upload" : ""))
                }
            }
        }
    }

    struct List: BlockingCommand {
        static let configuration = CommandConfiguration(abstract: "List registered cameras.")
        @OptionGroup var options: GlobalOptions
        @OptionGroup var display: OutputOptions

        func runBlocking() throws {
            try options.run {
                let ledger = try options.openLedger(try options.loadConfiguration())
                let devices = try ledger.devices()
                if display.json { return try Output.json(devices) }
                if devices.isEmpty { print("no devices registered; add one with `uploader device add SERIAL --user ID`"); return }
                for device in devices {
                    print([device.serial, device.defaultUser, device.name ?? "", device.model ?? ""].map(DisplayText.escaped).joined(separator: "\t"))
                }
            }
        }
    }

    struct Show: BlockingCommand {
        static let configuration = CommandConfiguration(abstract: "Show one camera, who held it when, and its files.")
        @OptionGroup var options: GlobalOptions
        @Argument var serial: String
        @OptionGroup var display: OutputOptions

        struct Detail: Encodable {
            var device: Device?
            var custody: [CustodyRecord]
            var files: [MediaFile]
        }

        func runBlocking() throws {
            try options.run {
                let ledger = try options.openLedger(try options.loadConfiguration())
                let device = try ledger.device(serial: serial)
                let files = try ledger.files(serial: serial)
                guard device != nil || !files.isEmpty else {
                    throw UploaderError(.notFound, "no device with serial \(DisplayText.escaped(serial)) is registered or has files: see `uploader device list`")
                }
                let detail = Detail(device: device, custody: device == nil ? [] : try ledger.custody(serial: serial), files: files)
                if display.json { return try Output.json(detail) }
                if let device {
                    print("\(DisplayText.escaped(device.serial)): default user \(DisplayText.escaped(device.defaultUser))\(device.name.map { ", \(DisplayText.escaped($0))" } ?? "")\(device.model.map { ", model \(DisplayText.escaped($0))" } ?? ""), registered \(Output.local(device.registeredAt))")
                } else {
                    print("\(DisplayText.escaped(serial)): NOT REGISTERED — its files are held; run `uploader device add \(DisplayText.escaped(serial)) --user ID`")
                }
                for period in detail.custody {
                    print("  #\(period.id) held by \(DisplayText.escaped(period.user)) from \(Output.local(period.from)) \(period.until.map { "to \(Output.local($0))" } ?? "on")")
                }
                for file in files {
                    print("  #\(file.id) \(DisplayText.terminalSafe(file.sourcePath))  \(file.state.rawValue)\(file.holdReason.map { " (\($0.rawValue))" } ?? "")  user \(DisplayText.escaped(file.user ?? "-"))  \(file.sha256?.prefix(16) ?? "")")
                }
            }
        }
    }

    struct Remove: BlockingCommand {
        static let configuration = CommandConfiguration(abstract: "Take a camera out of the registry (its history stays).")
        @OptionGroup var options: GlobalOptions
        @Argument var serial: String

        func runBlocking() throws {
            try options.run {
                try DeviceCommand.registryChange(RegistryChange(kind: .deviceRemove, serial: serial), options: options,
                                                 said: "removed \(DisplayText.escaped(serial))",
                                                 then: "; files it docks from now on are held until it is registered again") {
                    try $0.removeDevice(serial: serial)
                }
            }
        }
    }

    struct Rename: BlockingCommand {
        static let configuration = CommandConfiguration(abstract: "Give a registered camera a display name.")
        @OptionGroup var options: GlobalOptions
        @Argument var serial: String
        @Argument(help: "The display name.") var name: String

        func runBlocking() throws {
            try options.run {
                try DisplayText.checkIdentifier(name, "the name")
                try DeviceCommand.registryChange(RegistryChange(kind: .deviceRename, serial: serial, name: name), options: options,
                                                 said: "\(DisplayText.escaped(serial)) is named \(DisplayText.escaped(name))") {
                    try $0.renameDevice(serial: serial, name: name)
                }
            }
        }
    }

    struct Model: BlockingCommand {
        static let configuration = CommandConfiguration(abstract: "Record a registered camera's model.")
        @OptionGroup var options: GlobalOptions
        @Argument var serial: String
        @Argument(help: "The camera model.") var model: String

        func runBlocking() throws {
            try options.run {
                try DisplayText.checkIdentifier(model, "the model")
                try DeviceCommand.registryChange(RegistryChange(kind: .deviceModel, serial: serial, model: model), options: options,
                                                 said: "\(DisplayText.escaped(serial)) is a \(DisplayText.escaped(model))") {
                    try $0.setDeviceModel(serial: serial, model: model)
                }
            }
        }
    }

    struct Assign: BlockingCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record that USER holds the (pooled) camera from --from until --to.",
            discussion: "Files are attributed by their recording time. Times are ISO 8601; without a zone they are this PC's local time.")
        @OptionGroup var options: GlobalOptions
        @Argument var serial: String
        @Argument var user: String
        @Option(help: "Start of custody, e.g. 2026-11-24T07:00.") var from: String
        @Option(help: "End of custody (open if omitted).") var to: String?

        func validate() throws {
            _ = try TypedTime.absolute(from, option: "from")
            _ = try TypedTime.absolute(to, option: "to")
        }

        func runBlocking() throws {
            try options.run {
                let start = try TypedTime.absolute(from, option: "from")!
                let end = try TypedTime.absolute(to, option: "to")
                let configuration = try options.loadConfiguration()
                let ledger = try options.openLedger(configuration)
                let change = RegistryChange(kind: .periodAssign, serial: serial, user: user, from: RegistryChange.time(start), until: end.map(RegistryChange.time))
                if let done = try FleetCommand.writeThrough(change, configuration: configuration, ledger: ledger) {
                    print("\(DisplayText.escaped(serial)) held by \(DisplayText.escaped(user)) from \(Output.local(start))\(end.map { " to \(Output.local($0))" } ?? "") (\(done))")
                    return
                }
                let result = try ledger.assign(serial: serial, user: user, from: start, until: end)
                if let ended = result.endedPeriod {
                    print("ended custody period #\(ended.id) of \(DisplayText.escaped(ended.user)) (from \(Output.local(ended.from))) at \(Output.local(start))")
                }
                let changed = result.reattributed
                print("\(DisplayText.escaped(serial)) held by \(DisplayText.escaped(user)) from \(Output.local(start))\(end.map { " to \(Output.local($0))" } ?? ""); \(changed) not-yet-uploaded file\(changed == 1 ? "" : "s") re-attributed")
            }
        }
    }

    struct End: BlockingCommand {
        static let configuration = CommandConfiguration(
            abstract: "End the (pooled) camera's open custody period: its holder gave it back.",
            discussion: "Files recorded after --at go back to the camera's default user (or a later period). Times are ISO 8601; without a zone they are this PC's local time.")
        @OptionGroup var options: GlobalOptions
        @Argument var serial: String
        @Option(help: "When custody ended, e.g. 2026-11-24T17:00 (now if omitted).") var at: String?

        func validate() throws {
            _ = try TypedTime.absolute(at, option: "at")
        }

        func runBlocking() throws {
            try options.run {
                let end = try TypedTime.absolute(at, option: "at") ?? Date()
                let configuration = try options.loadConfiguration()
                let ledger = try options.openLedger(configuration)
                if try ledger.fleetState() != nil {
                    guard let open = try ledger.custody(serial: serial).first(where: { $0.until == nil }) else {
                        throw UploaderError(.notFound, "device \(DisplayText.escaped(serial)) has no open custody period: see `uploader device show \(DisplayText.escaped(serial))`")
                    }
                    guard let commit = try ledger.fleetCommit(ofPeriod: open.id) else {
                        throw UploaderError(.usage, "custody period #\(open.id) was entered at this dock before it joined the fleet, so no other dock has it: it cannot be ended through the fleet")
                    }
                    let done = try FleetCommand.writeThrough(RegistryChange(kind: .periodEnd, serial: serial, until: RegistryChange.time(end), period: commit),
                                                             configuration: configuration, ledger: ledger)
                    print("ended custody period #\(open.id) of \(DisplayText.escaped(open.user)) at \(Output.local(end)) (\(done ?? ""))")
                    return
                }
                let (ended, changed) = try ledger.endPeriod(serial: serial, at: end)
                print("ended custody period #\(ended.id) of \(DisplayText.escaped(ended.user)) (from \(Output.local(ended.from))) at \(Output.local(end)); \(changed) not-yet-uploaded file\(changed == 1 ? "" : "s") re-attributed")
            }
        }
    }

    struct Unassign: BlockingCommand {
        static let configuration = CommandConfiguration(
            abstract: "Withdraw a custody period entered by mistake (its id is in `uploader device show SERIAL`).",
            discussion: "Files not yet uploaded follow the periods that remain. The period stays in the ledger, marked removed.")
        @OptionGroup var options: GlobalOptions
        @Argument var serial: String
        @Argument(help: "The custody period's number.") var period: Int64

        func runBlocking() throws {
            try options.run {
                let configuration = try options.loadConfiguration()
                let ledger = try options.openLedger(configuration)
                if try ledger.fleetState() != nil {
                    guard let commit = try ledger.fleetCommit(ofPeriod: period) else {
                        throw UploaderError(.usage, "custody period #\(period) was entered at this dock before it joined the fleet, so no other dock has it: it cannot be withdrawn through the fleet")
                    }
                    let done = try FleetCommand.writeThrough(RegistryChange(kind: .periodWithdraw, serial: serial, period: commit), configuration: configuration, ledger: ledger)
                    print("removed custody period #\(period) (\(done ?? ""))")
                    return
                }
                let (removed, changed) = try ledger.unassign(serial: serial, periodID: period)
                print("removed custody period #\(removed.id) (\(DisplayText.escaped(removed.user)) from \(Output.local(removed.from))\(removed.until.map { " to \(Output.local($0))" } ?? "")); \(changed) not-yet-uploaded file\(changed == 1 ? "" : "s") re-attributed")
            }
        }
    }
}

extension DeviceCommand {
    /// One registry change: a commit through the fleet when this dock is in one,
    /// else `locally` in this dock's ledger; prints `said`, the commit, then `then`.
    static func registryChange(_ change: RegistryChange, options: GlobalOptions, said: String, then: String = "",
                               locally: (Ledger) throws -> Void) throws {
        let configuration = try options.loadConfiguration()
        let ledger = try options.openLedger(configuration)
        if let done = try FleetCommand.writeThrough(change, configuration: configuration, ledger: ledger) {
            print("\(said) (\(done))\(then)")
            return
        }
        try locally(ledger)
        print(said + then)
    }
}
