import Crypto
import Foundation
import Ledger
import UploaderCore

/// A snapshot of the fleet registry at commit N:
/// `{prefix}/_fleet/snapshots/{N, 20 digits}.json`, written once
/// (`If-None-Match: *`) by a member dock, so a new dock reads the registry
/// without replaying every commit since the fleet began.
///
/// JSON Lines, so neither side holds it whole: a header line
/// `{"snapshot":{…}}` (the commit N it stands at and that commit's hash, the
/// writing dock, user, time and key), one line per entry (`{"member":…}`,
/// `{"device":…}`, `{"period":…}`, in a fixed order: members by admission,
/// devices by serial, periods by the commit that made them), and a last line
/// `{"end":{…}}` with the counts, the entries' running digest and the
/// signature. The signature covers a framed digest of the header's fields,
/// the counts and the entries' digest (like a commit's, not the bytes).
public enum FleetSnapshot {
    public static let formatName = "uploader.fleet-snapshot/1"

    /// A snapshot every 1,000 commits. A new dock replays at most 999 commits
    /// after the newest one (small GETs: about a second on a LAN), and each
    /// snapshot is the whole registry (about 100 bytes a camera, a member and
    /// a custody period), so snapshots cost one registry-sized object per
    /// 1,000 admin changes: months of a large agency's changes.
    public static let interval: Int64 = 1_000

    public static func key(prefix: String, number: Int64) -> String { FleetKeys.snapshot(prefix: prefix, number: number) }

    /// The first line: where the snapshot stands and who wrote it.
    public struct Header: Codable, Sendable, Equatable {
        public var format: String
        public var number: Int64
        /// The hash of commit `number`, as the commit after it names it as its parent.
        public var commit: String
        public var dock: String
        public var user: String
        public var at: String
        /// The writing dock's Ed25519 public key, hex.
        public var signer: String

        public init(number: Int64, commit: String, dock: String, user: String, at: Date = Date(), signer: String) {
            format = FleetSnapshot.formatName
            self.number = number
            self.commit = commit
            self.dock = dock
            self.user = user
            self.at = Timestamps.iso(at)
            self.signer = signer
        }

        public var signerFingerprint: String? { RegistryChange.fingerprint(publicKeyHex: signer) }
    }

    /// The last line.
    public struct End: Codable, Sendable, Equatable {
        public var members: Int
        public var devices: Int
        public var periods: Int
        /// The running digest of the entries (`FleetSnapshotDigest`).
        public var entries: String
        public var signature: String?
    }

    /// What the signature covers.
    public static func hash(_ header: Header, _ end: End) -> String {
        ChainFormat.framedDigest(tag: formatName, [header.format, String(header.number), header.commit, header.dock, header.user, header.at,
                                                   header.signer, String(end.members), String(end.devices), String(end.periods), end.entries])
    }

    public static func signatureHolds(_ header: Header, _ end: End) -> Bool {
        guard let signature = end.signature, let bytes = Data(base64Encoded: signature), let key = Ed25519PublicKey(hex: header.signer) else { return false }
        return key.isValidSignature(Array(bytes), for: Array(hash(header, end).utf8))
    }

    // MARK: - Writing

    /// Builds a snapshot's bytes one entry at a time (the caller streams the
    /// registry from a cursor): the lines, the digest, then the signed end.
    public final class Writer {
        public let header: Header
        public let digest = FleetSnapshotDigest()
        /// The object's bytes so far (nil: only the digest is wanted).
        public private(set) var bytes: [UInt8]?

