import Foundation
import Testing
import TestSupport
import UploaderCore
import Ledger
@testable import Transport

/// Evidence bags: written from the store, valid for the Library of
/// Congress' bagit.py and for `verify-bag`, and every flipped byte caught.
@Suite struct BagTests {
    static let bagitTool: String? = {
        for path in ["/usr/local/bin/bagit.py", "/usr/bin/bagit.py", ProcessInfo.processInfo.environment["HOME"].map { $0 + "/.local/bin/bagit.py" } ?? ""]
            where FileManager.default.isExecutableFile(atPath: path) { return path }
        return (try? runTool("/bin/sh", ["-c", "command -v bagit.py"])).flatMap { $0.isEmpty ? nil : $0 }
    }()

    struct Exported {
        let flow: VerifyTests.Flow
        let bag: String

        init() throws {
            flow = try VerifyTests.Flow()
            bag = flow.folder.sub("bag")
            let result = try UploaderProcess.run(["export", "--device", "BWC-3001", "--output", bag], config: flow.site.configPath)
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            #expect(result.stdout.contains("wrote \(bag): 3 files"), "\(result.stdout)")
        }

        func verifyBag() throws -> UploaderProcess.Result { try UploaderProcess.run(["verify-bag", bag]) }

        func bagit() throws -> (ok: Bool, output: String) {
            let tool = try #require(BagTests.bagitTool, "bagit.py is not installed (scripts/test installs it with pip)")
            do { return (true, try runTool(tool, ["--validate", bag])) } catch { return (false, "\(error)") }
        }

        /// Flips one byte of a file in the bag.
        func flip(_ path: String, at offset: Int = 0) throws {
            let url = URL(fileURLWithPath: bag + "/" + path)
            var data = try Data(contentsOf: url)
            let index = min(offset, data.count - 1)
            data[index] ^= 0x01
            try data.write(to: url)
        }

        func payload() throws -> String {
            let serialFolder = try FileManager.default.contentsOfDirectory(atPath: bag + "/data").sorted()[0]
            return "data/\(serialFolder)/" + (try FileManager.default.contentsOfDirectory(atPath: bag + "/data/\(serialFolder)").sorted()[0])
        }
    }

    @Test func anExportedBagIsValidForBagitAndForVerifyBag() throws {
        let exported = try Exported()
        let verdict = try exported.verifyBag()
        #expect(verdict.status == 0, "\(verdict.stdout)")
        #expect(verdict.stdout.contains(": valid: 3 files"))
        let bagit = try exported.bagit()
        #expect(bagit.ok, "\(bagit.output)")
        let info = try String(contentsOfFile: exported.bag + "/bag-info.txt", encoding: .utf8)
        #expect(info.contains("Payload-Oxum: ") && info.contains("Evidence-File: data/BWC-3001/") && info.contains("officer officer-31"))
        for path in ["manifest-sha256.txt", "manifest-sha512.txt", "tagmanifest-sha256.txt", "custody/checkpoint.json", "custody/dock-key.pem", "custody/chain.jsonl"] {
            #expect(FileManager.default.fileExists(atPath: exported.bag + "/" + path), "\(path)")
        }
    }

    @Test func aFlippedPayloadByteIsCaughtByBoth() throws {
        let exported = try Exported()
        let payload = try exported.payload()
        try exported.flip(payload, at: 5000)
        let verdict = try exported.verifyBag()
        #expect(verdict.status == 4 && verdict.stdout.contains("\(payload): SHA-256"), "\(verdict.stdout)")
        #expect(try !exported.bagit().ok)
    }

    @Test func aFlippedManifestByteIsCaughtByBoth() throws {
        let exported = try Exported()
        try exported.flip("manifest-sha256.txt", at: 3)
        #expect(try exported.verifyBag().status == 4)
        #expect(try !exported.bagit().ok)
    }

    @Test func aFlippedCustodyByteIsCaughtByBothWhereTheyLook() throws {
        let exported = try Exported()
        // A message in the chain: the event's hash no longer matches (verify-bag), the tag manifest neither (both).
        let chain = try String(contentsOfFile: exported.bag + "/custody/chain.jsonl", encoding: .utf8)
        let offset = try #require(chain.range(of: "\"message\":\"")).upperBound.utf16Offset(in: chain)
        try exported.flip("custody/chain.jsonl", at: offset)
        let verdict = try exported.verifyBag()
        #expect(verdict.status == 4 && verdict.stdout.contains("was altered"), "\(verdict.stdout)")
        #expect(try !exported.bagit().ok)
    }

