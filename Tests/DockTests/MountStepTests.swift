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

let asRoot: Testing.ConditionTrait = .enabled(if: geteuid() == 0, "the dock unit's mount step runs as root; so must its test")

/// The split the dock unit makes: a root step mounts (and unmounts), the
/// unprivileged dock only reads what the kernel's mount table shows.
extension EmulatedDockTests {
    @Test func withoutItsMountStepTheDockRefusesAndSaysHowToDock() throws {
        let testbed = try Testbed()
        try testbed.plug(acme)
        let site = try DockSite()
        let result = try UploaderProcess.run(["dock", "/dev/sdb1"], config: site.site.configPath, environment: testbed.environment)
        #expect(result.status == 6)
        #expect(result.stdout.contains("is not mounted at"))
        #expect(result.stdout.contains("systemctl start uploader-dock@sdb1.service"))
        let refused = try site.ledger.events(EventFilter()).filter { $0.kind == .dockRefused }
        #expect(refused.count == 1 && refused[0].message.contains("systemctl start uploader-dock@sdb1.service"))
        #expect(try site.ledger.files().isEmpty)
        _ = testbed
    }

    @Test(asRoot) func aFailedMountStepIsRecordedByTheDockAndTheRootStepNeverTouchesTheLedger() throws {
        let testbed = try Testbed()
        try testbed.plug(acme)
        let site = try DockSite()
        let ledgerFiles = { try FileManager.default.contentsOfDirectory(atPath: site.site.root + "/state").sorted() }
        let before = try ledgerFiles()
        // The emulated /dev/sdb1 has no real block device behind it: mount(2) fails.
        let mount = try UploaderProcess.run(["mount", "/dev/sdb1"], config: site.site.configPath, environment: testbed.environment)
        #expect(mount.status == 1)
        #expect(mount.stderr.hasPrefix("error: cannot mount /dev/sdb1 (vfat) read-only at \(site.configuration.docking.mountRoot)/sdb1"))
        #expect(try ledgerFiles() == before)
        // Made under the CLI's umask 0027, yet the agent's user must get through it.
        var info = stat()
        #expect(stat(site.configuration.docking.mountRoot, &info) == 0 && info.st_mode & 0o777 == 0o755)
        let dock = try UploaderProcess.run(["dock", "/dev/sdb1"], config: site.site.configPath, environment: testbed.environment)
        #expect(dock.status == 6)
        let refused = try site.ledger.events(EventFilter()).filter { $0.kind == .dockRefused }
        #expect(refused.count == 1 && refused[0].message.contains("cannot mount /dev/sdb1 (vfat) read-only"))
        // The unmount step clears the report; nothing was mounted.
        let unmount = try UploaderProcess.run(["unmount", "/dev/sdb1"], config: site.site.configPath, environment: testbed.environment)
        #expect(unmount.status == 0 && unmount.stdout.contains("nothing mounted"))
        #expect(!FileManager.default.fileExists(atPath: MountReport.path(mountRoot: site.configuration.docking.mountRoot, sysname: "sdb1")))
        _ = testbed
    }

    @Test(asRoot) func theMountStepLeavesAnUnsupportedStickUnmounted() throws {
        let testbed = try Testbed()
        try testbed.plug(stick)
        let site = try DockSite()
        let mount = try UploaderProcess.run(["mount", "/dev/sdc1"], config: site.site.configPath, environment: testbed.environment)
        #expect(mount.status == 0)
        #expect(mount.stdout.contains("is not a supported camera: not mounted"))
        #expect(MountTable.current().entries(under: site.configuration.docking.mountRoot).isEmpty)
        _ = testbed
    }

    @Test func aDockWaitsForAFreeSlotWhenTheLimitIsReached() async throws {
        let testbed = try Testbed()
        try testbed.plug(acme)
        let site = try DockSite(docking: "max_concurrent_docks = 1\n")
        try CameraVolume.writeRecording(at: site.folder.sub("one/DCIM/A.MP4"), recordedAt: Date(), payloadSize: 1 << 20, seed: 4)
        let spool = Spool(root: site.configuration.spoolDirectory)
        try spool.prepare()
        // Another process is reading a camera: it holds the only slot.
        var held: FileDescriptor? = try #require(try spool.tryLock("dock-slot-0.lock"))
        let runner = site.runner(models: Self.models, folders: ["/dev/sdb1": site.folder.sub("one")])
        let device = try UdevContext().dockedDevice(devnode: "/dev/sdb1")
        let docking = Task { await BlockingThread.run(name: "test.dock") { runner.dock(device) } }
        let waited = await eventually(within: 20) { [ledger = site.ledger] in
            try ledger.events(EventFilter(minimumLevel: .debug)).contains { $0.kind == .dockWaiting }
        }
        #expect(waited)
        #expect(try site.ledger.files().isEmpty)
        try held?.close()
        held = nil
        let outcome = await docking.value
        #expect(outcome.result == .ingested)
        #expect(try site.ledger.files().count == 1)
        _ = testbed
    }
}

