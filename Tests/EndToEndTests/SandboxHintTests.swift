import Foundation
import Testing
import TestSupport
import UploaderCore

/// The units' sandbox makes everything but the spool and state folders
/// read-only: an admin who moves [paths] is told what to add.
@Suite(.tags(.subprocess)) struct SandboxHintTests {
    @Test(.enabled(if: geteuid() == 0, "needs root to mount a read-only file system"))
    func aStateFolderTheSandboxKeepsReadOnlySaysWhatToAdd() throws {
        let site = try TestSite.make("readonly")
        try FileManager.default.createDirectory(atPath: site.folder.sub("ro"), withIntermediateDirectories: true)
        try runTool("/bin/mount", ["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", site.folder.sub("ro")])
        defer { _ = try? runTool("/bin/umount", [site.folder.sub("ro")]) }
        let config = try String(contentsOfFile: site.configPath, encoding: .utf8)
            .replacingOccurrences(of: "state = \"state\"", with: "state = \"\(site.folder.sub("ro/state"))\"")
        try config.write(toFile: site.configPath, atomically: true, encoding: .utf8)
        let result = try UploaderProcess.run(["device", "add", "CAM-0001", "--user", "officer-1"], config: site.configPath)
        #expect(result.status != 0)
        #expect(result.stderr.hasPrefix("error: cannot create the state folder \(site.folder.sub("ro/state"))"), "\(result.stderr)")
        #expect(result.stderr.contains("is read-only for the agent") && result.stderr.contains("ReadWritePaths=\(site.folder.sub("ro/state"))\n"), "\(result.stderr)")
    }
}
