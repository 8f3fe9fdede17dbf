import Dock
import Foundation
import Ingest
import Ledger
import Logging
import Spool
import SystemPackage
import UploaderCore
import Platform

/// What one dock did; its `exitCode` is what `uploader dock` exits with,
/// so systemd's journal and `systemctl status` say what happened.
public struct DockOutcome: Sendable, Codable {
    public enum Result: String, Sendable, Codable {
        /// Every file secured (or already secured).
        case ingested
        /// Some files failed or were quarantined; see `uploader status`.
        case partial
        /// Stopped early: camera removed or spool full. The next dock resumes.
        case interrupted
        /// Not a supported camera: nothing was touched.
        case ignored
        /// A supported camera that could not be read (no serial, no file system, mount failed).
        case refused
    }

    public var result: Result
    public var device: DockedDevice
    public var model: String?
    public var serial: String?
    public var report: IngestReport?
    public var message: String

    public var exitCode: Int32 {
        switch result {
        case .ingested: ExitStatus.success.rawValue
        case .partial: ExitStatus.failure.rawValue
        case .interrupted: ExitStatus.interrupted.rawValue
        case .ignored: ExitStatus.unsupportedCamera.rawValue
        case .refused: ExitStatus.unreadableCamera.rawValue
        }
    }
}

/// The dock path: identify → match a model → find the volume the dock unit
/// mounted read-only → ingest, with every step in the custody log. (The unit
/// unmounts, as root, after this returns.)
public final class DockRunner: Sendable {
    let configuration: Configuration
    let models: CameraModels
    let ledger: Ledger
    let mounter: any VolumeMounting
    let logger: Logger
    /// The dock's clock, read when a camera's clock is measured against it (a test gives a fixed one).
    let now: @Sendable () -> Date

    public init(configuration: Configuration, models: CameraModels, ledger: Ledger, mounter: any VolumeMounting, logger: Logger,
                now: @escaping @Sendable () -> Date = Date.init) {
        self.configuration = configuration
        self.models = models
        self.ledger = ledger
        self.mounter = mounter
        self.logger = logger
        self.now = now
    }

