import Dock
import Ledger
import UploaderCore

/// A connected camera as `device scan` shows it.
public struct ConnectedCamera: Encodable, Sendable {
    public var devnode: String?
    public var usbID: String
    public var model: String?
    public var serial: String?
    public var registered: Bool
    public var user: String?
    public var note: String?
}

/// `uploader device scan` and `device add --connected`: the USB volumes udev
/// sees now, matched to camera models and the registry, and supported cameras
/// on the bus that show no volume.
public enum ConnectedCameras {
    /// Blocking (libudev, libusb, the ledger).
    public static func scan(configuration: Configuration, ledger: Ledger) throws -> [ConnectedCamera] {
        let models = try CameraModels.load(path: configuration.docking.modelsPath)
        let volumes = try UdevContext().connectedVolumes()
        var cameras: [ConnectedCamera] = []
        var seen: Set<String> = []
        for volume in volumes {
            let model = models.model(for: volume.id)
            var serial: String?
            var note: String?
            if let model {
                switch model.serialSource {
                case .usb: serial = volume.usbSerial
                case .file(let path): note = "serial is in \(path) on the camera: dock it to read it"
                }
            } else {
                note = "not a supported camera"
            }
            let device = try serial.flatMap { try ledger.device(serial: $0) }
            cameras.append(ConnectedCamera(devnode: volume.devnode, usbID: volume.id.description, model: model?.name, serial: serial,
                                           registered: device != nil, user: device?.defaultUser, note: note))
            if let bus = volume.busNumber, let address = volume.deviceAddress { seen.insert("\(bus)-\(address)") }
        }
        // Supported cameras on the bus that show no storage (charging only, or in MTP mode).
        for usb in (try? USBBus.devices()) ?? [] where !seen.contains("\(usb.busNumber)-\(usb.deviceAddress)") {
            guard let model = models.model(for: usb.id) else { continue }
            cameras.append(ConnectedCamera(devnode: nil, usbID: usb.id.description, model: model.name, serial: nil, registered: false,
                                           user: nil, note: "on USB bus \(usb.busNumber) address \(usb.deviceAddress) but no storage volume: is it in mass-storage mode?"))
        }
        return cameras
    }
}
