import Foundation
import GRDB
import Testing
import TestSupport
import UploaderCore

/// What a camera or an admin typed never reaches a terminal raw, never lands
/// in a secret, and an admin's action in the log names the admin.
@Suite(.tags(.subprocess)) struct TerminalTextTests {
    static let escape = "\u{1b}"
    /// Sets the terminal's title, then rings the bell: what `printf 'cam\e]0;pwn\a'` gives.
    static let titleSequence = "cam\u{1b}]0;pwn\u{07}"

    @Test func aDeviceNameWithTerminalEscapesIsRefusedAndAStoredOneIsShownEscaped() throws {
        let site = try TestSite.make()
        for option in ["--name", "--model"] {
            let refused = try UploaderProcess.run(["device", "add", "BWC-N", "--user", "officer-n", option, Self.titleSequence], config: site.configPath)
            #expect(refused.status == 2, "\(option): \(refused.stdout)\(refused.stderr)")
            #expect(!refused.stderr.contains(Self.escape) && refused.stderr.split(separator: "\n").count == 1, "\(option): \(refused.stderr)")
        }
        #expect(try UploaderProcess.run(["device", "add", "BWC-N", "--user", "officer-n", "--name", "cam", "--model", "m"], config: site.configPath).status == 0)
        // A name that reached the ledger before names were checked (or behind the agent's back).
        try DatabaseQueue(path: site.ledgerPath).write {
            try $0.execute(sql: "UPDATE device SET name = ?, model = ?", arguments: [Self.titleSequence, Self.titleSequence])
        }
        for command in [["device", "list"], ["device", "show", "BWC-N"]] {
            let result = try UploaderProcess.run(command, config: site.configPath)
            #expect(result.status == 0, "\(command): \(result.stderr)")
            #expect(!result.stdout.contains(Self.escape) && !result.stdout.contains("\u{07}"), "\(command): \(result.stdout.debugDescription)")
            #expect(result.stdout.contains("cam\\u{1b}]0;pwn\\u{7}"), "\(command): \(result.stdout)")
        }
    }

    /// A serial read from a camera (an unregistered one is shown as it came)
    /// and a device's name in the ledger reach `status` escaped.
    @Test func statusNeverPrintsATerminalEscape() throws {
        let site = try TestSite.make()
        try site.ingestOneRecording(named: "VID0001.MP4", serial: "BWC-S")
        try DatabaseQueue(path: site.ledgerPath).write {
            try $0.execute(sql: "UPDATE media_file SET serial = ?", arguments: [Self.titleSequence])
            try $0.execute(sql: "UPDATE file_count SET serial = ? WHERE serial = 'BWC-S'", arguments: [Self.titleSequence])
        }
        let result = try UploaderProcess.run(["status"], config: site.configPath)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stdout.contains(Self.escape) && result.stdout.contains("cam\\u{1b}]0;pwn\\u{7}"), "\(result.stdout.debugDescription)")
    }

    @Test func tagNeverPrintsATerminalEscape() throws {
        let site = try TestSite.make()
        try site.ingestOneRecording(named: "A\u{1b}[31mRED.MP4", serial: "BWC-T")
        for arguments in [["--note", "seen \u{1b}[2J cleared"], ["--case", "C-\u{1b}]0;pwn\u{07}"], ["--incident", "I\u{1b}[31m"]] {
            let result = try UploaderProcess.run(["tag", "RED"] + arguments, config: site.configPath)
            #expect(!result.stdout.contains(Self.escape) && !result.stderr.contains(Self.escape), "\(arguments): \(result.stdout.debugDescription) \(result.stderr.debugDescription)")
        }
    }

    @Test func aSerialTypedWithControlCharactersIsRefusedBeforeAnythingIsCopied() throws {
        let site = try TestSite.make()
        let camera = site.camera
        try CameraVolume.writeRecording(at: camera + "/DCIM/VID0001.MP4", recordedAt: Date(), payloadSize: 10_000)
        let result = try UploaderProcess.run(["ingest", camera, "--serial", "BWC\u{1b}[8m"], config: site.configPath)
        #expect(result.status == 2, "\(result.stdout)\(result.stderr)")
        #expect(!result.stderr.contains(Self.escape) && result.stderr.contains("the serial"), "\(result.stderr.debugDescription)")
        #expect(CameraVolume.evidenceFiles(inSpool: site.root + "/spool").isEmpty)
    }

    @Test func anErrorNamingWhatWasTypedPrintsItEscaped() throws {
        let site = try TestSite.make()
        let result = try UploaderProcess.run(["device", "show", Self.titleSequence], config: site.configPath)
        #expect(result.status == 1)
        #expect(!result.stderr.contains(Self.escape) && result.stderr.contains("\\u{1b}"), "\(result.stderr.debugDescription)")
    }

    @Test(arguments: ["access_key_id", "secret_access_key", "endpoint", "bucket", "region", "prefix"])
    func accountImportRefusesControlCharactersAndChangesNothing(field: String) throws {
        let site = try TestSite.make()
        let credentialsBefore = try String(contentsOfFile: site.root + "/credentials", encoding: .utf8)
        let configBefore = try String(contentsOfFile: site.configPath, encoding: .utf8)
        var account: [String: String] = ["format": "uploader-account-v1", "endpoint": "https://s3.example.gov", "region": "us-east-1",
                                         "bucket": "evidence", "prefix": "springfield-pd", "access_key_id": "AKNEW", "secret_access_key": "NEWSECRET"]
        for control in ["\t", "\r", "\u{0}", "\n"] {
            account[field] = (account[field] ?? "") + control + "x"
            let path = site.folder.sub("account.json")
            try JSONSerialization.data(withJSONObject: account).write(to: URL(fileURLWithPath: path))
            let result = try UploaderProcess.run(["account", "import", path], config: site.configPath)
            #expect(result.status == 2, "\(field) with \(control.debugDescription): \(result.stdout)\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1 && result.stderr.contains(field), "\(result.stderr)")
            #expect(try String(contentsOfFile: site.root + "/credentials", encoding: .utf8) == credentialsBefore)
            #expect(try String(contentsOfFile: site.configPath, encoding: .utf8) == configBefore)
            account[field] = String(account[field]!.dropLast(2))
        }
    }

    @Test func theTextLogNamesWhoDidAnAdminAction() throws {
        let site = try TestSite.make()
        #expect(try UploaderProcess.run(["device", "add", "BWC-A", "--user", "officer-a"], config: site.configPath).status == 0)
        let json = try UploaderProcess.run(["log", "--json"], config: site.configPath)
        let events = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        let registered = try #require(events.first { $0["kind"] as? String == EventKind.deviceRegistered.rawValue })
        let actor = try #require(registered["actor"] as? String)
        let text = try UploaderProcess.run(["log"], config: site.configPath)
        let line = text.stdout.split(separator: "\n").first { $0.contains(EventKind.deviceRegistered.rawValue) } ?? ""
        #expect(line.hasSuffix("(by \(actor))"), "\(text.stdout)")
    }
}
