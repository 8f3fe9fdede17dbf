import Foundation
import Platform
import UploaderCore

/// Spool backpressure with hysteresis: once the spool disk is above its high
/// watermark, copying stops (files stay on the camera) until use falls below
/// the low watermark. The state lives in a marker file beside the spool, so
/// every process (dock units, the daemon) sees the same answer.
public struct SpoolPressure: Sendable {
    public let spool: Spool
    public let highPercent: Double
    public let lowPercent: Double
    /// (available, total) bytes of the spool's file system.
    let probe: @Sendable () -> (available: Int64, total: Int64)?

    public init(spool: Spool, highPercent: Double, lowPercent: Double,
                probe: (@Sendable () -> (available: Int64, total: Int64)?)? = nil) {
        self.spool = spool
        self.highPercent = highPercent
        self.lowPercent = lowPercent
        let root = spool.root
        self.probe = probe ?? { try? Syscall.filesystemSpace(root) }
    }

    var markerPath: String { spool.root + "/.above-high-watermark" }

    public var usedPercent: Double? { usedPercent(pendingBytes: 0) }

    /// `pendingBytes`: copies under way that will land on the disk, counted as if done.
    public func usedPercent(pendingBytes: Int64) -> Double? {
        guard let space = probe(), space.total > 0 else { return nil }
        return Double(space.total - space.available + pendingBytes) / Double(space.total) * 100
    }

    public var isHolding: Bool { FileManager.default.fileExists(atPath: markerPath) }

    /// nil when copying may go on; else the reason to leave files on the camera.
    public func mayCopy(pendingBytes: Int64 = 0) -> String? {
        guard let used = usedPercent(pendingBytes: pendingBytes) else { return nil }
        if isHolding {
            if used < lowPercent {
                try? FileManager.default.removeItem(atPath: markerPath)
                return nil
            }
            return String(format: "the spool is %.0f%% full and waits to fall below %.0f%% (low watermark): files stay on the camera until uploads are verified and purged", used, lowPercent)
        }
        if used >= highPercent {
            _ = FileManager.default.createFile(atPath: markerPath, contents: Data(String(format: "%.1f\n", used).utf8))
            return String(format: "the spool is %.0f%% full (high watermark %.0f%%): the remaining files stay on the camera and are copied once space frees", used, highPercent)
        }
        return nil
    }
}
