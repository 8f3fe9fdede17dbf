import Foundation
import Ledger
import Testing
import TestSupport
@testable import Transport
import UploaderCore

/// GPS tracks and metadata files that belong to a recording: linked in the
/// ledger, uploaded beside it naming it, exported with it.
@Suite(.tags(.store, .subprocess)) struct SidecarTests {
    @Test func sidecarsAreLinkedUploadedBesideTheirRecordingAndExportedWithIt() throws {
        let site = try TestSite.make("sidecar") { $0.store() }
        func run(_ arguments: [String]) throws -> UploaderProcess.Result {
            let result = try UploaderProcess.run(arguments, config: site.configPath)
            #expect(result.status == 0, "\(arguments): \(result.stdout)\(result.stderr)")
            return result
        }
        let camera = site.folder.sub("cam")
        _ = try run(["simulate-camera", camera, "--files", "2", "--size", "1MiB"])
        let dcim = camera + "/DCIM/100BWC/"
        // A GPS track and a metadata file of the first recording; one XML of nothing on the camera.
        try "$GPGGA,212300.00,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\n".write(toFile: dcim + "VID0001.GPS", atomically: false, encoding: .utf8)
        try #"{"officer":"4417","event":"traffic stop"}"#.write(toFile: dcim + "VID0001.json", atomically: false, encoding: .utf8)
        try "<orphan/>".write(toFile: dcim + "NOTES.xml", atomically: false, encoding: .utf8)
        let old = Date().addingTimeInterval(-600)
        for name in ["VID0001.GPS", "VID0001.json", "NOTES.xml"] {
            try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: dcim + name)
        }
        // Docked before it is registered: everything is held, then released by the registration.
        _ = try run(["ingest", camera, "--serial", "BWC-9"])
        _ = try run(["device", "add", "BWC-9", "--user", "officer-9"])

        let ledger = try Ledger(path: site.ledgerPath)
        let files = Dictionary(uniqueKeysWithValues: try ledger.files().map { (($0.sourcePath as NSString).lastPathComponent, $0) })
        let recording = try #require(files["VID0001.MP4"])
        #expect(files["VID0001.GPS"]?.sidecarOf == recording.id && files["VID0001.json"]?.sidecarOf == recording.id)
        #expect(files["NOTES.xml"]?.sidecarOf == nil && files["VID0002.MP4"]?.sidecarOf == nil)
        #expect(try ledger.sidecars(of: recording.id).count == 2)
        // Dated and attributed by their recording, whichever was copied first.
        for name in ["VID0001.GPS", "VID0001.json"] {
            #expect(files[name]?.recordedAt == recording.recordedAt && files[name]?.recordedAtSource == .recording, "\(name)")
        }
        #expect(files["NOTES.xml"]?.recordedAtSource == .fileModificationTime)

        _ = try run(["upload"])
        let uploaded = Dictionary(uniqueKeysWithValues: try ledger.files().map { (($0.sourcePath as NSString).lastPathComponent, $0) })
        let recordingKey = try #require(uploaded["VID0001.MP4"]?.objectKey)
        let stem = String(recordingKey.dropLast(".MP4".count))
        #expect(uploaded["VID0001.GPS"]?.objectKey == stem + ".GPS")
        #expect(uploaded["VID0001.json"]?.objectKey == stem + ".json")
        let client = site.client
        let head = try #require(try client.headObject(key: stem + ".GPS"))
        #expect(head.metadata["recording-key"] == recordingKey && head.metadata["recording-sha256"] == recording.sha256)

        // Exporting the recording brings its sidecars, beside it in the bag.
        let bag = site.folder.sub("bag")
        let exported = try run(["export", "#\(recording.id)", "--output", bag])
        #expect(exported.stdout.contains("wrote \(bag): 3 files"), "\(exported.stdout)")
        let payload = try FileManager.default.contentsOfDirectory(atPath: bag + "/data/BWC-9").sorted()
        let prefix = String(format: "%06lld-", recording.id)
        #expect(payload == [prefix + "VID0001.GPS", prefix + "VID0001.MP4", prefix + "VID0001.json"])
        let info = try String(contentsOfFile: bag + "/bag-info.txt", encoding: .utf8)
        #expect(info.contains("sidecar of data/BWC-9/\(prefix)VID0001.MP4"))
        let verified = try run(["verify-bag", bag, "--store"])
        #expect(verified.status == 0, "\(verified.stdout)")
    }
}
