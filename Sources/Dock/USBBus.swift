internal import CLibUSB
import UploaderCore

/// A USB device as libusb sees it on the bus, from its own device descriptor.
public struct USBDeviceInfo: Sendable, Equatable, Codable {
    public var busNumber: Int
    public var deviceAddress: Int
    public var vendor: String
    public var product: String
    public var deviceClass: Int

    public var id: USBID { USBID(vendor: vendor, product: product) }
}

/// Lists USB devices through libusb: what `uploader device scan` uses to show
/// cameras that are connected but expose no storage (charging only, MTP mode).
/// A context is created per call, never in a global, so it sees the bus as it is now.
public enum USBBus {
    public static func devices() throws -> [USBDeviceInfo] {
        var context: OpaquePointer?
        let status = libusb_init(&context)
        guard status == 0, let context else {
            throw UploaderError(.io, "cannot open the USB bus through libusb: \(String(cString: libusb_strerror(status)))")
        }
        defer { libusb_exit(context) }
        var list: UnsafeMutablePointer<OpaquePointer?>?
        let count = libusb_get_device_list(context, &list)
        guard count >= 0, let list else {
            throw UploaderError(.io, "cannot list USB devices: \(String(cString: libusb_strerror(Int32(count))))")
        }
        defer { libusb_free_device_list(list, 1) }
        var result: [USBDeviceInfo] = []
        for index in 0..<Int(count) {
            guard let device = list[index] else { continue }
            var descriptor = libusb_device_descriptor()
            guard libusb_get_device_descriptor(device, &descriptor) == 0 else { continue }
            result.append(USBDeviceInfo(
                busNumber: Int(libusb_get_bus_number(device)), deviceAddress: Int(libusb_get_device_address(device)),
                vendor: String(format: "%04x", descriptor.idVendor), product: String(format: "%04x", descriptor.idProduct),
                deviceClass: Int(descriptor.bDeviceClass)))
        }
        return result.sorted { ($0.busNumber, $0.deviceAddress) < ($1.busNumber, $1.deviceAddress) }
    }
}
