import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import TestSupport
import UploaderCore
@testable import Dock
@testable import Ingest
@testable import Agent
@testable import Ledger
import Platform

let emulated: Testing.ConditionTrait = .enabled(if: Emulation.available || Emulation.mustRun,
                                                "needs umockdev-wrapper (scripts/test runs the tests under it)")

/// Every suite here shares the process-wide umockdev testbed: one at a time.
@Suite(.serialized, emulated, .tags(.emulated, .subprocess)) struct EmulatedDockTests {
    let acme = EmulatedDevice()
    let stick = EmulatedDevice(serial: "4C530001230517110381", vendor: "0781", product: "5567", manufacturer: "SanDisk",
                               productName: "Cruzer Blade", port: 2, disk: "sdc")
    static let models = try! CameraModels.parse(modelsText, path: "test-models.toml")
    static let modelsText = """
        [[model]]
        id = "acme-bodycam-x1"
        name = "Acme BodyCam X1"
        usb_ids = ["2b4c:0001"]
        media_folders = ["DCIM"]
        file_patterns = ["*.mp4"]
        file_number = "VID####"

        [[model]]
        id = "vigil-vc3"
        name = "Vigil VC-3"
        usb_ids = ["1234:5678"]
        media_folders = ["RECORD"]
        file_patterns = ["VC3_*.mp4"]
        serial = "file:SYSTEM/DEVICE.TXT"
        recording_time = "filename:YYYYMMDD_hhmmss"
        """

    @Test func theParentWalkFindsTheCameraBehindItsPartition() throws {
        let testbed = try Testbed()
        try testbed.plug(acme)
        let device = try UdevContext().dockedDevice(devnode: "/dev/sdb1")
        #expect(device.id == USBID(vendor: "2b4c", product: "0001"))
        #expect(device.usbSerial == "BWC0001234")
        #expect(device.fileSystem == "vfat")
        #expect(device.fileSystemLabel == "BODYCAM")
        #expect(device.manufacturer == "Acme")
        #expect(device.product == "BodyCam X1")
        #expect(device.busNumber == 1 && device.deviceAddress == 2)
        _ = testbed
    }

    @Test func aDiskWithoutUSBParentOrFileSystemIsNotADockableVolume() throws {
        let testbed = try Testbed()
        try testbed.plug(acme)
        try testbed.plug(EmulatedDevice(serial: "BWC0009999", port: 3, disk: "sdd", fileSystem: nil))
        let volumes = try UdevContext().connectedVolumes()
        #expect(volumes.map(\.devnode) == ["/dev/sdb1"])
        #expect(throws: UploaderError.self) { try UdevContext().dockedDevice(devnode: "/dev/nvme0n1") }
    }

    @Test func libusbSeesTheCamerasOwnDescriptor() throws {
        let testbed = try Testbed()
        try testbed.plug(acme)
        try testbed.plug(stick)
        let devices = try USBBus.devices()
        #expect(devices.contains { $0.id == USBID(vendor: "2b4c", product: "0001") && $0.busNumber == 1 && $0.deviceAddress == 2 })
        #expect(devices.contains { $0.id == USBID(vendor: "0781", product: "5567") && $0.deviceAddress == 3 })
    }

    @Test func theMonitorReportsDockAndUndock() throws {
        let testbed = try Testbed()
        let events = Collector<DockEvent>()
        let monitor = UdevMonitorThread(coldplug: false) { events.add($0) }
        try monitor.start()
        defer { monitor.stop(); monitor.waitUntilStopped() }
        try testbed.plug(acme)
        #expect(events.wait { $0.contains { $0.action == .add && $0.sysname == "sdb1" } })
        let added = try #require(events.all.first { $0.action == .add && $0.sysname == "sdb1" })
        #expect(added.device?.usbSerial == "BWC0001234")
        #expect(added.device?.fileSystem == "vfat")
        testbed.unplug(acme)
        #expect(events.wait { $0.contains { $0.action == .remove && $0.sysname == "sdb1" } })
    }

    @Test func aCameraDockedBeforeTheMonitorStartsIsReported() throws {
        let testbed = try Testbed()
        try testbed.plug(acme)
        let events = Collector<DockEvent>()
        let monitor = UdevMonitorThread(coldplug: true) { events.add($0) }
        try monitor.start()
        defer { monitor.stop(); monitor.waitUntilStopped() }
        #expect(events.wait { $0.contains { $0.action == .add && $0.device?.usbSerial == "BWC0001234" } })
    }

    @Test func anUnsupportedUSBStickIsLoggedAndLeftAlone() throws {
        let testbed = try Testbed()
        try testbed.plug(stick)
        let site = try TestSite.docking()
        try CameraVolume.writeRecording(at: site.folder.sub("stick/DCIM/holiday.mp4"), recordedAt: Date(), payloadSize: 1000)
        let runner = try site.runner(models: Self.models, folders: ["/dev/sdc1": site.folder.sub("stick")])
        let outcome = runner.dock(try UdevContext().dockedDevice(devnode: "/dev/sdc1"))
        #expect(outcome.result == .ignored)
        #expect(outcome.exitCode == 5)
        #expect(try site.ledger.files().isEmpty)
        let ignored = try site.ledger.events(EventFilter()).filter { $0.kind == .dockIgnored }
        #expect(ignored.count == 1)
        #expect(ignored.first?.message.contains("0781:5567 SanDisk Cruzer Blade") == true)
    }

    @Test func dockingAnUnknownCameraSecuresItsFilesAndHoldsThem() throws {
        let testbed = try Testbed()
        try testbed.plug(acme)
        let site = try TestSite.docking()
        let cameraHash = try CameraVolume.writeRecording(at: site.folder.sub("acme/DCIM/100ACME/VID0001.MP4"), recordedAt: Date(timeIntervalSince1970: 1_795_000_000), payloadSize: 50_000)
        try CameraVolume.writeRecording(at: site.folder.sub("acme/MISC/notes.mp4"), recordedAt: Date(), payloadSize: 10)
        let runner = try site.runner(models: Self.models, folders: ["/dev/sdb1": site.folder.sub("acme")])
        let outcome = runner.dock(try UdevContext().dockedDevice(devnode: "/dev/sdb1"))
        #expect(outcome.result == .ingested)
        #expect(outcome.serial == "BWC0001234")
        let files = try site.ledger.files()
        // Only the model's media folder is evidence.
        #expect(files.map(\.sourcePath) == ["DCIM/100ACME/VID0001.MP4"])
        #expect(files.first?.sha256 == cameraHash.hex)
        #expect(files.first?.holdReason == .unknownDevice)
        #expect(try site.ledger.events(EventFilter()).map(\.kind).contains(.dockStarted))
        try site.ledger.addDevice(serial: "BWC0001234", defaultUser: "officer-12", name: nil, model: nil)
        #expect(try site.ledger.files().first?.state == .spooled)
    }

    @Test func aCameraWithAGenericUSBSerialIsKnownByItsSerialFile() throws {
        let testbed = try Testbed()
        let vigil = EmulatedDevice(serial: "0123456789", vendor: "1234", product: "5678", manufacturer: "Vigil", productName: "VC-3", port: 4, disk: "sde")
        try testbed.plug(vigil)
        let site = try TestSite.docking()
        try FileManager.default.createDirectory(atPath: site.folder.sub("vigil/SYSTEM"), withIntermediateDirectories: true)
        try "VC3-00042\n".write(toFile: site.folder.sub("vigil/SYSTEM/DEVICE.TXT"), atomically: false, encoding: .utf8)
        try CameraVolume.writeRecording(at: site.folder.sub("vigil/RECORD/VC3_20261123_213000_0001.mp4"), recordedAt: nil, payloadSize: 2000)
        let runner = try site.runner(models: Self.models, folders: ["/dev/sde1": site.folder.sub("vigil")])
        let outcome = runner.dock(try UdevContext().dockedDevice(devnode: "/dev/sde1"))
        #expect(outcome.serial == "VC3-00042")
        let file = try #require(try site.ledger.files().first)
        #expect(file.serial == "VC3-00042")
        #expect(file.recordedAtSource == .fileName)
        // 2026-11-23 21:30:00 UTC, from the name (this model's clock is UTC).
        #expect(file.recordedAt == Date(timeIntervalSince1970: 1_795_469_400))
    }

    @Test func aCameraThatVanishesBeforeItsVolumeIsReadIsAnInterruptedDock() throws {
        let testbed = try Testbed()
        try testbed.plug(acme)
        let site = try TestSite.docking()
        let runner = try site.runner(models: Self.models, folders: ["/dev/sdb1": site.folder.sub("gone")])
        let outcome = runner.dock(try UdevContext().dockedDevice(devnode: "/dev/sdb1"))
        #expect(outcome.result == .interrupted)
        #expect(outcome.exitCode == 3)
        #expect(try site.ledger.events(EventFilter(minimumLevel: .error)).contains { $0.kind == .dockInterrupted })
    }

    @Test func deviceScanShowsConnectedCamerasAndAddConnectedRegistersThem() throws {
        let testbed = try Testbed()
        try testbed.plug(acme)
        try testbed.plug(stick)
        let site = try TestSite.docking()
        // The CLI inherits the testbed through UMOCKDEV_DIR and the preload.
        let scan = try UploaderProcess.run(["device", "scan"], config: site.configPath, environment: testbed.environment)
        #expect(scan.status == 0, "\(scan.stderr)")
        #expect(scan.stdout.contains("/dev/sdb1  2b4c:0001  Acme BodyCam X1  BWC0001234  NOT registered"))
        #expect(scan.stdout.contains("/dev/sdc1  0781:5567  -  -  not a supported camera"))
        let add = try UploaderProcess.run(["device", "add", "--connected", "--user", "officer-77"], config: site.configPath, environment: testbed.environment)
        #expect(add.status == 0, "\(add.stderr)")
        #expect(add.stdout == "registered BWC0001234 to officer-77\n")
        #expect(try site.ledger.device(serial: "BWC0001234")?.model == "Acme BodyCam X1")
        let again = try UploaderProcess.run(["device", "scan", "--json"], config: site.configPath, environment: testbed.environment)
        let cameras = try #require(try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [[String: Any]])
        #expect(cameras.first { $0["serial"] as? String == "BWC0001234" }?["registered"] as? Bool == true)
        _ = testbed
    }

    @Test func theDockCommandLeavesAnUnsupportedStickAloneAndSaysSo() throws {
        let testbed = try Testbed()
        try testbed.plug(stick)
        let site = try TestSite.docking()
        let result = try UploaderProcess.run(["dock", "/dev/sdc1"], config: site.configPath, environment: testbed.environment)
        #expect(result.status == 5)
        #expect(result.stdout.contains("dock /dev/sdc1: ignored: /dev/sdc1 (0781:5567 SanDisk Cruzer Blade) is not a supported camera"))
        let missing = try UploaderProcess.run(["dock", "/dev/sdz1"], config: site.configPath, environment: testbed.environment)
        #expect(missing.status == 1)
        #expect(missing.stderr.hasPrefix("error: /dev/sdz1 is not a block device udev knows"))
        #expect(try site.ledger.events(EventFilter()).map(\.kind).contains(.dockIgnored))
        _ = testbed
    }

    /// Runs the daemon in this process with invariant 7 checked (a blocking call
    /// inside any of its tasks stops the test run) until `body` returns.
    func runDaemon(_ site: TestSite, folders: [String: String], outcomes: Collector<DockOutcome>,
                   _ body: () async throws -> Void) async throws {
        let daemon = AgentDaemon(configuration: try site.configuration(), models: Self.models, ledger: try site.ledger,
                                 dockDispatch: .inProcess(try site.runner(models: Self.models, folders: folders)) { outcomes.add($0) },
                                 logger: Logger(label: "test"), shutdownSignals: [])
        let probe = BlockingCheckProbe()
        let group = ServiceGroup(configuration: .init(services: [.init(service: daemon), .init(service: probe)], logger: Logger(label: "test")))
        // Off the cooperative pool, which other tests' blocking bodies may hold: the daemon's
        // tasks start here, so they run on a thread of their own from their first step.
        try await withOwnThreads { try await withBlockingCallsChecked {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                try await body()
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        } }
        // The daemon's services ran as tasks with the check on: a blocking call among them would have stopped the run.
        let checked = probe.sawTheCheckOn.load(ordering: .relaxed)
        #expect(checked, "invariant 7 was not checked in the daemon's tasks")
    }

    @Test func twoCamerasDockedAtOnceAreBothIngestedByTheDaemon() async throws {
        let testbed = try Testbed()
        let second = EmulatedDevice(serial: "BWC0005678", port: 5, disk: "sdf")
        let site = try TestSite.docking()
        try CameraVolume.writeRecording(at: site.folder.sub("one/DCIM/A.MP4"), recordedAt: Date(), payloadSize: 4 << 20, seed: 1)
        try CameraVolume.writeRecording(at: site.folder.sub("two/DCIM/B.MP4"), recordedAt: Date(), payloadSize: 4 << 20, seed: 2)
        let outcomes = Collector<DockOutcome>()
        try await runDaemon(site, folders: ["/dev/sdb1": site.folder.sub("one"), "/dev/sdf1": site.folder.sub("two")], outcomes: outcomes) { [acme] in
            // Both arrive as udev events, one right after the other.
            try testbed.plug(acme)
            try testbed.plug(second)
            #expect(await BlockingThread.run(name: "test.wait") { outcomes.wait { $0.count >= 2 } })
        }
        #expect(Set(outcomes.all.map { $0.serial ?? "" }) == ["BWC0001234", "BWC0005678"])
        #expect(outcomes.all.allSatisfy { $0.result == .ingested })
        #expect(Set(try site.ledger.files().map(\.serial)) == ["BWC0001234", "BWC0005678"])
        let kinds = try site.ledger.events(EventFilter(minimumLevel: .debug)).map(\.kind)
        #expect(kinds.contains(.daemonStarted) && kinds.contains(.daemonStopped))
    }

    @Test func theWholeDaemonRunsInProcessAndDocksACamera() async throws {
        let testbed = try Testbed()
        let site = try TestSite.docking()
        try CameraVolume.writeRecording(at: site.folder.sub("one/DCIM/A.MP4"), recordedAt: Date(), payloadSize: 1 << 20, seed: 3)
        try await runDaemon(site, folders: ["/dev/sdb1": site.folder.sub("one")], outcomes: Collector<DockOutcome>()) { [acme, ledger = site.ledger] in
            try testbed.plug(acme)
            #expect(await eventually(within: 60) { try ledger.files().first?.spoolName != nil })
        }
        let kinds = try site.ledger.events(EventFilter(minimumLevel: .debug)).map(\.kind)
        #expect(kinds.contains(.daemonStarted) && kinds.contains(.daemonStopped) && kinds.contains(.fileSpooled))
    }
}
