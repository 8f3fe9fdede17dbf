import Foundation
import Logging
import ServiceLifecycle
import Testing
import TestSupport
import UploaderCore
@testable import Agent
@testable import Ledger
import Platform

/// The daemon's housekeeping (alerts, purge, metrics, checkpoints) runs
/// whether or not the store's credentials can be loaded: a credentials file
/// the agent cannot use is itself an alert, and a fixed file is read by the
/// next upload run without a restart.
@Suite(.serialized, .tags(.store)) struct DaemonHousekeepingTests {
    /// What the alert command left: one file per alert key, holding the alert's JSON.
    static func alertsSent(in folder: String) -> [String: String] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { !$0.hasPrefix(".") }
        return Dictionary(uniqueKeysWithValues: names.map { ($0, (try? String(contentsOfFile: folder + "/" + $0, encoding: .utf8)) ?? "") })
    }

    /// The file's state and last error, and the ledger's last events: what a failure needs to be explained.
    static func fileAndEvents(_ ledger: Ledger) -> String {
        let files = (try? ledger.files().map { "\($0.state) \($0.lastError ?? "-")" }) ?? []
        let events = (try? ledger.events(EventFilter(minimumLevel: .debug)).suffix(12).map { "\($0.kind) \($0.message)" }) ?? []
        return "\(files); events: \(events.joined(separator: " | "))"
    }

    /// The store refuses the run (a wrong secret): the daemon pauses uploads
    /// rather than retry every check, but an admin who fixes the credentials
    /// file is answered at the next check, not a quarter of an hour later.
    @Test func aFixedSecretIsTriedAtOnceAfterTheStoreRefusedARun() async throws {
        let site = try TestSite.make("daemonrefused") { $0.store() }
        let configuration = try site.configuration()
        let ledger = try Ledger(path: configuration.ledgerPath)
        try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        try CameraVolume.writeRecording(at: site.camera + "/A.MP4", recordedAt: Date(), payloadSize: 1 << 20, seed: 6)
        _ = try Ingestor(configuration: configuration, ledger: ledger, logger: Logger(label: "test")).ingest(volume: site.camera, serial: "BWC-1")
        let credentialsPath = site.root + "/credentials"
        let goodCredentials = try String(contentsOfFile: credentialsPath, encoding: .utf8)
        // Valid TOML, a key the store knows, the wrong secret: the store answers 403.
        let wrong = goodCredentials.replacingOccurrences(of: #"secret_access_key = "[^"]*""#, with: #"secret_access_key = "not-the-secret""#,
                                                         options: .regularExpression)
        #expect(wrong != goodCredentials)
        try wrong.write(toFile: credentialsPath, atomically: false, encoding: .utf8)

        let daemon = AgentDaemon(configuration: configuration, models: EmulatedDockTests.models, ledger: ledger,
                                 logger: Logger(label: "test"), shutdownSignals: [], checkInterval: .milliseconds(200)) { daemon in
            [daemon.uploadService()]
        }
        let group = ServiceGroup(configuration: .init(services: [.init(service: daemon)], logger: Logger(label: "test")))
        try await withOwnThreads {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await withBlockingCallsChecked { try await group.run() } }
                let refused = await eventually(within: 60) {
                    (try? ledger.events(EventFilter(minimumLevel: .debug)).contains { $0.kind == .uploadRefused }) == true
                }
                #expect(refused, "the store did not refuse the run: \(Self.fileAndEvents(ledger))")
                #expect(try ledger.files().map(\.state) == [.spooled])
                try goodCredentials.write(toFile: credentialsPath, atomically: false, encoding: .utf8)
                let verified = await eventually(within: 60) { (try? ledger.files().map(\.state)) == [.verified] }
                #expect(verified, "the file is \(Self.fileAndEvents(ledger))")
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        }
    }

    @Test func aBrokenCredentialsFileIsAnAlertAndTheFixedFileUploadsWithoutARestart() async throws {
        let site = try TestSite.make("daemonhouse") {
            $0.store()
            $0.extra = "\n[monitoring]\nalert_command = \"\($0.folder)/alert.sh\"\nmetrics_textfile = \"metrics.prom\"\n"
        }
        let alerts = site.folder.sub("alerts")
        try FileManager.default.createDirectory(atPath: alerts, withIntermediateDirectories: true)
        // The alert command writes the alert's JSON (its stdin) to a file named after its key.
        let script = site.folder.sub("alert.sh")
        try "#!/bin/sh\ncat > \"\(alerts)/.$UPLOADER_ALERT_KEY.tmp\" && mv \"\(alerts)/.$UPLOADER_ALERT_KEY.tmp\" \"\(alerts)/$UPLOADER_ALERT_KEY.json\"\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let configuration = try site.configuration()
        let ledger = try Ledger(path: configuration.ledgerPath)
        try ledger.addDevice(serial: "BWC-1", defaultUser: "officer-1", name: nil, model: nil)
        try CameraVolume.writeRecording(at: site.camera + "/A.MP4", recordedAt: Date(), payloadSize: 1 << 20, seed: 5)
        _ = try Ingestor(configuration: configuration, ledger: ledger, logger: Logger(label: "test")).ingest(volume: site.camera, serial: "BWC-1")
        #expect(try ledger.files().map(\.state) == [.spooled])

        // An admin's slip: the credentials file is no longer TOML.
        let credentialsPath = site.root + "/credentials"
        let goodCredentials = try String(contentsOfFile: credentialsPath, encoding: .utf8)
        try "access_key_id = \"unterminated\n".write(toFile: credentialsPath, atomically: false, encoding: .utf8)

        // The daemon's own housekeeping and upload services, checking often; no dock
        // monitor (no camera here) and no systemd notifier.
        let daemon = AgentDaemon(configuration: configuration, models: EmulatedDockTests.models, ledger: ledger,
                                 logger: Logger(label: "test"), shutdownSignals: [], checkInterval: .milliseconds(200)) { daemon in
            [daemon.housekeepingService(), daemon.uploadService()]
        }
        let group = ServiceGroup(configuration: .init(services: [.init(service: daemon)], logger: Logger(label: "test")))
        // The test and the daemon's tasks (started from here, so from their first step) run
        // off the cooperative pool, which other tests' blocking bodies may hold for minutes.
        try await withOwnThreads {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                // Invariant 7 checked in the daemon's tasks.
                tasks.addTask { try await withBlockingCallsChecked { try await group.run() } }
                // The admin hears of it through the alert command, and the metrics file is written all the same.
                // (The alert lands before the metrics in a round: wait for both.)
                let alerted = await eventually(within: 30) {
                    Self.alertsSent(in: alerts)["credentials-unusable.json"] != nil && FileManager.default.fileExists(atPath: site.root + "/metrics.prom")
                }
                #expect(alerted, "no credentials alert; sent: \(Self.alertsSent(in: alerts).keys.sorted())")
                #expect(Self.alertsSent(in: alerts)["credentials-unusable.json"]?.contains("is not valid TOML") == true)
                #expect(FileManager.default.fileExists(atPath: site.root + "/metrics.prom"))
                #expect(try ledger.files().map(\.state) == [.spooled])

                // The admin fixes the file: the next run reads it and uploads, no restart.
                try goodCredentials.write(toFile: credentialsPath, atomically: false, encoding: .utf8)
                let verified = await eventually(within: 60) { (try? ledger.files().map(\.state)) == [.verified] }
                #expect(verified, "the file is \(Self.fileAndEvents(ledger))")
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        }
        #expect(try site.storedKeys().count == 1)
        let sent = try ledger.events(EventFilter(minimumLevel: .debug)).filter { $0.kind == .alertSent }.map(\.message)
        #expect(sent.contains { $0.hasPrefix("[credentials-unusable]") })
    }
}
