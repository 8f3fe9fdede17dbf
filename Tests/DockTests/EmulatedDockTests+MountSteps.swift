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

/// The split the dock unit makes: a root step mounts (and unmounts), the
/// unprivileged dock only reads what the kernel's mount table shows.
extension EmulatedDockTests {
    @Test func withoutItsMountStepTheDockRefusesAndSaysHowToDock() throws {
        let testbed = try Testbed()
        try testbed.plug(acme)
        let site = try TestSite.docking()
        let result = try UploaderProcess.run(["dock", "/dev/sdb1"], config: site.configPath, environment: testbed.environment)
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
        let site = try TestSite.docking()
        let ledgerFiles = { try FileManager.default.contentsOfDirectory(atPath: site.root + "/state").sorted() }
        let before = try ledgerFiles()
        // The emulated /dev/sdb1 has no real block device behind it: mount(2) fails.
        let mount = try UploaderProcess.run(["mount", "/dev/sdb1"], config: site.configPath, environment: testbed.environment)
        #expect(mount.status == 1)
        #expect(mount.stderr.hasPrefix("error: cannot mount /dev/sdb1 (vfat) read-only at \(try site.configuration().docking.mountRoot)/sdb1"))
        #expect(try ledgerFiles() == before)
        // Made under the CLI's umask 0027, yet the agent's user must get through it.
        var info = stat()
        #expect(stat(try site.configuration().docking.mountRoot, &info) == 0 && info.st_mode & 0o777 == 0o755)
        let dock = try UploaderProcess.run(["dock", "/dev/sdb1"], config: site.configPath, environment: testbed.environment)
        #expect(dock.status == 6)
        let refused = try site.ledger.events(EventFilter()).filter { $0.kind == .dockRefused }
        #expect(refused.count == 1 && refused[0].message.contains("cannot mount /dev/sdb1 (vfat) read-only"))
        // The unmount step clears the report; nothing was mounted.
        let unmount = try UploaderProcess.run(["unmount", "/dev/sdb1"], config: site.configPath, environment: testbed.environment)
        #expect(unmount.status == 0 && unmount.stdout.contains("nothing mounted"))
        #expect(!FileManager.default.fileExists(atPath: MountReport.path(mountRoot: try site.configuration().docking.mountRoot, sysname: "sdb1")))
        _ = testbed
    }

    @Test(asRoot) func theMountStepLeavesAnUnsupportedStickUnmounted() throws {
        let testbed = try Testbed()
        try testbed.plug(stick)
        let site = try TestSite.docking()
        let mount = try UploaderProcess.run(["mount", "/dev/sdc1"], config: site.configPath, environment: testbed.environment)
        #expect(mount.status == 0)
        #expect(mount.stdout.contains("is not a supported camera: not mounted"))
        #expect(MountTable.current().entries(under: try site.configuration().docking.mountRoot).isEmpty)
        _ = testbed
    }

    @Test func aDockWaitsForAFreeSlotWhenTheLimitIsReached() async throws {
        let testbed = try Testbed()
        try testbed.plug(acme)
        let site = try TestSite.docking(docking: "max_concurrent_docks = 1\n")
        try CameraVolume.writeRecording(at: site.folder.sub("one/DCIM/A.MP4"), recordedAt: Date(), payloadSize: 1 << 20, seed: 4)
        let spool = Spool(root: try site.configuration().spoolDirectory)
        try spool.prepare()
        // Another process is reading a camera: it holds the only slot.
        var held: FileDescriptor? = try #require(try spool.tryLock("dock-slot-0.lock"))
        let runner = try site.runner(models: Self.models, folders: ["/dev/sdb1": site.folder.sub("one")])
        let device = try UdevContext().dockedDevice(devnode: "/dev/sdb1")
        let docking = Task { await BlockingThread.run(name: "test.dock") { runner.dock(device) } }
        let waited = await eventually(within: 20) { [ledger = try site.ledger] in
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

/// The dock unit's root steps act on a camera's partition only (`/dev/sdb1`):
/// never on a path made of a unit's instance name (`uploader-dock@..-..-etc`),
/// a link under /dev (`@disk-by\x2dlabel-sdb1`) or a whole disk (`@sda`).
extension EmulatedDockTests {
    @Test(asRoot) func theRootStepsRefuseAnythingButAPartitionName() throws {
        let testbed = try Testbed()
        try testbed.plug(acme)
        let site = try TestSite.docking()
        for devnode in ["/dev/../../etc", "/dev/disk/by-label/sdb1", "/dev/sdb", "sdb1", "/dev/sdb1/..", "/dev/sdb1x", "/dev/sdB1", "/dev/sdb1\n"] {
            for step in [["mount"], ["unmount"], ["camera", "clear-apply"]] {
                let result = try UploaderProcess.run(step + [devnode], config: site.configPath, environment: testbed.environment)
                #expect(result.status == 2 && result.stderr.contains("is not a partition of a USB disk (/dev/sdb1)"), "\(step) \(devnode): \(result.stdout)\(result.stderr)")
            }
        }
        #expect(MountTable.current().entries(under: try site.configuration().docking.mountRoot).isEmpty)
        // What udev says: the emulated camera's partition passes; its disk does not.
        #expect(try UdevContext().usbPartition(devnode: "/dev/sdb1").sysname == "sdb1")
        #expect(throws: UploaderError.self) { try UdevContext().usbPartition(devnode: "/dev/sdb") }
        #expect(try DockPartition.sysname("/dev/sdab12") == "sdab12")
        _ = testbed
    }
}
