import Foundation
import Logging
import Spool
import Testing
import TestSupport
import UploaderCore
@testable import Dock
@testable import Agent
@testable import Ledger
import Platform
import SystemPackage

@Suite struct MountStepTests {
    @Test func unitNamesAreEscapedAsSystemdEscapeDoes() throws {
        for name in ["sdb1", "nvme0n1p1", "odd name/ü", ".hidden"] {
            let expected = try #require(try? runTool("/usr/bin/systemd-escape", [name]))
            #expect(SystemdUnitName.escape(name) == expected, "\(name)")
        }
        #expect(SystemdUnitName.dock(sysname: "sdb1") == "uploader-dock@sdb1.service")
    }

    @Test(asRoot) func theMountRootMustBeAFolderOnlyRootCanChange() throws {
        let folder = TemporaryDirectory("uploader-mountroot")
        try PrivilegedFolder.prepare(folder.sub("mnt"))
        // A folder the agent's user could write to: it could swap in a link.
        try FileManager.default.createDirectory(atPath: folder.sub("open"), withIntermediateDirectories: true)
        chmod(folder.sub("open"), 0o777)
        #expect(throws: UploaderError.self) { try PrivilegedFolder.prepare(folder.sub("open/mnt")) }
        try FileManager.default.createDirectory(atPath: folder.sub("theirs"), withIntermediateDirectories: true)
        chown(folder.sub("theirs"), 65534, 65534)
        #expect(throws: UploaderError.self) { try PrivilegedFolder.prepare(folder.sub("theirs/mnt")) }
        try FileManager.default.createSymbolicLink(atPath: folder.sub("link"), withDestinationPath: folder.sub("mnt"))
        #expect(throws: UploaderError.self) { try PrivilegedFolder.prepare(folder.sub("link")) }
    }

    /// A real camera volume on a loop device: mounted read-only (FAT: for the
    /// agent's user), accepted by the dock only while the mount table shows it
    /// so. FAT where the kernel has it, else ext4 (some CI kernels lack vfat;
    /// the VM test mounts FAT cameras in a real Debian kernel).
    @Test(asRoot, .enabled(if: FileManager.default.fileExists(atPath: "/dev/loop-control"), "needs loop devices"))
    func aRealCameraVolumeIsMountedReadOnlyForTheAgentsUser() throws {
        let folder = TemporaryDirectory("uploader-loop")
        let image = folder.sub("camera.img")
        let fat = ((try? String(contentsOfFile: "/proc/filesystems", encoding: .utf8)) ?? "").contains("\tvfat\n")
        try FileManager.default.createDirectory(atPath: folder.sub("src/DCIM"), withIntermediateDirectories: true)
        try Data("evidence".utf8).write(to: URL(fileURLWithPath: folder.sub("src/DCIM/A.MP4")))
        _ = try runTool("/usr/bin/truncate", ["-s", "16M", image])
        if fat {
            _ = try runTool("/usr/sbin/mkfs.vfat", ["-n", "BODYCAM", image])
            _ = try runTool("/usr/bin/mcopy", ["-s", "-i", image, folder.sub("src/DCIM"), "::/"])
        } else {
            _ = try runTool("/usr/sbin/mkfs.ext4", ["-q", "-L", "BODYCAM", "-d", folder.sub("src"), image])
        }
        let loop = try runTool("/usr/sbin/losetup", ["--find", "--show", "--read-only", image])
        defer { _ = try? runTool("/usr/sbin/losetup", ["-d", loop]) }
        let root = folder.sub("mnt")
        try PrivilegedFolder.prepare(root)
        let sysname = (loop as NSString).lastPathComponent
        let device = DockedDevice(devnode: loop, sysname: sysname, syspath: "", fileSystem: fat ? "vfat" : "ext4", fileSystemLabel: "BODYCAM",
                                  usbID: USBIDValue(vendor: "2b4c", product: "0001"))
        let mountPoint = MountReport.mountPoint(mountRoot: root, sysname: sysname)
        let mounter = KernelMounter(ownerUID: 65534, ownerGID: 65534)
        _ = try mounter.mount(device, at: mountPoint)
        defer { _ = try? mounter.unmount(mountPoint) }
        let options = try #require(MountTable.current().entry(at: mountPoint)?.options).split(separator: ",").map(String.init)
        #expect(Set(["ro", "nosuid", "nodev", "noexec"]).isSubset(of: options))
        var info = stat()
        #expect(stat(mountPoint + "/DCIM/A.MP4", &info) == 0)
        if fat { #expect(info.st_uid == 65534 && info.st_mode & 0o777 == 0o440) }
        #expect(try PreparedMounts(mountRoot: root).volume(for: device, at: mountPoint) == mountPoint)
        // Somebody else's device at that mount point is not this camera.
        var other = device
        other.devnode = "/dev/sdz9"
        #expect(throws: UploaderError.self) { try PreparedMounts(mountRoot: root).volume(for: other, at: mountPoint) }
        #expect(try mounter.unmount(mountPoint))
        #expect(MountTable.current().entry(at: mountPoint) == nil)
        #expect(!FileManager.default.fileExists(atPath: mountPoint))
    }
}