@Suite(.tags(.emulated)) struct MountStepTests {
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

extension EmulatedDockTests {
    /// A camera that numbers its files: a number missing between two files
    /// seen is a custody warning and an alert, each once.
    @Test func aMissingFileNumberIsRecordedAndAlertedOnce() throws {
        let testbed = try Testbed()
        try testbed.plug(acme)
        let site = try DockSite()
        for number in [1, 2, 4] {
            try CameraVolume.writeRecording(at: site.folder.sub("one/DCIM/VID000\(number).MP4"), recordedAt: Date(), payloadSize: 4096, seed: UInt64(number))
        }
        let runner = site.runner(models: Self.models, folders: ["/dev/sdb1": site.folder.sub("one")])
        let device = try UdevContext().dockedDevice(devnode: "/dev/sdb1")
        #expect(runner.dock(device).result == .ingested)
        let gaps = { try site.ledger.events(EventFilter(minimumLevel: .debug)).filter { $0.kind == .custodyGap } }
        #expect(try gaps().map(\.message) == ["VID0003 missing between VID0002 and VID0004 on camera BWC0001234: the camera may have deleted it before docking"])
        let dispatcher = AlertDispatcher(configuration: site.configuration, ledger: site.ledger, logger: Logger(label: "test"))
        #expect(try dispatcher.run(send: false).map(\.key).contains("gap-BWC0001234-3"))
        try dispatcher.run()
        // Docked again, and a day later: neither a second warning nor a second alert.
        #expect(runner.dock(device).result == .ingested)
        #expect(try gaps().count == 1)
        #expect(try !dispatcher.run(now: Date().addingTimeInterval(86400), send: false).map(\.key).contains("gap-BWC0001234-3"))
        _ = testbed
    }

    @Test func fileNumberPatternsReadTheCamerasNumbering() throws {
        let pattern = try #require(FileNumberPattern("VID####"))
        #expect(pattern.number(inPath: "DCIM/100BWC/vid0042.mp4") == 42)
        #expect(pattern.number(inPath: "DCIM/100BWC/VID042.MP4") == nil)
        #expect(pattern.number(inPath: "DCIM/100BWC/IMG0042.JPG") == nil)
        #expect(pattern.name(7) == "VID0007")
        #expect(FileNumberPattern("VID") == nil && FileNumberPattern("V#D#") == nil)
        #expect(throws: UploaderError.self) {
            try CameraModels.parse("[[model]]\nid = \"x\"\nusb_ids = [\"1111:2222\"]\nfile_number = \"VID\"\n", path: "m.toml")
        }
    }
}

/// The dock unit's root steps act on a camera's partition only (`/dev/sdb1`):
/// never on a path made of a unit's instance name (`uploader-dock@..-..-etc`),
/// a link under /dev (`@disk-by\x2dlabel-sdb1`) or a whole disk (`@sda`).
extension EmulatedDockTests {
    @Test(asRoot) func theRootStepsRefuseAnythingButAPartitionName() throws {
        let testbed = try Testbed()
        try testbed.plug(acme)
        let site = try DockSite()
        for devnode in ["/dev/../../etc", "/dev/disk/by-label/sdb1", "/dev/sdb", "sdb1", "/dev/sdb1/..", "/dev/sdb1x", "/dev/sdB1", "/dev/sdb1\n"] {
            for step in [["mount"], ["unmount"], ["camera", "clear-apply"]] {
                let result = try UploaderProcess.run(step + [devnode], config: site.site.configPath, environment: testbed.environment)
                #expect(result.status == 2 && result.stderr.contains("is not a partition of a USB disk (/dev/sdb1)"), "\(step) \(devnode): \(result.stdout)\(result.stderr)")
            }
        }
        #expect(MountTable.current().entries(under: site.configuration.docking.mountRoot).isEmpty)
        // What udev says: the emulated camera's partition passes; its disk does not.
        #expect(try UdevContext().usbPartition(devnode: "/dev/sdb1").sysname == "sdb1")
        #expect(throws: UploaderError.self) { try UdevContext().usbPartition(devnode: "/dev/sdb") }
        #expect(try DockPartition.sysname("/dev/sdab12") == "sdab12")
        _ = testbed
    }
}

/// The clearing step's remount checks what is mounted there; a source or
/// device that does not resolve is never taken for the camera.
@Suite struct RemountCheckTests {
    @Test(asRoot) func theRemountCheckFailsClosedWhenNeitherPathResolves() throws {
        let folder = TemporaryDirectory("uploader-remount")
        let point = folder.sub("mnt")
        try FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
        // A read-only mount whose source names no file (as a camera's does once it is gone).
        try runTool("/bin/mount", ["-t", "tmpfs", "-o", "ro,size=1m", "uploader-gone-device", point])
        defer { _ = try? runTool("/bin/umount", [point]) }
        #expect(throws: UploaderError.self) {
            try KernelMounter(ownerUID: 0, ownerGID: 0).remount(point, devnode: "/dev/sdz9", writable: true)
        }
        #expect(MountTable.current().entry(at: point)?.options.split(separator: ",").contains("ro") == true, "the mount was made writable")
    }
}
