internal import CUdev
import Foundation
import SystemPackage
import UploaderCore
import Platform

/// What udev knows about a docked block device and the USB device it hangs off.
public struct DockedDevice: Sendable, Equatable, Codable {
    /// `/dev/sdb1`
    public var devnode: String
    /// `sdb1`
    public var sysname: String
    public var syspath: String
    public var fileSystem: String?
    public var fileSystemLabel: String?
    public var usbID: USBIDValue
    /// The USB serial: `ID_SERIAL_SHORT`, else the USB device's sysfs `serial`.
    public var usbSerial: String?
    public var manufacturer: String?
    public var product: String?
    /// USB bus and address, to correlate with libusb.
    public var busNumber: Int?
    public var deviceAddress: Int?

    public var id: USBID { USBID(vendor: usbID.vendor, product: usbID.product) }
}

/// `USBID` as stored in `DockedDevice` (Codable).
public struct USBIDValue: Sendable, Equatable, Codable {
    public var vendor: String
    public var product: String
}

/// A libudev context. libudev objects are not thread-safe: a `UdevContext`
/// and everything made from it stay on the thread that created them, so
/// the type is deliberately not Sendable.
public final class UdevContext {
    let udev: OpaquePointer

    public init() throws {
        BlockingCallCheck.assertNotInTask("libudev")
        guard let udev = udev_new() else {
            throw UploaderError(.io, "cannot start libudev (udev_new failed): is /sys mounted?")
        }
        self.udev = udev
    }

    deinit {
        udev_unref(udev)
    }

    /// The docked block device behind a device node such as `/dev/sdb1`.
    public func dockedDevice(devnode: String) throws -> DockedDevice {
        let sysname = (devnode as NSString).lastPathComponent
        guard let device = udev_device_new_from_subsystem_sysname(udev, "block", sysname) else {
            throw UploaderError(.notFound, "\(devnode) is not a block device udev knows: was the camera unplugged?")
        }
        defer { udev_device_unref(device) }
        guard let docked = Self.describe(device) else {
            throw UploaderError(.unknownDevice, "\(devnode) is not on a USB device; only USB cameras are docked")
        }
        return docked
    }

    /// Every USB block device with a file system that is connected now (coldplug).
    public func connectedVolumes() throws -> [DockedDevice] {
        guard let enumerate = udev_enumerate_new(udev) else { return [] }
        defer { udev_enumerate_unref(enumerate) }
        udev_enumerate_add_match_subsystem(enumerate, "block")
        // Emulated and freshly added devices may be "uninitialized": match on properties, not on that flag.
        udev_enumerate_add_match_property(enumerate, "ID_BUS", "usb")
        udev_enumerate_scan_devices(enumerate)
        var result: [DockedDevice] = []
        var entry = udev_enumerate_get_list_entry(enumerate)
        while let current = entry {
            if let path = udev_list_entry_get_name(current),
               let device = udev_device_new_from_syspath(udev, path) {
                if let docked = Self.describe(device), docked.fileSystem != nil { result.append(docked) }
                udev_device_unref(device)
            }
            entry = udev_list_entry_get_next(current)
        }
        return result.sorted { $0.devnode < $1.devnode }
    }

    static func describe(_ device: OpaquePointer) -> DockedDevice? {
        guard let usb = udev_device_get_parent_with_subsystem_devtype(device, "usb", "usb_device") else { return nil }
        func property(_ target: OpaquePointer, _ name: String) -> String? {
            udev_device_get_property_value(target, name).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
        }
        func attribute(_ target: OpaquePointer, _ name: String) -> String? {
            udev_device_get_sysattr_value(target, name).map { String(cString: $0).trimmingCharacters(in: .whitespacesAndNewlines) }
                .flatMap { $0.isEmpty ? nil : $0 }
        }
        guard let vendor = attribute(usb, "idVendor"), let product = attribute(usb, "idProduct") else { return nil }
        let sysname = udev_device_get_sysname(device).map { String(cString: $0) } ?? ""
        let devnode = udev_device_get_devnode(device).map { String(cString: $0) } ?? "/dev/\(sysname)"
        return DockedDevice(
            devnode: devnode, sysname: sysname,
            syspath: udev_device_get_syspath(device).map { String(cString: $0) } ?? "",
            fileSystem: property(device, "ID_FS_TYPE"), fileSystemLabel: property(device, "ID_FS_LABEL"),
            usbID: USBIDValue(vendor: vendor.lowercased(), product: product.lowercased()),
            usbSerial: property(device, "ID_SERIAL_SHORT") ?? attribute(usb, "serial"),
            manufacturer: attribute(usb, "manufacturer"), product: attribute(usb, "product"),
            busNumber: attribute(usb, "busnum").flatMap { Int($0) }, deviceAddress: attribute(usb, "devnum").flatMap { Int($0) })
    }
}

/// One event from the udev monitor.
public struct DockEvent: Sendable, Equatable {
    public enum Action: String, Sendable { case add, remove, change }
    public var action: Action
    public var device: DockedDevice?
    public var sysname: String
}

