import Dock
import Foundation
import Ledger
import Platform
import Spool
import UploaderCore

/// Clearing a camera around the dock: the dock unit's root step carries out
/// the dock's plan (`apply`, ExecStartPost=+), and its last agent step writes
/// what happened to the custody log (`record`). The root step never opens the
/// ledger; it leaves a `ClearResult` beside the mount report instead. Each
/// returns the line to print.
public enum RootClearStep {
    /// Carries out the plan the dock left for `devnode`, trusting none of it but
    /// the files it proposes (`ClearingAuthority`): remounts the volume
    /// read-write for the clearing only. The caller has checked it runs as root.
    public static func apply(devnode: String, sysname: String, configuration: Configuration) throws -> String {
        let planPath = Spool(root: configuration.spoolDirectory).clearPlanPath(sysname: sysname)
        guard let plan = ClearPlan.readUntrusted(from: planPath), !plan.items.isEmpty || plan.setClock != nil, plan.devnode == devnode else {
            return "nothing to clear on \(devnode)"
        }
        let models = try CameraModels.load(path: configuration.docking.modelsPath)
        let device = try UdevContext().usbPartition(devnode: devnode)
        let mountRoot = configuration.docking.mountRoot
        guard let model = models.model(for: device.id) else {
            return "\(devnode) (\(device.id)) is not a supported camera: nothing cleared"
        }
        let authority = ClearingAuthority(configuration: configuration, model: model)
        let mountPoint = MountReport.mountPoint(mountRoot: mountRoot, sysname: sysname)
        let mounter = KernelMounter(ownerUID: 0, ownerGID: 0)
        var result: ClearResult
        if authority.policy != .afterVerified {
            // Refused before the volume is made writable.
            result = CameraClearing.apply(plan, volume: mountPoint, authority: authority)
        } else {
            do {
                try mounter.remount(mountPoint, devnode: devnode, writable: true)
                result = CameraClearing.apply(plan, volume: mountPoint, authority: authority)
                do { try mounter.remount(mountPoint, devnode: devnode, writable: false) } catch let error as UploaderError {
                    result.error = error.message + " (the unit unmounts it next)"
                }
            } catch let error as UploaderError {
                result = ClearResult(serial: plan.serial, finishedAt: Date(), items: [], error: error.message)
            }
        }
        try SideFile.writeJSON(result, to: ClearResult.path(mountRoot: mountRoot, sysname: sysname), mode: 0o644)
        return "camera \(plan.serial) on \(devnode): \(result.items.filter(\.deleted).count) deleted, \(result.items.filter { !$0.deleted }.count) kept\(result.error.map { "; \($0)" } ?? "")"
    }

    /// Writes the root step's result for `sysname` to the custody log, once:
    /// the plan goes when its result is in the log. `openLedger` is called only
    /// when there is something to record.
    public static func record(devnode: String, sysname: String, configuration: Configuration, openLedger: () throws -> Ledger) throws -> String {
        let planPath = Spool(root: configuration.spoolDirectory).clearPlanPath(sysname: sysname)
        let resultPath = ClearResult.path(mountRoot: configuration.docking.mountRoot, sysname: sysname)
        guard FileManager.default.fileExists(atPath: planPath), let result = SideFile.readJSON(ClearResult.self, from: resultPath) else {
            return "nothing was cleared on \(devnode)"
        }
        let counts = try CameraClearing.record(result, ledger: try openLedger())
        Syscall.removeIfPresent(planPath)
        return "camera \(result.serial): \(counts.deleted) deleted, \(counts.kept) kept (recorded)"
    }
}

extension CameraClearing {
    /// `uploader camera clear --volume`: an admin clears a camera mounted
    /// read-write by hand (a card reader). The policy is the admin's request;
    /// the store is still asked about every file. A read-only mount is refused:
    /// docks clear cameras themselves.
    public static func clearByHand(_ plan: ClearPlan, volume: String, configuration: Configuration,
                                   ledger: Ledger) throws -> (result: ClearResult, deleted: Int, kept: Int) {
        if let entry = MountTable.current().entries.filter({ volume.hasPrefix($0.mountPoint) }).max(by: { $0.mountPoint.count < $1.mountPoint.count }),
           entry.options.split(separator: ",").contains("ro") {
            throw UploaderError(.usage, "\(volume) is mounted read-only: docks clear cameras themselves ([camera] clear = \"after-verified\"); to clear by hand, mount the camera read-write")
        }
        var authority = ClearingAuthority(configuration: configuration, model: nil)
        authority.policy = .afterVerified
        let result = apply(plan, volume: volume, authority: authority)
        let counts = try record(result, ledger: ledger)
        return (result, counts.deleted, counts.kept)
    }
}