    /// Blocking: runs on a thread of its own (the dock unit's main thread,
    /// or one of the daemon's dock threads).
    public func dock(_ device: DockedDevice, stop: StopFlag? = nil) -> DockOutcome {
        let described = "\(device.devnode) (\(device.id)\(device.manufacturer.map { " \($0)" } ?? "")\(device.product.map { " \($0)" } ?? ""))"
        guard let model = models.model(for: device.id) else {
            let message = "\(described) is not a supported camera; ignored (add its id to \(models.sourcePath) if it is one)"
            try? ledger.log(EventDraft(.info, .dockIgnored, message))
            logger.info("\(message)")
            return DockOutcome(result: .ignored, device: device, message: message)
        }
        var outcome = DockOutcome(result: .refused, device: device, model: model.id, message: "")
        let spool = Spool(root: configuration.spoolDirectory)
        // One dock per device at a time, whether started by udev's unit, by the daemon or by hand.
        let deviceLock: FileDescriptor
        do {
            try spool.prepare()
            guard let lock = try spool.tryLock("dock-\(device.sysname).lock") else {
                outcome.result = .ignored
                outcome.message = "\(described) is already being docked by another uploader process"
                logger.info("\(outcome.message)")
                return outcome
            }
            deviceLock = lock
        } catch {
            return refuse(&outcome, "\(model.name) on \(described): \((error as? UploaderError)?.message ?? "\(error)")", serial: device.usbSerial)
        }
        defer { try? deviceLock.close() }
        for stale in mounter.staleMountsReleased(for: device) {
            try? ledger.log(EventDraft(.warning, .dockStaleMount, "released \(stale), left mounted by a camera removed during an earlier dock"))
        }
        // At most [docking] max_concurrent_docks cameras are read at once on this PC.
        let slot: FileDescriptor
        do {
            slot = try spool.lockSlot("dock", count: configuration.docking.maxConcurrentDocks, stop: { stop?.isRequested == true }) {
                try? ledger.log(EventDraft(.info, .dockWaiting, "\(described) waits: \(configuration.docking.maxConcurrentDocks) cameras are being read already ([docking] max_concurrent_docks)"))
            }
        } catch {
            return refuse(&outcome, "\(model.name) on \(described): \((error as? UploaderError)?.message ?? "\(error)")", serial: device.usbSerial)
        }
        defer { try? slot.close() }
        let mountPoint = MountReport.mountPoint(mountRoot: configuration.docking.mountRoot, sysname: device.sysname)
        let volume: String
        do {
            volume = try mounter.volume(for: device, at: mountPoint)
        } catch let error as UploaderError {
            return refuse(&outcome, "\(model.name) on \(described): \(error.message)", serial: device.usbSerial)
        } catch {
            return refuse(&outcome, "\(model.name) on \(described): mounting failed: \(error)", serial: device.usbSerial)
        }
        let serial: String
        switch Self.serial(of: device, model: model, volume: volume) {
        case .success(let value): serial = value
        case .failure(let error): return refuse(&outcome, "\(model.name) on \(described): \(error.message)", serial: nil)
        }
        outcome.serial = serial
        let options = mounter.mountOptions(volume).map { " (\($0))" } ?? ""
        try? ledger.log(EventDraft(.notice, .dockStarted, serial: serial,
                                   "\(model.name) \(serial) docked on \(described), mounted read-only at \(volume)\(options)"))
        var profile = IngestProfile(model)
        if let clock = model.clock { profile.clockDrift = measureClock(clock, model: model, serial: serial, volume: volume, now: now) }
        do {
            let report = try Ingestor(configuration: configuration, ledger: ledger, logger: logger)
                .ingest(volume: volume, serial: serial, profile: profile, stop: stop)
            outcome.report = report
            if let reason = report.stoppedBecause {
                outcome.result = .interrupted
                outcome.message = "interrupted: \(reason)"
                try? ledger.log(EventDraft(.error, .dockInterrupted, serial: serial,
                                           "dock of \(serial) interrupted: \(reason); the next dock resumes where this one stopped"))
            } else {
                outcome.result = report.failed > 0 || report.quarantined > 0 ? .partial : .ingested
                outcome.message = "\(report.copied) copied, \(report.alreadySecured) already secured, \(report.held) held, \(report.quarantined) quarantined, \(report.failed) failed"
                try? ledger.log(EventDraft(outcome.result == .ingested ? .notice : .warning, .dockFinished, serial: serial,
                                           "dock of \(serial) finished: \(outcome.message)"))
            }
            planClearing(serial: serial, model: model, device: device, volume: volume)
        } catch let error as UploaderError {
            outcome.result = .interrupted
            outcome.message = "interrupted: \(error.message)"
            try? ledger.log(EventDraft(.error, .dockInterrupted, serial: serial, "dock of \(serial) interrupted: \(error.message)"))
        } catch {
            outcome.result = .interrupted
            outcome.message = "interrupted: \(error)"
            try? ledger.log(EventDraft(.error, .dockInterrupted, serial: serial, "dock of \(serial) interrupted: \(error)"))
        }
        FleetStatusPublisher.publishQuietly(configuration: configuration, ledger: ledger, logger: logger, quick: true)
        return outcome
    }

    /// How far the camera's clock is ahead of the dock's, from the clock file
    /// the model names (a custody event either way). Within 2 s, or unreadable,
    /// or implausible (over a year): 0, and recording times stay as the camera gave them.
    func measureClock(_ clock: CameraClockFile, model: CameraModel, serial: String, volume: String, now: () -> Date = Date.init) -> TimeInterval {
        let zone = model.cameraClock == .local ? TimeZone.current : TimeZone(identifier: "UTC")!
        let line: String
        do {
            let root = try FileDescriptor.open(FilePath(volume), .readOnly, options: [.directory, .closeOnExec])
            defer { try? root.close() }
            let file = try Syscall.openBeneath(root, clock.path, ignoringCase: true)
            defer { try? file.close() }
            var buffer = [UInt8](repeating: 0, count: 256)
            let count = try buffer.withUnsafeMutableBytes { try file.read(into: $0) }
            line = String(decoding: buffer.prefix(count), as: UTF8.self).split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        } catch {
            try? ledger.log(EventDraft(.warning, .cameraClock, serial: serial, "cannot read the clock file \(clock.path) of camera \(serial) (\(error)): recording times are the camera's, uncorrected"))
            return 0
        }
        let dockTime = now()
        guard let cameraTime = FileNameTime.date(in: line, pattern: clock.format, timeZone: zone) else {
            try? ledger.log(EventDraft(.warning, .cameraClock, serial: serial, "the clock file \(clock.path) of camera \(serial) holds \"\(DisplayText.escaped(String(line.prefix(64))))\", not a time like \(clock.format): recording times are the camera's, uncorrected"))
            return 0
        }
        let drift = cameraTime.timeIntervalSince(dockTime).rounded()
        let said = "camera \(serial)'s clock reads \(Timestamps.iso(cameraTime)), the dock's \(Timestamps.iso(dockTime))"
        if abs(drift) < 2 {
            try? ledger.log(EventDraft(.info, .cameraClock, serial: serial, "\(said): in step (within 2 s)"))
            return 0
        }
        if abs(drift) > 366 * 86400 {
            try? ledger.log(EventDraft(.warning, .cameraClock, serial: serial, "\(said): over a year apart, not a drift (a stale clock file?): recording times are the camera's, uncorrected"))
            return 0
        }
        try? ledger.log(EventDraft(.warning, .cameraClock, serial: serial,
                                   "\(said): the camera is \(Int(abs(drift))) s \(drift > 0 ? "ahead" : "behind"); this dock's recording times are corrected by it (the camera's own times are kept)"))
        return drift
    }

