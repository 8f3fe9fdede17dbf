import Foundation
import Testing
import TestSupport
import UploaderCore

/// `sudo uploader …` on a PC where the agent's user owns the state folder.
@Suite(.tags(.subprocess)) struct AgentUserTests {
    @Test(.enabled(if: geteuid() == 0, "needs root to act as an admin's sudo"))
    func aCommandTypedAsRootRunsAsTheOwnerOfTheStateFolder() throws {
        let site = try TestSite.make("sudo")
        chmod(site.folder.path, 0o755)
        chmod(site.root, 0o755)
        for path in [site.root + "/state", site.spool] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
            #expect(chown(path, 65534, 65534) == 0)
        }
        let result = try UploaderProcess.run(["device", "add", "CAM-0001", "--user", "officer-1"], config: site.configPath)
        #expect(result.status == 0, "\(result.stderr)")
        var info = stat()
        #expect(stat(site.ledgerPath, &info) == 0)
        #expect(info.st_uid == 65534, "the ledger was created by uid \(info.st_uid)")
        // A state folder root owns: nothing to become, root it is.
        let rootSite = try TestSite.make("root-site")
        let asRoot = try UploaderProcess.run(["device", "add", "CAM-0002", "--user", "officer-2"], config: rootSite.configPath)
        #expect(asRoot.status == 0, "\(asRoot.stderr)")
        #expect(stat(rootSite.ledgerPath, &info) == 0 && info.st_uid == 0)
    }
}