        public init(header: Header, keepBytes: Bool = true) throws {
            self.header = header
            if keepBytes {
                bytes = []
                bytes!.append(contentsOf: Array(#"{"snapshot":"#.utf8) + (try Self.json(header)) + Array("}\n".utf8))
            }
        }

        public func add(_ entry: FleetSnapshotEntry) {
            digest.add(entry)
            guard bytes != nil else { return }
            var line = ""
            switch entry {
            case let .member(publicKey, dock, admittedIn):
                line = #"{"member":{"admittedIn":\#(admittedIn),"dock":\#(JSONText.string(dock)),"publicKey":\#(JSONText.string(publicKey))}}"#
            case let .device(serial, user, name, model, removed):
                line = #"{"device":{"model":\#(JSONText.string(model)),"name":\#(JSONText.string(name)),"removed":\#(removed),"serial":\#(JSONText.string(serial)),"user":\#(JSONText.string(user))}}"#
            case let .period(commit, serial, user, from, until):
                line = #"{"period":{"commit":\#(commit),"from":\#(JSONText.string(from)),"serial":\#(JSONText.string(serial)),"until":\#(JSONText.string(until)),"user":\#(JSONText.string(user))}}"#
            }
            bytes!.append(contentsOf: line.utf8)
            bytes!.append(UInt8(ascii: "\n"))
        }

        /// Signs and closes the snapshot; the end line is added to `bytes`.
        public func finish(key: Ed25519PrivateKey) throws -> End {
            var end = End(members: digest.members, devices: digest.devices, periods: digest.periods, entries: digest.finalize())
            end.signature = Data(try key.signature(for: Array(FleetSnapshot.hash(header, end).utf8))).base64EncodedString()
            if bytes != nil { bytes!.append(contentsOf: Array(#"{"end":"#.utf8) + (try Self.json(end)) + Array("}\n".utf8)) }
            return end
        }

        static func json<Value: Encodable>(_ value: Value) throws -> [UInt8] {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return Array(try encoder.encode(value))
        }
    }

    // MARK: - Reading

    /// One line of a snapshot: exactly one of these is set.
    struct Line: Decodable {
        struct Member: Decodable { var publicKey: String; var dock: String?; var admittedIn: Int64 }
        struct Device: Decodable { var serial: String; var user: String; var name: String?; var model: String?; var removed: Bool? }
        struct Period: Decodable { var commit: Int64; var serial: String; var user: String; var from: String; var until: String? }
        var snapshot: Header?
        var member: Member?
        var device: Device?
        var period: Period?
        var end: End?
    }

    /// A snapshot read whole and found to hold: its header and end.
    public struct Verified: Sendable {
        public var header: Header
        public var end: End
        /// The fingerprints of its members (a few per dock: small).
        public var members: Set<String>
    }

    /// The first line of snapshot `number`: it must be a snapshot's header naming `number`.
    public static func readHeader(number: Int64, lines: LineReader) throws -> Header {
        guard let first = try lines.next(), let header = (try? JSONDecoder().decode(Line.self, from: Data(first)))?.snapshot,
              header.format == formatName else {
            throw UploaderError(.insecure, "it does not begin as a fleet snapshot")
        }
        guard header.number == number else { throw UploaderError(.insecure, "it says it is the snapshot at commit \(header.number)") }
        return header
    }

    /// Reads the rest of a snapshot line by line, handing each entry to
    /// `entry` as it comes, and checks it as a whole at its end: the entries
    /// come in order and hash to the digest the end names, the counts agree,
    /// the signature holds and its key is a member in the snapshot. Throws
    /// `.insecure` with the problem otherwise (a transaction the caller feeds
    /// through `entry` then rolls back).
    public static func readEntries(header: Header, lines: LineReader, entry: (FleetSnapshotEntry) throws -> Void) throws -> Verified {
        let decoder = JSONDecoder()
        func problem(_ text: String) -> UploaderError { UploaderError(.insecure, text) }
        let digest = FleetSnapshotDigest()
        var members: Set<String> = []
        var section = 0
        var lineNumber = 1
        while let bytes = try lines.next() {
            lineNumber += 1
            guard let line = try? decoder.decode(Line.self, from: Data(bytes)) else { throw problem("line \(lineNumber) does not parse") }
            let found: FleetSnapshotEntry
            let order: Int
            if let member = line.member {
                found = .member(publicKey: member.publicKey, dock: member.dock, admittedIn: member.admittedIn)
                order = 1
                if let fingerprint = RegistryChange.fingerprint(publicKeyHex: member.publicKey) { members.insert(fingerprint) }
            } else if let device = line.device {
                found = .device(serial: device.serial, user: device.user, name: device.name, model: device.model, removed: device.removed ?? false)
                order = 2
            } else if let period = line.period {
                found = .period(commit: period.commit, serial: period.serial, user: period.user, from: period.from, until: period.until)
                order = 3
            } else if let end = line.end {
                guard try lines.next() == nil else { throw problem("it goes on after its end line") }
                guard end.members == digest.members, end.devices == digest.devices, end.periods == digest.periods else {
                    throw problem("its end counts \(end.members) members, \(end.devices) devices and \(end.periods) periods, but it holds \(digest.members), \(digest.devices) and \(digest.periods)")
                }
                guard end.entries == digest.finalize() else { throw problem("its entries are not the ones it was signed with") }
                guard signatureHolds(header, end), let signer = header.signerFingerprint else { throw problem("its signature does not hold") }
                guard members.contains(signer) else {
                    throw problem("it is signed by key \(Ed25519PublicKey.grouped(signer)), which is not a fleet member in it")
                }
                return Verified(header: header, end: end, members: members)
            } else {
                throw problem("line \(lineNumber) is not an entry")
            }
            guard order >= section else { throw problem("line \(lineNumber) is out of order") }
            section = order
            digest.add(found)
            try entry(found)
        }
        throw problem("it ends before its end line (cut short?)")
    }
}

/// Lines of a file read in blocks: a snapshot is never held whole. Blocking.
public final class LineReader {
    let file: UnsafeMutablePointer<FILE>
    var buffer: [UInt8] = []
    var start = 0
    var atEnd = false
    /// A line longer than this is not a snapshot's.
    static let longestLine = 1 << 20

    public init(file: UnsafeMutablePointer<FILE>) { self.file = file }

    /// The next line without its newline; nil at the end.
    public func next() throws -> ArraySlice<UInt8>? {
        while true {
            if let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                defer { start = newline + 1 }
                return buffer[start..<newline]
            }
            if atEnd {
                guard start < buffer.count else { return nil }
                defer { start = buffer.count }
                return buffer[start...]
            }
            if buffer.count - start > Self.longestLine { throw UploaderError(.insecure, "a line of over 1 MiB") }
            buffer.removeFirst(start)
            start = 0
            var block = [UInt8](repeating: 0, count: 256 * 1024)
            let read = fread(&block, 1, block.count, file)
            if read < block.count {
                if ferror(file) != 0 { throw UploaderError(.io, "cannot read back the snapshot's temporary file") }
                atEnd = true
            }
            buffer.append(contentsOf: block[0..<read])
        }
    }
}

/// JSON text for the snapshot's lines, written by hand: one string escaped as JSON requires.
enum JSONText {
    static func string(_ value: String?) -> String {
        guard let value else { return "null" }
        var out = "\""
        out.reserveCapacity(value.utf8.count + 2)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
