import Foundation
import Platform
import Testing
@testable import UploaderCore

@Suite struct CameraModelTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func theShippedModelsFileLoadsWithTwoConcreteModelsAndAGenericOne() throws {
        let models = try CameraModels.load(path: Self.packageRoot.appendingPathComponent("Config/cameras.toml").path)
        #expect(models.models.map(\.id) == ["generic-usb-storage", "acme-bodycam-x1", "vigil-vc3"])
        #expect(models.model(for: USBID(vendor: "2B4C", product: "0001"))?.id == "acme-bodycam-x1")
        #expect(models.model(for: USBID(vendor: "0781", product: "5567")) == nil)
        let vigil = try #require(models.model(for: USBID("1234:5678")!))
        #expect(vigil.serialSource == .file("SYSTEM/DEVICE.TXT"))
        #expect(vigil.recordingTime == .fileName("YYYYMMDD_hhmmss"))
        #expect(vigil.cameraClock == .local)
    }

    @Test func theCommittedUdevRulesAreTheOnesTheModelsFileGenerates() throws {
        let models = try CameraModels.load(path: "Config/cameras.toml".relative(to: Self.packageRoot))
        let committed = try String(contentsOf: Self.packageRoot.appendingPathComponent("udev/90-uploader.rules"), encoding: .utf8)
        #expect(committed == UdevRules.render(CameraModels(models: models.models, sourcePath: "Config/cameras.toml")))
        #expect(committed.contains("ENV{ID_VENDOR_ID}==\"2b4c\", ENV{ID_MODEL_ID}==\"0001\", TAG+=\"systemd\", ENV{SYSTEMD_WANTS}+=\"uploader-dock@%k.service\""))
        #expect(!committed.contains("RUN+="))
    }

    @Test func badModelEntriesAreReportedWithTheirLines() throws {
        let error = try #require(throws: UploaderError.self) {
            try CameraModels.parse("""
                [[model]]
                id = "a"
                usb_ids = ["2b4c:0001", "nonsense"]
                serial = "bluetooth"

                [[model]]
                id = "b"
                usb_ids = ["2b4c:0001"]
                recording_time = "filename:hhmmss"
                """, path: "cameras.toml")
        }
        #expect(error.problems.map { "\($0.line ?? 0) \($0.key)" } == ["1 model[1].usb_ids", "1 model[1].serial", "6 model[2].usb_ids", "6 model[2].recording_time"])
    }

    @Test func timesAreReadFromFileNames() {
        let utc = TimeZone(identifier: "UTC")!
        #expect(FileNameTime.date(in: "VC3_20261123_213000_0001.mp4", pattern: "YYYYMMDD_hhmmss", timeZone: utc)
                == Date(timeIntervalSince1970: 1_795_469_400))
        #expect(FileNameTime.date(in: "2026-11-23 21.30.00.mov", pattern: "YYYY-MM-DD hh.mm.ss", timeZone: utc)
                == Date(timeIntervalSince1970: 1_795_469_400))
        // A number that is not a date (month 13) is not taken for one.
        #expect(FileNameTime.date(in: "VID_20261323_000000.mp4", pattern: "YYYYMMDD_hhmmss", timeZone: utc) == nil)
        #expect(FileNameTime.date(in: "VID0001.MP4", pattern: "YYYYMMDD_hhmmss", timeZone: utc) == nil)
        let berlin = TimeZone(identifier: "Europe/Berlin")!
        #expect(FileNameTime.date(in: "VC3_20261123_223000.mp4", pattern: "YYYYMMDD_hhmmss", timeZone: berlin)
                == Date(timeIntervalSince1970: 1_795_469_400))
    }

    @Test func filePatternsMatchLikeAShellIgnoringCase() {
        let profile = IngestProfile(mediaFolders: [], filePatterns: ["VC3_*.mp4", "*.wav"], recordingTime: .container, cameraClock: .utc)
        #expect(profile.accepts(fileName: "vc3_20261123.MP4"))
        #expect(profile.accepts(fileName: "x.WAV"))
        #expect(!profile.accepts(fileName: "VC2_1.mp4"))
        #expect(!profile.accepts(fileName: "VC3_1.mp4.part"))
    }
}

private extension String {
    func relative(to root: URL) -> String { root.appendingPathComponent(self).path }
}
