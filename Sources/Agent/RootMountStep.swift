import Dock
import Foundation
import Platform
import UploaderCore

/// The dock unit's root steps around `uploader dock`: mount the camera's
/// volume read-only before it (ExecStartPre=+), unmount it after
/// (ExecStopPost=+). What mounting did is left in a `MountReport` beside the
/// mount point for the dock to record. The caller has checked it runs as root.
public enum RootMountStep {
    /// Mounts `devnode` (kernel name `sysname`) under [docking] mount_root for
    /// `owner` (default: the owner of the state folder). Returns the line to print.
    public static func mount(devnode: String, sysname: String, owner: String?, configuration: Configuration) throws -> String {
        let models = try CameraModels.load(path: configuration.docking.modelsPath)
        let root = configuration.docking.mountRoot
        try PrivilegedFolder.prepare(root)
        // A clearing result left by an earlier dock of this device is never read again.
        Syscall.removeIfPresent(ClearResult.path(mountRoot: root, sysname: sysname))
        var report = MountReport(devnode: devnode, mountPoint: MountReport.mountPoint(mountRoot: root, sysname: sysname))
        defer { try? PrivilegedFolder.writeReport(report, mountRoot: root, sysname: sysname) }
        do {
            let device = try UdevContext().usbPartition(devnode: devnode)
            guard let model = models.model(for: device.id) else {
                let refusal = "\(devnode) (\(device.id)) is not a supported camera: not mounted"
                report.error = refusal
                return refusal
            }
            let (uid, gid) = try PrivilegedFolder.owner(named: owner, default: configuration.stateDirectory)
            let mounter = KernelMounter(ownerUID: uid, ownerGID: gid)
            report.released = mounter.releaseStaleMounts(under: root)
            _ = try mounter.mount(device, at: report.mountPoint)
            return "mounted \(model.name) on \(devnode) read-only at \(report.mountPoint) (\(MountTable.current().entry(at: report.mountPoint)?.options ?? ""))"
        } catch let error as UploaderError {
            report.error = error.message
            throw error
        }
    }

    /// Unmounts what `mount` left for `sysname` (detaching a volume whose
    /// camera was pulled out) and removes the side files. Returns the line to print.
    public static func unmount(sysname: String, configuration: Configuration) throws -> String {
        let root = configuration.docking.mountRoot
        let mountPoint = MountReport.mountPoint(mountRoot: root, sysname: sysname)
        let mounted = try KernelMounter(ownerUID: 0, ownerGID: 0).unmount(mountPoint)
        Syscall.removeIfPresent(MountReport.path(mountRoot: root, sysname: sysname))
        Syscall.removeIfPresent(ClearResult.path(mountRoot: root, sysname: sysname))
        return mounted ? "unmounted \(mountPoint)" : "nothing mounted at \(mountPoint)"
    }
}
