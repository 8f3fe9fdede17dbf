/// A camera file as the copy engine sees it: where it is, and the size the
/// scan saw. The ledger's row (`MediaFile`) holds the same fields among its
/// columns and gives its `cameraFile`; the copy engine (below the ledger in
/// the layering) sees only this.
public struct CameraFile: Sendable {
    /// Names the spool copy (the ledger row's id).
    public var id: Int64
    public var serial: String
    public var sourcePath: String
    public var sourceSize: Int64

    public init(id: Int64, serial: String, sourcePath: String, sourceSize: Int64) {
        self.id = id
        self.serial = serial
        self.sourcePath = sourcePath
        self.sourceSize = sourceSize
    }

    /// The file's name on the camera (last path component).
    public var name: String { String(sourcePath.split(separator: "/").last ?? Substring(sourcePath)) }
}
