import Crypto
import Foundation
import Platform
import Ingest
import Spool
import SystemPackage
import Transport
import UploaderCore

/// A folder under the system's temporary directory, removed when dropped.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    public init(_ label: String = "uploader-test") {
        let template = (NSTemporaryDirectory() as NSString).appendingPathComponent("\(label).XXXXXX")
        var bytes = Array(template.utf8CString)
        guard let made = mkdtemp(&bytes) else { fatalError("mkdtemp failed: \(errno)") }
        path = String(cString: made)
    }

    deinit {
        // Tests make read-only folders too; make them writable so they can go.
        _ = try? Process.run(URL(fileURLWithPath: "/bin/chmod"), arguments: ["-R", "u+rwX", path]).waitUntilExit()
        try? FileManager.default.removeItem(atPath: path)
    }

    public func sub(_ name: String) -> String { path + "/" + name }
}

public enum TestFailure: Error, CustomStringConvertible {
    case missingStore
    case message(String)

    public var description: String {
        switch self {
        case .missingStore:
            "UPLOADER_TEST_S3_ENDPOINT is not set: run the tests with scripts/test, which starts SeaweedFS on loopback"
        case .message(let text): text
        }
    }
}

/// The SeaweedFS that scripts/test started on loopback.
public struct TestStore: Sendable {
    /// Which S3 implementation the tests run against: `scripts/test` runs
    /// the store-facing suites on both.
    public enum Kind: String, Sendable {
        /// SeaweedFS: the store of the demo and the benchmarks.
        case seaweedfs
        /// moto's server mode, signatures checked: AWS's rules, written independently.
        case moto
    }

    public var endpoint: String
    public var accessKey: String
    public var secretKey: String
    public var kind: Kind = .seaweedfs

    public static func fromEnvironment() throws -> TestStore {
        let environment = ProcessInfo.processInfo.environment
        guard let endpoint = environment["UPLOADER_TEST_S3_ENDPOINT"], let key = environment["UPLOADER_TEST_S3_ACCESS_KEY"],
              let secret = environment["UPLOADER_TEST_S3_SECRET_KEY"] else { throw TestFailure.missingStore }
        return TestStore(endpoint: endpoint, accessKey: key, secretKey: secret,
                         kind: environment["UPLOADER_TEST_STORE"].flatMap(Kind.init(rawValue:)) ?? .seaweedfs)
    }

    public var credentials: Credentials { Credentials(accessKeyID: accessKey, secretAccessKey: secretKey) }

    /// The store this run of the tests is against (`UPLOADER_TEST_STORE`), for
    /// expectations where that store departs from AWS on purpose.
    public static var currentKind: Kind {
        ProcessInfo.processInfo.environment["UPLOADER_TEST_STORE"].flatMap(Kind.init(rawValue:)) ?? .seaweedfs
    }

    /// The bucket all tests share: SeaweedFS gives every bucket several volumes
    /// of its own, so a bucket per test would exhaust `-volume.max`.
    public static let sharedBucket = "uploader-tests"

    /// A key prefix of its own for each test, so tests never see each other's objects.
    public func makeArea(_ label: String) throws -> StoreArea {
        try client(bucket: Self.sharedBucket).createBucket()
        let prefix = "\(label.lowercased().filter { $0.isLetter || $0.isNumber }.prefix(30))-\(UInt32.random(in: 0...UInt32.max))"
        return StoreArea(bucket: Self.sharedBucket, prefix: prefix)
    }

    public func client(bucket: String) -> S3Client {
        S3Client(target: .init(endpoint: endpoint, bucket: bucket, addressing: .path), region: "us-east-1", credentials: credentials)
    }
}

public struct StoreArea: Sendable {
    public var bucket: String
    public var prefix: String

    public init(bucket: String, prefix: String) {
        self.bucket = bucket
        self.prefix = prefix
    }

    /// The evidence objects under this area (not the dock's custody checkpoints).
    public func evidenceKeys(_ client: S3Client) throws -> [String] {
        try client.listObjectKeys(prefix: prefix + "/").filter { !$0.hasPrefix(prefix + "/_custody/") }
    }
}

/// A configuration in a temporary folder: spool, state, credentials file.
public struct TestSite: Sendable {
    public let root: String
    public var configPath: String { root + "/uploader.toml" }
    public var spool: String { root + "/spool" }
    public var ledgerPath: String { root + "/state/ledger.sqlite" }

    public var spoolKeyring: String { root + "/state/spool-keys" }

