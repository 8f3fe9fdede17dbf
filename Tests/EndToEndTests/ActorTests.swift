import Foundation
import GRDB
import Testing
import TestSupport
@testable import Ledger
@testable import Transport
import UploaderCore

@Suite(.tags(.subprocess)) struct ActorTests {
    @Test func anAdminActionNamesTheOperatingSystemUserWhoRanIt() throws {
        let site = try TestSite.make("actor")
        let added = try UploaderProcess.run(["device", "add", "BWC-4001", "--user", "officer-41"], config: site.configPath,
                                            environment: ["SUDO_USER": "sergeant-kim"])
        #expect(added.status == 0, "\(added.stderr)")
        let log = try UploaderProcess.run(["log", "--device", "BWC-4001"], config: site.configPath)
        let me = ProcessInfo.processInfo.userName
        #expect(log.stdout.contains("device.registered") && log.stdout.contains("(by \(me) via sudo by sergeant-kim)"), "\(log.stdout)")
        let json = try UploaderProcess.run(["log", "--device", "BWC-4001", "--json"], config: site.configPath)
        #expect(json.stdout.contains("\"actor\":\"\(me) via sudo by sergeant-kim\""), "\(json.stdout)")
        // An admin action names its actor even when that is the agent's own user; the agent's own steps need no "by".
        let plain = try UploaderProcess.run(["device", "add", "BWC-4002", "--user", "officer-42"], config: site.configPath)
        #expect(plain.status == 0)
        #expect(try UploaderProcess.run(["simulate-camera", site.folder.sub("cam"), "--files", "1", "--size", "1MiB"], config: site.configPath).status == 0)
        #expect(try UploaderProcess.run(["ingest", site.folder.sub("cam"), "--serial", "BWC-4002"], config: site.configPath).status == 0)
        let second = try UploaderProcess.run(["log", "--device", "BWC-4002"], config: site.configPath)
        let lines = second.stdout.split(separator: "\n")
        #expect(lines.contains { $0.contains("device.registered") && $0.hasSuffix("(by \(me))") }, "\(second.stdout)")
        #expect(lines.contains { $0.contains("file.spooled") } && !lines.contains { $0.contains("file.spooled") && $0.contains("(by ") }, "\(second.stdout)")
    }
}