/// A libudev monitor on the `udev` netlink source (never `kernel`: udev's
/// events carry the properties, and arrive once udev has processed them).
/// Runs on one dedicated thread that owns every libudev object it uses,
/// including the enumeration for coldplug and after an overflow.
public final class UdevMonitorThread: @unchecked Sendable {
    public typealias Handler = @Sendable (DockEvent) -> Void

    private let handler: Handler
    private let coldplug: Bool
    /// Nil when no pipe could be made (no descriptors left): `start` says so.
    private let stopPipe: WakeUpPipe?
    private var thread: Thread?
    private let ready = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private var startError: UploaderError?

    /// `coldplug`: report the volumes already connected as `add` events, once
    /// listening, so a camera docked before the daemon started is not missed.
    public init(coldplug: Bool, handler: @escaping Handler) {
        stopPipe = try? WakeUpPipe()
        self.coldplug = coldplug
        self.handler = handler
    }

    /// Starts the thread and returns once the monitor is listening. Blocks:
    /// for threads and synchronous callers; async code uses `started()`.
    public func start() throws {
        BlockingCallCheck.assertNotInTask("udev monitor start")
        launch()
        ready.wait()
        if let startError { throw startError }
    }

    /// Starts the thread and resumes once the monitor is listening, without
    /// holding a thread of the cooperative pool while libudev sets up.
    public func started() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            onReady = { error in
                if let error { continuation.resume(throwing: error) } else { continuation.resume() }
            }
            launch()
        }
    }

    private func launch() {
        let thread = Thread { [self] in run() }
        thread.name = "uploader.udev-monitor"
        self.thread = thread
        thread.start()
    }

    /// Told (on the monitor's thread) once it listens or failed to start.
    private var onReady: ((UploaderError?) -> Void)?

    private func signalReady() {
        if let onReady { onReady(startError) } else { ready.signal() }
    }

    /// Asks the thread to stop; it does within one poll wake-up. Never blocks.
    public func stop() {
        stopPipe?.wake()
    }

    /// Waits for the thread to end (tests, and blocking shutdown paths only).
    public func waitUntilStopped() {
        if thread != nil { finished.wait() }
        thread = nil
    }

    private func announceConnected(_ context: UdevContext) {
        for device in (try? context.connectedVolumes()) ?? [] {
            handler(DockEvent(action: .add, device: device, sysname: device.sysname))
        }
    }

    private func run() {
        defer { finished.signal() }
        guard let stopPipe else {
            startError = UploaderError(.io, "cannot start the udev monitor: no file descriptor left for its stop pipe (see `ulimit -n`)")
            signalReady()
            return
        }
        guard let context = try? UdevContext() else {
            startError = UploaderError(.io, "cannot open the udev monitor: is systemd-udevd running?")
            signalReady()
            return
        }
        // Opening the netlink socket can fail for a moment on a busy machine (the
        // kernel's answer is in the error): a few tries before the daemon gives up.
        var opened: OpaquePointer?
        var failure = ""
        for attempt in 0..<5 {
            if attempt > 0 { Thread.sleep(forTimeInterval: 0.1 * Double(1 << attempt)) }
            guard let candidate = udev_monitor_new_from_netlink(context.udev, "udev") else {
                failure = "udev_monitor_new_from_netlink: \(Errno(rawValue: errno).summary)"
                continue
            }
            udev_monitor_filter_add_match_subsystem_devtype(candidate, "block", nil)
            // A large buffer, so forty cameras docked at 07:00 do not overflow it.
            udev_monitor_set_receive_buffer_size(candidate, 128 * 1024 * 1024)
            let result = udev_monitor_enable_receiving(candidate)
            if result >= 0 {
                opened = candidate
                break
            }
            failure = "udev_monitor_enable_receiving: \(Errno(rawValue: -result).summary)"
            udev_monitor_unref(candidate)
        }
        guard let monitor = opened else {
            startError = UploaderError(.io, "cannot listen for udev events: is systemd-udevd running?", cause: failure)
            signalReady()
            return
        }
        defer { udev_monitor_unref(monitor) }
        signalReady()
        if coldplug { announceConnected(context) }
        let monitorFD = FileDescriptor(rawValue: udev_monitor_get_fd(monitor))
        while true {
            guard let ready = try? Syscall.waitUntilReadable([monitorFD, stopPipe.readEnd]) else { return }
            if ready[1] { return }
            guard ready[0] else { continue }
            errno = 0
            guard let device = udev_monitor_receive_device(monitor) else {
                // The kernel dropped events: what is connected now is the truth.
                if errno == ENOBUFS { announceConnected(context) }
                continue
            }
            let action = udev_device_get_action(device).map { String(cString: $0) } ?? ""
            let sysname = udev_device_get_sysname(device).map { String(cString: $0) } ?? ""
            if let parsed = DockEvent.Action(rawValue: action) {
                handler(DockEvent(action: parsed, device: UdevContext.describe(device), sysname: sysname))
            }
            udev_device_unref(device)
        }
    }
}