    /// The SHA-256 of the camera bytes a spool copy holds: a sealed copy is
    /// opened with the site's keyring (every chunk authenticated), one in the clear read as it is.
    public func spoolCopySHA256(name: String, keyID: String?) throws -> SHA256Digest {
        let keyring = keyID == nil ? nil : try SpoolKeyring.existing(path: spoolKeyring)
        let (reader, fd) = try SpoolCopyReader.open(spool + "/objects/" + name, keyID: keyID, keyring: keyring)
        defer { try? fd.close() }
        let hasher = SHA256Hasher()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: Int64 = 0
        while true {
            let count = try buffer.withUnsafeMutableBytes { try reader.read(into: $0, at: offset) }
            if count == 0 { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            offset += Int64(count)
        }
        return hasher.finalize()
    }

    /// Writes uploader.toml; `extra` is appended as-is (more sections or keys).
    public init(root: String, endpoint: String = "http://127.0.0.1:9", bucket: String = "evidence", prefix: String = "test-pd",
                accessKey: String = "AK", secretKey: String = "SK", partSize: String = "5MiB",
                storeExtra: String = "", extra: String = "") throws {
        self.root = root
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let config = """
            [paths]
            spool = "spool"
            state = "state"

            [store]
            endpoint = "\(endpoint)"
            bucket = "\(bucket)"
            prefix = "\(prefix)"
            credentials = "credentials"
            \(storeExtra)

            [upload]
            part_size = "\(partSize)"
            concurrency = 2
            max_attempts = 3
            retry_base_delay = 0.05
            retry_max_delay = 0.5

            [ingest]
            settle_seconds = 0
            spool_reserve = "0MiB"
            \(extra)
            """
        try config.write(toFile: root + "/uploader.toml", atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: root + "/credentials",
                                       contents: Data("access_key_id = \"\(accessKey)\"\nsecret_access_key = \"\(secretKey)\"\n".utf8),
                                       attributes: [.posixPermissions: 0o600])
    }

    public static func withStore(_ store: TestStore, area: StoreArea, root: String, partSize: String = "5MiB", storeExtra: String = "",
                                 extra: String = "") throws -> TestSite {
        try TestSite(root: root, endpoint: store.endpoint, bucket: area.bucket, prefix: area.prefix, accessKey: store.accessKey,
                     secretKey: store.secretKey, partSize: partSize, storeExtra: storeExtra, extra: extra)
    }

    public func configuration() throws -> Configuration {
        try ConfigurationLoader.load(path: configPath)
    }
}

/// Camera volumes made of real files on disk.
public enum CameraVolume {
    /// Writes an MP4 recording with `recordedAt` in its `mvhd`, returns its SHA-256.
    @discardableResult
    public static func writeRecording(at path: String, recordedAt: Date?, payloadSize: Int64, seed: UInt64 = 7) throws -> SHA256Digest {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let fd = try FileDescriptor.open(FilePath(path), .writeOnly, options: [.create, .truncate], permissions: [.ownerReadWrite])
        try fd.closeAfter { try MP4Writer.write(to: fd, recordedAt: recordedAt, payloadSize: payloadSize, seed: seed) }
        return try sha256(ofFile: path)
    }

    /// Hashes a file by streaming it: the tests' independent check.
    public static func sha256(ofFile path: String) throws -> SHA256Digest {
        let fd = try FileDescriptor.open(FilePath(path), .readOnly)
        defer { try? fd.close() }
        let hasher = SHA256Hasher()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
            if count == 0 { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
        return hasher.finalize()
    }

    /// Path, SHA-256, size, mtime and mode of every file below `root`: equal
    /// fingerprints mean nobody touched the volume.
    public static func fingerprint(_ root: String) throws -> [String] {
        try files(under: root).map { try fingerprint(of: $0, in: root) }
    }

    /// One file's line of `fingerprint(_:)`: path relative to `root`, SHA-256, size, mtime, mode.
    public static func fingerprint(of path: String, in root: String) throws -> String {
        var info = stat()
        _ = lstat(root + "/" + path, &info)
        return "\(path) \(try sha256(ofFile: root + "/" + path).hex) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec) \(info.st_mode)"
    }

    /// The files in a spool's `objects/` and `tmp/` (its `locks/` hold no evidence).
    public static func evidenceFiles(inSpool spool: String) -> [String] {
        files(under: spool).filter { !$0.hasPrefix("locks/") }
    }

    /// Every regular file below `root`, relative paths, sorted.
    public static func files(under root: String) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: root) else { return [] }
        var result: [String] = []
        while let item = enumerator.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + item, isDirectory: &isDirectory), !isDirectory.boolValue {
                result.append(item)
            }
        }
        return result.sorted()
    }
}