    /// With the clearing policy on, leaves the plan for the unit's root step:
    /// the verified files still unchanged on the camera (none: no plan).
    func planClearing(serial: String, model: CameraModel, device: DockedDevice, volume: String) {
        let path = Spool(root: configuration.spoolDirectory).clearPlanPath(sysname: device.sysname)
        Syscall.removeIfPresent(path)
        guard CameraClearing.policy(configuration, model: model) == .afterVerified else { return }
        do {
            var plan = try CameraClearing.plan(serial: serial, volume: volume, ledger: ledger, devnode: device.devnode)
            // The dock may write to this camera: a settable clock is set to the dock's time too.
            if let clock = model.clock, clock.settable { plan.setClock = ClearPlan.ClockSetting(path: clock.path, format: clock.format, local: model.cameraClock == .local) }
            guard !plan.items.isEmpty || plan.setClock != nil else { return }
            try SideFile.writeJSON(plan, to: path, mode: 0o640)
            try ledger.log(EventDraft(.notice, .dockFinished, serial: serial,
                                      "\(plan.items.count) file\(plan.items.count == 1 ? "" : "s") of \(serial) verified in the store and unchanged on the camera: to be deleted from it ([camera] clear = after-verified)"))
        } catch {
            try? ledger.log(EventDraft(.error, .cameraKept, serial: serial, "cannot plan clearing camera \(serial): \((error as? UploaderError)?.message ?? "\(error)"); its files stay on it"))
        }
    }

    private func refuse(_ outcome: inout DockOutcome, _ message: String, serial: String?) -> DockOutcome {
        outcome.result = .refused
        outcome.message = message
        try? ledger.log(EventDraft(.error, .dockRefused, serial: serial, message))
        logger.error("\(message)")
        return outcome
    }

    /// The camera's serial, from USB or from a file on the (read-only) volume.
    static func serial(of device: DockedDevice, model: CameraModel, volume: String) -> Result<String, UploaderError> {
        switch model.serialSource {
        case .usb:
            guard let serial = device.usbSerial, isUsableSerial(serial) else {
                return .failure(UploaderError(.unknownDevice, "the camera reports no usable USB serial; set serial = \"file:PATH\" for model \(model.id)"))
            }
            return .success(serial)
        case .file(let path):
            do {
                let root = try FileDescriptor.open(FilePath(volume), .readOnly, options: [.directory, .closeOnExec])
                defer { try? root.close() }
                let file = try Syscall.openBeneath(root, path, ignoringCase: true)
                defer { try? file.close() }
                var buffer = [UInt8](repeating: 0, count: 256)
                let count = try buffer.withUnsafeMutableBytes { try file.read(into: $0) }
                let text = String(decoding: buffer.prefix(count), as: UTF8.self)
                let serial = text.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                guard isUsableSerial(serial) else {
                    return .failure(UploaderError(.unknownDevice, "\(path) on the camera does not hold a usable serial (letters, digits, '.', '_', '-')"))
                }
                return .success(serial)
            } catch {
                return .failure(UploaderError(.unknownDevice, "cannot read the serial file \(path) on the camera (model \(model.id))", cause: "\(error)"))
            }
        }
    }

    static func isUsableSerial(_ serial: String) -> Bool {
        (1...64).contains(serial.count) && serial.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }
}

extension DockRunner {
    /// The docked device behind `devnode`, as udev knows it (`uploader dock`).
    /// A device udev does not know, or not on USB, is refused, and the refusal
    /// is a custody event. Blocking (libudev).
    public static func dockedDevice(_ devnode: String, ledger: Ledger) throws -> DockedDevice {
        do {
            return try UdevContext().dockedDevice(devnode: devnode)
        } catch let error as UploaderError {
            try? ledger.log(EventDraft(.error, .dockRefused, "\(devnode): \(error.message)"))
            throw error
        }
    }
}
