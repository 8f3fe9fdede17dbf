import Foundation
import Testing
import TestSupport
import UploaderCore
import Ledger
import Crypto
import Agent
@testable import Transport

/// Evidence bags: written from the store, valid for the Library of
/// Congress' bagit.py and for `verify-bag`, and every flipped byte caught.
@Suite(.tags(.store, .subprocess)) struct BagTests {
    static let bagitTool: String? = {
        for path in ["/usr/local/bin/bagit.py", "/usr/bin/bagit.py", ProcessInfo.processInfo.environment["HOME"].map { $0 + "/.local/bin/bagit.py" } ?? ""]
            where FileManager.default.isExecutableFile(atPath: path) { return path }
        return (try? runTool("/bin/sh", ["-c", "command -v bagit.py"])).flatMap { $0.isEmpty ? nil : $0 }
    }()

    struct Exported {
        let flow: TestSite
        let bag: String

        init() throws {
            flow = try VerifyTests.uploadedSite()
            bag = flow.folder.sub("bag")
            let result = try UploaderProcess.run(["export", "--device", "BWC-3001", "--output", bag], config: flow.configPath)
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            #expect(result.stdout.contains("wrote \(bag): 3 files"), "\(result.stdout)")
        }

        func verifyBag(_ arguments: [String] = []) throws -> UploaderProcess.Result { try UploaderProcess.run(["verify-bag", bag] + arguments) }

        /// The dock's own fingerprint, as the agency publishes it, in a trusted-keys file.
        func trustedKeysFile() throws -> String {
            let printed = try UploaderProcess.run(["key", "fingerprint"], config: flow.configPath)
            #expect(printed.status == 0, "\(printed.stderr)")
            let path = flow.folder.sub("trusted-keys.txt")
            try "# Springfield PD docks, as published by the evidence custodian\n\(printed.stdout)".write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

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
        let verdict = try exported.verifyBag(["--trusted-keys", try exported.trustedKeysFile()])
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

    /// The forger's attack: the video replaced, and everything that vouches for it rebuilt to match
    /// (manifests, the file's row, the chain's events, bag-info, the tag manifest), then signed with a
    /// new key of the forger's, carried in the bag. Every check inside the bag passes; only a key
    /// anchored outside it (the agency's list of its docks' fingerprints) tells the forgery apart.
    @Test func aReSignedBagIsRefusedByTheTrustedKeysAndTheRealOneIsNot() throws {
        let exported = try Exported()
        let trusted = try exported.trustedKeysFile()
        let original = try exported.verifyBag(["--trusted-keys", trusted])
        #expect(original.status == 0, "\(original.stdout)\(original.stderr)")
        #expect(original.stdout.contains(": valid: 3 files") && original.stdout.contains("listed in \(trusted)"), "\(original.stdout)")
        let unanchored = try exported.verifyBag()
        #expect(unanchored.status == 8, "\(unanchored.stdout)")
        #expect(unanchored.stdout.contains("which no trust anchor vouches for: pass --trusted-keys FILE"), "\(unanchored.stdout)")

        try BagForger(bag: exported.bag).replaceVideoAndReSign(exported.payload())
        #expect(try exported.bagit().ok)
        let forged = try exported.verifyBag()
        #expect(forged.status == 8, "the forgery passes every check inside the bag: \(forged.stdout)")
        let refused = try exported.verifyBag(["--trusted-keys", trusted])
        #expect(refused.status == 4, "\(refused.stdout)")
        #expect(refused.stdout.contains("which is not in \(trusted)"), "\(refused.stdout)")
        #expect(refused.stdout.contains("NOT VALID"), "\(refused.stdout)")
    }

    /// The store's copy of the dock key (written once, under Object Lock where the bucket has it) is an anchor too.
    @Test func theStoresDockKeyAnchorsTheRealBagAndRefusesAReSignedOne() throws {
        let exported = try Exported()
        let original = try UploaderProcess.run(["verify-bag", exported.bag, "--store"], config: exported.flow.configPath)
        #expect(original.status == 0, "\(original.stdout)\(original.stderr)")
        #expect(original.stdout.contains("the store's key for dock"), "\(original.stdout)")
        try BagForger(bag: exported.bag).replaceVideoAndReSign(exported.payload())
        let refused = try UploaderProcess.run(["verify-bag", exported.bag, "--store"], config: exported.flow.configPath)
        #expect(refused.status == 4, "\(refused.stdout)\(refused.stderr)")
        #expect(refused.stdout.contains("the store holds key"), "\(refused.stdout)")
    }

    @Test func aTrustedKeysFileThatIsNotAListOfFingerprintsIsAUsageError() throws {
        let exported = try Exported()
        let path = exported.flow.folder.sub("keys.txt")
        try "# docks\nnot a fingerprint\n".write(toFile: path, atomically: true, encoding: .utf8)
        let result = try exported.verifyBag(["--trusted-keys", path])
        #expect(result.status == 2, "\(result.stdout)\(result.stderr)")
        #expect(result.stderr.contains("line 2 of \(path)"), "\(result.stderr)")
    }
}

/// What a forger with the bag and nothing else does: a different video, and every
/// record inside the bag rebuilt around it, signed with a key the forger made.
struct BagForger {
    let bag: String

    func text(_ path: String) throws -> String { try String(contentsOfFile: bag + "/" + path, encoding: .utf8) }
    func write(_ text: String, _ path: String) throws { try text.write(toFile: bag + "/" + path, atomically: true, encoding: .utf8) }
    func hash(_ tool: String, _ path: String) throws -> String {
        String(try runTool("/usr/bin/\(tool)", [bag + "/" + path]).prefix(while: { $0 != " " }))
    }

    func replaceVideoAndReSign(_ payload: String) throws {
        // Another video of the same length.
        let url = URL(fileURLWithPath: bag + "/" + payload)
        let oldSHA256 = try hash("sha256sum", payload), oldSHA512 = try hash("sha512sum", payload)
        try Data(try Data(contentsOf: url).map { $0 ^ 0x5A }).write(to: url)
        let newSHA256 = try hash("sha256sum", payload), newSHA512 = try hash("sha512sum", payload)
        try write(try text("manifest-sha256.txt").replacingOccurrences(of: oldSHA256, with: newSHA256), "manifest-sha256.txt")
        try write(try text("manifest-sha512.txt").replacingOccurrences(of: oldSHA512, with: newSHA512), "manifest-sha512.txt")

        // The file's row, as the ledger would hold it for the new video.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var replacedDigest: (old: String, new: String)?
        for name in try FileManager.default.contentsOfDirectory(atPath: bag + "/custody/files") {
            var record = try JSONDecoder().decode(BagFileCustody.self, from: Data(try text("custody/files/" + name).utf8))
            guard record.payload == payload else { continue }
            let oldDigest = Ledger.rowDigest(fields: record.rowFields)
            let oldChecksum = record.rowFields[RowDigestField.storeChecksum.rawValue]
            record.sha256 = newSHA256
            record.rowFields[RowDigestField.sha256.rawValue] = newSHA256
            if !oldChecksum.isEmpty, let digest = SHA256Digest(hex: newSHA256) {
                record.rowFields[RowDigestField.storeChecksum.rawValue] = digest.base64
            }
            replacedDigest = (oldDigest, Ledger.rowDigest(fields: record.rowFields))
            try write(String(decoding: try encoder.encode(record), as: UTF8.self), "custody/files/" + name)
        }
        let digests = try #require(replacedDigest)

        // The chain: the events that recorded the old row or hash now record the new, every hash redone.
        var events: [ChainEvent] = []
        for line in try text("custody/chain.jsonl").split(separator: "\n") {
            var event = try JSONDecoder().decode(ChainEvent.self, from: Data(line.utf8))
            if event.rowDigest == digests.old { event.rowDigest = digests.new }
            event.message = event.message.replacingOccurrences(of: oldSHA256, with: newSHA256)
            if let previous = events.last { event.previousHash = previous.hash }
            event.hash = event.recomputedHash
            events.append(event)
        }
        try write(try events.map { String(decoding: try encoder.encode($0), as: UTF8.self) + "\n" }.joined(), "custody/chain.jsonl")

        // A new key, a new checkpoint of the new head, signed.
        let oldSigned = try JSONDecoder().decode(SignedCheckpoint.self, from: Data(try text("custody/checkpoint.json").utf8))
        let oldPayload = try #require(oldSigned.decodedPayload)
        let key = try Ed25519PrivateKey()
        let last = try #require(events.last)
        let payloadBytes = CheckpointPayload(dock: oldPayload.dock, key: key.publicKey.fingerprint, lastEventID: last.id, chainHead: last.hash,
                                             events: oldPayload.events, files: oldPayload.files, at: oldPayload.at).canonicalBytes()
        let signed = SignedCheckpoint(payload: String(decoding: payloadBytes, as: UTF8.self),
                                      signature: Data(try key.signature(for: payloadBytes)).base64EncodedString())
        try write(String(decoding: signed.encoded(), as: UTF8.self), "custody/checkpoint.json")
        let oldKey = try #require(Ed25519PublicKey(pem: try text("custody/dock-key.pem")))
        try write(key.publicKey.pem, "custody/dock-key.pem")
        try write(try text("bag-info.txt").replacingOccurrences(of: oldKey.fingerprint, with: key.publicKey.fingerprint)
            .replacingOccurrences(of: oldPayload.chainHead, with: last.hash).replacingOccurrences(of: oldSHA256, with: newSHA256), "bag-info.txt")

        // The tag manifest, redone for every tag file.
        var tags = ""
        for line in try text("tagmanifest-sha256.txt").split(separator: "\n") {
            let name = String(line.split(separator: " ", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces)
            tags += "\(try hash("sha256sum", name))  \(name)\n"
        }
        try write(tags, "tagmanifest-sha256.txt")
    }
}

extension BagTests {
    /// An export that cannot finish leaves no half bag to be mistaken for a whole one.
    @Test func anExportThatFailsLeavesNothingBehind() throws {
        let flow = try VerifyTests.uploadedSite()
        let client = flow.store.client(bucket: flow.area.bucket)
        _ = try client.send("DELETE", key: try flow.objectKey(2), query: [], headers: [:], body: .none)
        let bag = flow.folder.sub("bag")
        let result = try UploaderProcess.run(["export", "--device", "BWC-3001", "--output", bag], config: flow.configPath)
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("error: the export stopped: ") && result.stderr.contains("nothing was kept in \(bag)"), "\(result.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: bag).isEmpty)
        let ledger = try Ledger(path: flow.ledgerPath, readOnly: true)
        #expect(try !ledger.events(EventFilter()).contains { $0.kind == .custodyExport })
    }

    @Test func verifyWithTheStoreDownSaysWhatWasNotChecked() throws {
        let flow = try VerifyTests.uploadedSite()
        // The same site, pointed at a port where nothing listens.
        let config = try String(contentsOfFile: flow.configPath, encoding: .utf8)
            .replacingOccurrences(of: flow.store.endpoint, with: "http://127.0.0.1:\(try Loopback.freePort())")
        try config.write(toFile: flow.configPath, atomically: true, encoding: .utf8)
        let result = try flow.verify()
        #expect(result.status == 1, "\(result.stdout)")
        #expect(result.stdout.contains("3 objects NOT checked: the store could not be reached"), "\(result.stdout)")
    }
}