/// The built `uploader` executable, run as an admin or systemd would.
public struct UploaderProcess {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public var killedBySignal: Int32?
    }

    public static var executable: String {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("uploader").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return packageRoot.appendingPathComponent(".build/debug/uploader").path
    }

    /// Runs `uploader ARGS` and waits. `environment` adds to the inherited one;
    /// `wrapper` goes before the executable (`runExecutable: false` runs the wrapper alone,
    /// for a script that calls the executable itself).
    @discardableResult
    public static func run(_ arguments: [String], config: String? = nil, environment: [String: String] = [:],
                           wrapper: [String] = [], runExecutable: Bool = true) throws -> Result {
        try start(arguments, config: config, environment: environment, wrapper: wrapper, runExecutable: runExecutable).finish()
    }

    /// Starts `uploader ARGS` without waiting; `finish()` waits for it.
    public static func start(_ arguments: [String], config: String?, environment: [String: String] = [:],
                             wrapper: [String] = [], runExecutable: Bool = true) throws -> Running {
        let out = TemporaryDirectory("uploader-proc")
        var env = ProcessInfo.processInfo.environment
        env["UPLOADER_CONFIG"] = config
        // Invariant 7 in every command a test runs: a blocking call inside a Swift task aborts the process.
        env["UPLOADER_CHECK_BLOCKING"] = "1"
        // $UMOCKDEV_DIR is process-global: a child would inherit whichever testbed
        // another suite has live at that moment, and leave its udev sockets in that
        // folder (umockdev then cannot remove it and aborts the test run). A child
        // gets its own empty emulated system unless the caller hands it a testbed.
        env["UMOCKDEV_DIR"] = nil
        if env["LD_PRELOAD"]?.contains("umockdev") == true, environment["UMOCKDEV_DIR"] == nil {
            try FileManager.default.createDirectory(atPath: out.sub("udev/sys"), withIntermediateDirectories: true)
            env["UMOCKDEV_DIR"] = out.sub("udev")
        }
        for (key, value) in environment { env[key] = value }
        let command = wrapper + (runExecutable ? [executable] + arguments : [])
        let pid = try Syscall.startChild(command, environment: env, stdout: out.sub("stdout"), stderr: out.sub("stderr"))
        return Running(pid: pid, output: out)
    }

    public final class Running: @unchecked Sendable {
        public let pid: pid_t
        let output: TemporaryDirectory

        init(pid: pid_t, output: TemporaryDirectory) {
            self.pid = pid
            self.output = output
        }

        public func signal(_ number: Int32) { kill(pid, number) }

        public func finish() -> Result {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            let signaled = (status & 0x7f) != 0 && (status & 0x7f) != 0x7f
            return Result(status: signaled ? -1 : (status >> 8) & 0xff,
                          stdout: (try? String(contentsOfFile: output.sub("stdout"), encoding: .utf8)) ?? "",
                          stderr: (try? String(contentsOfFile: output.sub("stderr"), encoding: .utf8)) ?? "",
                          killedBySignal: signaled ? status & 0x7f : nil)
        }
    }

    /// Decodes the JSON a command printed with `--json`.
    public static func json(_ result: Result) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            throw TestFailure.message("not a JSON object: \(result.stdout) \(result.stderr)")
        }
        return object
    }
}

/// Runs a system tool (mkfs, losetup, systemd-analyze…) and returns its exit
/// status and output. Outside umockdev: its preload answers ioctls on /dev
/// (losetup's) itself.
public func runToolResult(_ path: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.filter { $0.key != "LD_PRELOAD" && !$0.key.hasPrefix("UMOCKDEV") }
    let output = Pipe()
    // stderr to a file: two pipes read one after the other could deadlock.
    let errors = TemporaryDirectory("uploader-tool")
    process.standardOutput = output
    FileManager.default.createFile(atPath: errors.sub("stderr"), contents: nil)
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errors.sub("stderr")))
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let message = (try? String(contentsOfFile: errors.sub("stderr"), encoding: .utf8)) ?? ""
    return (process.terminationStatus, String(decoding: data, as: UTF8.self), message)
}

/// `runToolResult` that throws with the tool's stderr on a non-zero exit and
/// returns its trimmed standard output.
@discardableResult
public func runTool(_ path: String, _ arguments: [String]) throws -> String {
    let result = try runToolResult(path, arguments)
    guard result.status == 0 else {
        throw TestFailure.message("\(path) \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)")
    }
    return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}
