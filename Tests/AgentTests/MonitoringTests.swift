import Foundation
import Logging
import Testing
import TestSupport
import UploaderCore
@testable import Agent
@testable import Ledger
@testable import Transport

@Suite(.serialized, .tags(.store, .subprocess)) struct MonitoringTests {
    @Test func aQuarantinedFileAlertsOnceThroughTheCommandAndTheWebhook() throws {
        let server = try RecordingHTTPServer()
        let site = try TestSite.make("alerts") { $0.extra = """
            [monitoring]
            alert_command = "cat >> '\($0.folder)/alerts.jsonl'; echo >> '\($0.folder)/alerts.jsonl'; echo \\"$UPLOADER_ALERT_KEY\\" >> '\($0.folder)/alerts.jsonl.keys'"
            alert_webhook = "\(server.url)"
            """ }
        let received = site.folder.sub("alerts.jsonl")
        try FileManager.default.createDirectory(atPath: site.folder.sub("cam"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: site.folder.sub("cam/evil.mp4"), withDestinationPath: "/etc/shadow")
        _ = try UploaderProcess.run(["ingest", site.folder.sub("cam"), "--serial", "BWC-A"], config: site.configPath)

        let first = try UploaderProcess.run(["alerts"], config: site.configPath)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("sent: [file-1-quarantined] BWC-A evil.mp4 quarantined (hostile entry)"))
        #expect(try String(contentsOfFile: received + ".keys", encoding: .utf8) == "file-1-quarantined\n")
        let payload = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: received))) as? [String: Any])
        #expect(payload["key"] as? String == "file-1-quarantined")
        #expect(payload["serial"] as? String == "BWC-A")
        #expect(server.wait(for: 1))
        #expect(server.requests.first?.contains("\"key\":\"file-1-quarantined\"") == true)

        // Still true a minute later, but not sent again within repeat_hours.
        let second = try UploaderProcess.run(["alerts"], config: site.configPath)
        #expect(second.stdout == "no alert due\n")
        #expect(try String(contentsOfFile: received + ".keys", encoding: .utf8) == "file-1-quarantined\n")
        #expect(try Ledger(path: site.ledgerPath).events(EventFilter(minimumLevel: .warning)).filter { $0.kind == .alertSent }.count == 1)
    }

    @Test func oldBacklogsAndIdleDocksRaiseAlerts() throws {
        let site = try TestSite.make()
        let ledger = try Ledger(path: site.ledgerPath)
        _ = try ledger.discover(serial: "BWC-B", sourcePath: "DCIM/A.MP4", size: 10, modifiedNanoseconds: 1)
        try ledger.log(EventDraft(.notice, .dockStarted, serial: "BWC-C", "docked"))
        let dispatcher = AlertDispatcher(configuration: try site.configuration(), ledger: ledger, logger: Logger(label: "t"))
        #expect(try dispatcher.run(send: false).isEmpty)
        let later = try dispatcher.run(now: Date().addingTimeInterval(40 * 3600), send: false)
        #expect(Set(later.map { $0.key.split(separator: "-").prefix(2).joined(separator: "-") }) == ["oldest-unverified", "dock-idle"])
    }

    @Test func metricsDescribeTheLedgerInPrometheusFormat() throws {
        let fixture = try TestSite.make("metrics") { $0.store() }
        try fixture.ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        try CameraVolume.writeRecording(at: fixture.camera + "/A.MP4", recordedAt: Date(), payloadSize: 1000)
        try CameraVolume.writeRecording(at: fixture.camera + "/B.MP4", recordedAt: Date(), payloadSize: 2000, seed: 3)
        try fixture.ingest()
        #expect(try fixture.upload().verified == 2)
        let text = try fixture.cli(["metrics"]).stdout
        #expect(text.contains("# TYPE uploader_files gauge"))
        #expect(text.contains("uploader_files{state=\"verified\"} 2"))
        #expect(text.contains("uploader_files{state=\"failed\"} 0"))
        let bytes = try fixture.ledger.files().reduce(Int64(0)) { $0 + $1.sourceSize }
        #expect(text.contains("uploader_uploaded_bytes_total \(bytes)"))
        #expect(text.contains("uploader_oldest_unverified_age_seconds 0"))
        #expect(text.contains("uploader_spool_above_high_watermark 0"))
        #expect(text.contains("uploader_spool_used_ratio 0."))
    }
}
