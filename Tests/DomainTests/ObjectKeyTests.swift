import Foundation
@testable import Ingest
import SystemPackage
import Testing
@testable import UploaderCore

@Suite struct ObjectKeyTests {
    let values = ObjectKeyTemplate.Values(prefix: "springfield-pd", user: "officer-17", serial: "BWC-1001", name: "VID0001.MP4",
                                          sha256: "ab", recordedAt: Date(timeIntervalSince1970: 1_795_000_000), fileID: 9)

    @Test func theDefaultTemplateFilesByUserAndRecordingDay() {
        #expect(ObjectKeyTemplate.render(Configuration.defaultKeyTemplate, values) == "springfield-pd/officer-17/2026/11/18/BWC-1001/VID0001.MP4")
    }

    @Test func hostileValuesCannotAddSegments() {
        var hostile = values
        hostile.user = "../../admin"
        hostile.name = "a/../../b c?.mp4"
        hostile.serial = ".."
        let key = ObjectKeyTemplate.render(Configuration.defaultKeyTemplate, hostile)
        let segments = key.split(separator: "/")
        #expect(segments.count == 7)
        #expect(!segments.contains(".."))
        #expect(key.allSatisfy { $0.isASCII })
    }

    @Test func anEmptyPrefixLeavesNoEmptySegment() {
        var noPrefix = values
        noPrefix.prefix = ""
        #expect(ObjectKeyTemplate.render("{prefix}/{serial}/{name}", noPrefix) == "BWC-1001/VID0001.MP4")
    }

    @Test func templatesAreChecked() {
        #expect(ObjectKeyTemplate.validate("{prefix}/{officer}/{name}")?.contains("unknown placeholder {officer}") == true)
        #expect(ObjectKeyTemplate.validate("{prefix}/{user}")?.contains("never share a key") == true)
        #expect(ObjectKeyTemplate.validate("{prefix}/{name") != nil)
        #expect(ObjectKeyTemplate.validate(Configuration.defaultKeyTemplate) == nil)
    }
}
