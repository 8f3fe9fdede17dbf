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
