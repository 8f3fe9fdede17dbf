import CUMockdev
import Foundation
import Testing

/// Whether this process runs under `umockdev-wrapper`. scripts/test always
/// uses it; under CI a missing preload fails the tests instead of skipping.
enum Emulation {
    static var available: Bool {
        ProcessInfo.processInfo.environment["LD_PRELOAD"]?.contains("libumockdev-preload") == true
    }

    static var mustRun: Bool { ProcessInfo.processInfo.environment["CI"] != nil }
}

/// One camera (or USB stick) to emulate, made by rewriting the recorded
/// body-camera fixture: its serial, USB id, port and disk name.
struct EmulatedDevice {
    var serial = "BWC0001234"
    var vendor = "2b4c"
    var product = "0001"
    var manufacturer = "Acme"
    var productName = "BodyCam X1"
    /// USB port on root hub 1 (the fixture's is 1).
    var port = 1
    /// Disk name (the fixture's is sdb).
    var disk = "sdb"
    var fileSystem: String? = "vfat"

    var devnode: String { "/dev/\(disk)1" }
    var usbPath: String { "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-\(port)" }
    var hostNumber: Int { 5 + port }
    var partitionPath: String {
        "\(usbPath)/1-\(port):1.0/host\(hostNumber)/target\(hostNumber):0:0/\(hostNumber):0:0:0/block/\(disk)/\(disk)1"
    }

    static let fixture: String = {
        let url = Bundle.module.url(forResource: "Fixtures/bodycam", withExtension: "umockdev")!
        return try! String(contentsOf: url, encoding: .utf8)
    }()

    /// The device records (without the root hub, which the testbed gets once).
    var records: String {
        var text = Self.fixture
        text = String(text[text.range(of: "P: /devices/pci0000:00/0000:00:14.0/usb1/1-1\n")!.lowerBound...])
        text = text.replacingOccurrences(of: "usb1/1-1/1-1:1.0/host6/target6:0:0/6:0:0:0", with: "usb1/1-\(port)/1-\(port):1.0/host\(hostNumber)/target\(hostNumber):0:0/\(hostNumber):0:0:0")
        text = text.replacingOccurrences(of: "usb1/1-1/1-1:1.0/host6/target6:0:0", with: "usb1/1-\(port)/1-\(port):1.0/host\(hostNumber)/target\(hostNumber):0:0")
        text = text.replacingOccurrences(of: "usb1/1-1/1-1:1.0/host6", with: "usb1/1-\(port)/1-\(port):1.0/host\(hostNumber)")
        text = text.replacingOccurrences(of: "usb1/1-1/1-1:1.0", with: "usb1/1-\(port)/1-\(port):1.0")
        text = text.replacingOccurrences(of: "usb1/1-1\n", with: "usb1/1-\(port)\n")
        text = text.replacingOccurrences(of: "bus/usb/001/002", with: "bus/usb/001/\(String(format: "%03d", port + 1))")
        text = text.replacingOccurrences(of: "DEVNUM=002", with: "DEVNUM=\(String(format: "%03d", port + 1))")
        text = text.replacingOccurrences(of: "devnum=2\\n", with: "devnum=\(port + 1)\\n")
        text = text.replacingOccurrences(of: "BWC0001234", with: serial)
        text = text.replacingOccurrences(of: "2b4c", with: vendor).replacingOccurrences(of: "2B4C", with: vendor.uppercased())
        text = text.replacingOccurrences(of: "idProduct=0001", with: "idProduct=\(product)")
        text = text.replacingOccurrences(of: "ID_MODEL_ID=0001", with: "ID_MODEL_ID=\(product)")
        text = text.replacingOccurrences(of: "manufacturer=Acme\\n", with: "manufacturer=\(manufacturer)\\n")
        text = text.replacingOccurrences(of: "product=BodyCam X1\\n", with: "product=\(productName)\\n")
        // The descriptor's idVendor/idProduct bytes (little-endian at offsets 8-11), for libusb.
        let oldDescriptor = "12010002000000404C2B0100"
        let v = UInt16(vendor, radix: 16)!, p = UInt16(product, radix: 16)!
        let newDescriptor = "1201000200000040" + String(format: "%02X%02X%02X%02X", v & 0xff, v >> 8, p & 0xff, p >> 8)
        text = text.replacingOccurrences(of: oldDescriptor, with: newDescriptor)
        text = text.replacingOccurrences(of: "sdb", with: disk)
        if fileSystem == nil {
            text = text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("E: ID_FS_") }.joined(separator: "\n")
        }
        return text
    }
}

/// A umockdev testbed: emulated sysfs and /dev, and uevents for monitors.
/// One per process at a time ($UMOCKDEV_DIR is process-global), so suites
/// using it are serialized. Create it before any libudev or libusb object.
final class Testbed {
    let pointer: OpaquePointer
    private static let rootHub: String = {
        let text = EmulatedDevice.fixture
        return String(text[..<text.range(of: "P: /devices/pci0000:00/0000:00:14.0/usb1/1-1\n")!.lowerBound])
    }()

    init() throws {
        pointer = OpaquePointer(umockdev_testbed_new())
        try add(Self.rootHub)
    }

    deinit {
        g_object_unref(UnsafeMutableRawPointer(pointer))
    }

    /// What a child `uploader` needs to see this testbed (children see none unless given it).
    var environment: [String: String] {
        let root = umockdev_testbed_get_root_dir(UnsafeMutablePointer<UMockdevTestbed>(pointer))!
        defer { g_free(root) }
        return ["UMOCKDEV_DIR": String(cString: root)]
    }

    func add(_ records: String) throws {
        var error: UnsafeMutablePointer<GError>?
        let testbed = UnsafeMutablePointer<UMockdevTestbed>(pointer)
        guard umockdev_testbed_add_from_string(testbed, records, &error) != 0 else {
            let message = error.map { String(cString: $0.pointee.message) } ?? "unknown error"
            throw Failure(message: "umockdev could not add the device: \(message)")
        }
    }

    func plug(_ device: EmulatedDevice) throws { try add(device.records) }

    /// Unplug: remove events for the children first, then the devices.
    func unplug(_ device: EmulatedDevice) {
        let testbed = UnsafeMutablePointer<UMockdevTestbed>(pointer)
        let partition = device.partitionPath
        let disk = (partition as NSString).deletingLastPathComponent
        for path in [partition, disk] {
            umockdev_testbed_uevent(testbed, path, "remove")
        }
        umockdev_testbed_remove_device(testbed, partition)
        umockdev_testbed_remove_device(testbed, disk)
    }

    struct Failure: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }
}
