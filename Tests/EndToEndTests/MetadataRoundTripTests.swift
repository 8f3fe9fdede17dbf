import Foundation
import GRDB
import Testing
import TestSupport
@testable import Ledger
@testable import Transport
import UploaderCore

/// What the object's metadata says is compared with what was meant, not with
/// its transport encoding: names and users outside ASCII verify clean.
@Suite(.tags(.store, .subprocess)) struct MetadataRoundTripTests {
    @Test func aFileAndUserNamedOutsideASCIIVerifyClean() throws {
        let site = try TestSite.make("names") { $0.store() }
        func run(_ arguments: [String], expecting status: Int32 = 0) throws -> UploaderProcess.Result {
            let result = try UploaderProcess.run(arguments, config: site.configPath)
            #expect(result.status == status, "\(arguments): \(result.stdout)\(result.stderr)")
            return result
        }
        _ = try run(["simulate-camera", site.folder.sub("cam"), "--files", "1", "--size", "1MiB"])
        try FileManager.default.moveItem(atPath: site.folder.sub("cam/DCIM/100BWC/VID0001.MP4"), toPath: site.folder.sub("cam/DCIM/100BWC/Übung café.MP4"))
        _ = try run(["device", "add", "BWC-8", "--user", "Jürgen Müller"])
        _ = try run(["ingest", site.folder.sub("cam"), "--serial", "BWC-8"])
        _ = try run(["upload"])
        let file = try #require(try Ledger(path: site.ledgerPath).file(1))
        #expect(file.state == .verified && file.user == "Jürgen Müller" && file.sourcePath.hasSuffix("Übung café.MP4"))
        let key = try #require(file.objectKey)
        let head = try #require(try site.client.headObject(key: key))
        #expect(head.metadata["user"] == "Jürgen Müller" && head.metadata["source-path"] == file.sourcePath, "\(head.metadata)")
        let verified = try run(["verify", "--all"])
        #expect(verified.stdout.contains("Übung café.MP4: ok") && verified.stdout.contains("1 files: 1 ok"), "\(verified.stdout)")
    }
}