    /// The signature changed to other valid base64 (a forger's edit), and to bytes that are not base64 at all
    /// (a damaged copy): both are caught, each by its own reason. The character replaced is chosen, not
    /// XOR-flipped, so the outcome does not depend on the random key the bag was signed with.
    @Test(arguments: [(replacement: "valid base64", expected: "does not match its content"), (replacement: "not base64", expected: "is not base64")])
    func anAlteredSignatureIsCaught(replacement: String, expected: String) throws {
        let exported = try Exported()
        let path = exported.bag + "/custody/checkpoint.json"
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let text = String(decoding: bytes, as: UTF8.self)
        let offset = try #require(text.range(of: "\"signature\" : \"")).upperBound.utf16Offset(in: text) + 2
        bytes[offset] = replacement == "valid base64" ? (bytes[offset] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")) : UInt8(ascii: "@")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let verdict = try exported.verifyBag()
        #expect(verdict.status == 4 && verdict.stdout.contains(expected), "\(verdict.stdout)")
        #expect(try !exported.bagit().ok)
    }

    @Test func aBagWithACustodyChainRewrittenAndTheTagManifestRedoneIsStillCaught() throws {
        let exported = try Exported()
        // Re-filing a file under another officer in its custody record, and fixing the tag manifest.
        let records = try FileManager.default.contentsOfDirectory(atPath: exported.bag + "/custody/files").sorted()
        let path = exported.bag + "/custody/files/" + records[0]
        try (try String(contentsOfFile: path, encoding: .utf8)).replacingOccurrences(of: "officer-31", with: "officer-99")
            .write(toFile: path, atomically: true, encoding: .utf8)
        var tags = ""
        for line in try String(contentsOfFile: exported.bag + "/tagmanifest-sha256.txt", encoding: .utf8).split(separator: "\n") {
            let name = String(line.split(separator: " ", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces)
            tags += "\(try runTool("/usr/bin/sha256sum", [exported.bag + "/" + name]).prefix(64))  \(name)\n"
        }
        try tags.write(toFile: exported.bag + "/tagmanifest-sha256.txt", atomically: true, encoding: .utf8)
        #expect(try exported.bagit().ok)
        let verdict = try exported.verifyBag()
        #expect(verdict.status == 4 && verdict.stdout.contains("its ledger row is not what event"), "\(verdict.stdout)")
    }
}

extension BagTests {
    /// An export that cannot finish leaves no half bag to be mistaken for a whole one.
    @Test func anExportThatFailsLeavesNothingBehind() throws {
        let flow = try VerifyTests.Flow()
        let client = flow.store.client(bucket: flow.area.bucket)
        _ = try client.send("DELETE", key: try flow.objectKey(2), query: [], headers: [:], body: .none)
        let bag = flow.folder.sub("bag")
        let result = try UploaderProcess.run(["export", "--device", "BWC-3001", "--output", bag], config: flow.site.configPath)
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("error: the export stopped: ") && result.stderr.contains("nothing was kept in \(bag)"), "\(result.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: bag).isEmpty)
        let ledger = try Ledger(path: flow.site.ledgerPath, readOnly: true)
        #expect(try !ledger.events(EventFilter()).contains { $0.kind == .custodyExport })
    }

    @Test func verifyWithTheStoreDownSaysWhatWasNotChecked() throws {
        let flow = try VerifyTests.Flow()
        // The same site, pointed at a port where nothing listens.
        let config = try String(contentsOfFile: flow.site.configPath, encoding: .utf8)
            .replacingOccurrences(of: flow.store.endpoint, with: "http://127.0.0.1:\(try Loopback.freePort())")
        try config.write(toFile: flow.site.configPath, atomically: true, encoding: .utf8)
        let result = try flow.verify()
        #expect(result.status == 1, "\(result.stdout)")
        #expect(result.stdout.contains("3 objects NOT checked: the store could not be reached"), "\(result.stdout)")
    }
}
