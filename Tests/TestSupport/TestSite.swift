import Crypto
import Foundation
import Ingest
import Logging
import Spool
import Synchronization
import Testing
import Transport
import UploaderCore
@testable import Agent
@testable import Ledger

/// One test's site, built in one call: a temporary folder holding the
/// configuration, spool, state and credentials (under `site/`) and the
/// camera volumes beside it, offline or wired to an area of its own on the
/// store scripts/test started.
///
///     let site = try TestSite.make("verify") { $0.store(lockedBucket: true); $0.extra = "[spool]\nkeep_verified_days = 0" }
///     try site.dockSimulatedCamera(serial: "BWC-1", files: 3)
///     try site.run(["upload"])
///     #expect(try site.ledger.files().allSatisfy { $0.state == .verified })
public struct TestSite: Sendable {
    /// What `make` builds; every field has the tests' usual value.
    public struct Options: Sendable {
        /// The test's folder (where `folder.sub(...)` paths of the built site will be), for
        /// configuration that names a file beside the site.
        public internal(set) var folder = ""
        /// The store's endpoint: the test store's with `store()` (set it to send through a
        /// proxy in front of it), else one where nothing listens (port 9).
        public var endpoint: String?
        public var partSize = "5MiB"
        /// Keys added to `[store]`.
        public var storeExtra = ""
        /// Appended to uploader.toml as it is (more sections or keys).
        public var extra = ""
        /// Files written into the site folder first (a `cameras.toml` the configuration names).
        public var files: [String: String] = [:]
        /// Credentials written for an offline site.
        public var accessKey = "AK"
        public var secretKey = "SK"
        var storeChoice: StoreChoice?

        enum StoreChoice { case sharedBucket, lockedBucket, given(TestStore, StoreArea) }

        /// Wires the site to an area of its own on the test store: a prefix in the
        /// bucket all tests share, or (`lockedBucket`) a versioned bucket with Object
        /// Lock of its own, so each verified object has a version id.
        public mutating func store(lockedBucket: Bool = false) {
            storeChoice = lockedBucket ? .lockedBucket : .sharedBucket
        }

        /// Wires the site to an area another site uses too: the docks of one fleet share it.
        public mutating func store(_ store: TestStore, area: StoreArea) {
            storeChoice = .given(store, area)
        }
    }

    /// The test's temporary folder: the site is its `site/`, cameras go beside it.
    public let folder: TemporaryDirectory
    public let root: String
    private let storeAndArea: (store: TestStore, area: StoreArea)?
    private let opened: OpenedLedger

    public var configPath: String { root + "/uploader.toml" }
    public var spool: String { root + "/spool" }
    public var ledgerPath: String { root + "/state/ledger.sqlite" }
    public var spoolKeyring: String { root + "/state/spool-keys" }
    /// The camera volume most tests need (an empty folder until a test records on it).
    public var camera: String { folder.sub("camera") }

    /// The test store this site uploads to (built with `$0.store()`).
    public var store: TestStore {
        guard let storeAndArea else { preconditionFailure("this site was built without $0.store()") }
        return storeAndArea.store
    }
    /// This site's bucket and key prefix on the test store.
    public var area: StoreArea {
        guard let storeAndArea else { preconditionFailure("this site was built without $0.store()") }
        return storeAndArea.area
    }
    public var client: S3Client { store.client(bucket: area.bucket) }

    /// Builds a site in a new temporary folder named after `label` (so is its store area).
    public static func make(_ label: String = "site", _ configure: (inout Options) throws -> Void = { _ in }) throws -> TestSite {
        let folder = TemporaryDirectory("uploader-\(label)")
        var options = Options()
        options.folder = folder.path
        try configure(&options)
        var storeAndArea: (TestStore, StoreArea)?
        if let choice = options.storeChoice {
            let store = try TestStore.fromEnvironment()
            switch choice {
            case .given(let given, let area):
                storeAndArea = (given, area)
            case .sharedBucket:
                storeAndArea = (store, try store.makeArea(label))
            case .lockedBucket:
                let bucket = "uploader-locked-\(UInt32.random(in: 0...UInt32.max))"
                try store.client(bucket: bucket).createLockedBucket()
                storeAndArea = (store, StoreArea(bucket: bucket, prefix: label.lowercased().filter { $0.isLetter || $0.isNumber }))
            }
        }
        try FileManager.default.createDirectory(atPath: folder.sub("camera"), withIntermediateDirectories: true)
        return try TestSite(folder: folder, root: folder.sub("site"), storeAndArea: storeAndArea, options: options)
    }

    /// The same site (folder, store area, spool, ledger) with its configuration written again.
    public func reconfigured(_ configure: (inout Options) throws -> Void) throws -> TestSite {
        var options = Options()
        options.folder = folder.path
        if let storeAndArea { options.store(storeAndArea.store, area: storeAndArea.area) }
        try configure(&options)
        return try TestSite(folder: folder, root: root, storeAndArea: storeAndArea, options: options)
    }

    private init(folder: TemporaryDirectory, root: String, storeAndArea: (store: TestStore, area: StoreArea)?, options: Options) throws {
        self.folder = folder
        self.root = root
        self.storeAndArea = storeAndArea
        opened = OpenedLedger(path: root + "/state/ledger.sqlite")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        for (name, text) in options.files {
            try text.write(toFile: root + "/" + name, atomically: true, encoding: .utf8)
        }
        let endpoint = options.endpoint ?? storeAndArea?.store.endpoint ?? "http://127.0.0.1:9"
        let config = """
            [paths]
            spool = "spool"
            state = "state"

            [store]
            endpoint = "\(endpoint)"
            bucket = "\(storeAndArea?.area.bucket ?? "evidence")"
            prefix = "\(storeAndArea?.area.prefix ?? "test-pd")"
            credentials = "credentials"
            \(options.storeExtra)

            [upload]
            part_size = "\(options.partSize)"
            concurrency = 2
            max_attempts = 3
            retry_base_delay = 0.05
            retry_max_delay = 0.5

            [ingest]
            settle_seconds = 0
            spool_reserve = "0MiB"
            \(options.extra)
            """
        try config.write(toFile: root + "/uploader.toml", atomically: true, encoding: .utf8)
        let accessKey = storeAndArea?.store.accessKey ?? options.accessKey
        let secretKey = storeAndArea?.store.secretKey ?? options.secretKey
        FileManager.default.createFile(atPath: root + "/credentials",
                                       contents: Data("access_key_id = \"\(accessKey)\"\nsecret_access_key = \"\(secretKey)\"\n".utf8),
                                       attributes: [.posixPermissions: 0o600])
    }

    // MARK: The site in this process

    public func configuration() throws -> Configuration {
        try ConfigurationLoader.load(path: configPath)
    }

    /// The site's ledger, opened once (on first use) and shared by the test's calls.
    public var ledger: Ledger {
        get throws { try opened.ledger() }
    }

    public func file(_ id: Int64) throws -> MediaFile {
        try #require(try ledger.file(id))
    }

    /// Ingests `volume` (the site's camera) in this process, as the dock would.
    @discardableResult
    public func ingest(volume: String? = nil, serial: String = "BWC-1") throws -> IngestReport {
        try Ingestor(configuration: configuration(), ledger: ledger, logger: Logger(label: "test")).ingest(volume: volume ?? camera, serial: serial)
    }

    /// One upload run in this process, with the test store's credentials.
    public func upload() throws -> UploadReport {
        try UploadRunner(configuration: configuration(), credentials: store.credentials, ledger: ledger, logger: Logger(label: "test")).run()
    }

    /// This site's configuration, with the store reached through a fault proxy.
    public func configuration(through proxy: FaultProxy) throws -> Configuration {
        var configuration = try configuration()
        configuration.store.endpoint = proxy.endpoint
        return configuration
    }

    /// The evidence objects this site's uploads created.
    public func storedKeys() throws -> [String] { try area.evidenceKeys(client) }

    // MARK: The site through the built `uploader`

    /// Runs `uploader ARGS` on this site and expects `status`.
    @discardableResult
    public func run(_ arguments: [String], expecting status: Int32 = 0, environment: [String: String] = [:],
                    sourceLocation: SourceLocation = #_sourceLocation) throws -> UploaderProcess.Result {
        let result = try UploaderProcess.run(arguments, config: configPath, environment: environment)
        #expect(result.status == status, "\(arguments): \(result.stdout)\(result.stderr)", sourceLocation: sourceLocation)
        return result
    }

    /// Runs `uploader ARGS` on this site, whatever its exit status.
    public func cli(_ arguments: [String], environment: [String: String] = [:]) throws -> UploaderProcess.Result {
        try UploaderProcess.run(arguments, config: configPath, environment: environment)
    }

    /// Starts `uploader ARGS` on this site without waiting.
    public func start(_ arguments: [String], environment: [String: String] = [:]) throws -> UploaderProcess.Running {
        try UploaderProcess.start(arguments, config: configPath, environment: environment)
    }

    /// A simulated camera (`uploader simulate-camera`) at `volume` (default: the site's
    /// camera), registered to `user` and ingested with `uploader ingest`; `before` runs on
    /// the volume between the recording and the registration.
    public func dockSimulatedCamera(serial: String, user: String? = nil, files: Int, size: String = "1MiB", seed: Int? = nil,
                                    volume: String? = nil, before: (String) throws -> Void = { _ in },
                                    sourceLocation: SourceLocation = #_sourceLocation) throws {
        let volume = volume ?? camera
        try run(["simulate-camera", volume, "--files", "\(files)", "--size", size] + (seed.map { ["--seed", "\($0)"] } ?? []),
                sourceLocation: sourceLocation)
        try before(volume)
        try run(["device", "add", serial, "--user", user ?? "officer-\(seed ?? 1)"], sourceLocation: sourceLocation)
        try run(["ingest", volume, "--serial", serial], sourceLocation: sourceLocation)
    }

    /// Writes one recording on the site's camera (`DCIM/NAME`) and ingests it with
    /// `uploader ingest` as the unregistered camera `serial`; returns its SHA-256.
    @discardableResult
    public func ingestOneRecording(named name: String = "VID0001.MP4", serial: String, payloadSize: Int64 = 10_000,
                                   sourceLocation: SourceLocation = #_sourceLocation) throws -> SHA256Digest {
        let digest = try CameraVolume.writeRecording(at: camera + "/DCIM/" + name, recordedAt: Date(), payloadSize: payloadSize)
        try run(["ingest", camera, "--serial", serial], sourceLocation: sourceLocation)
        return digest
    }

    // MARK: The spool

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
}

/// A site's ledger, opened on first use: a test that only runs commands never opens it.
private final class OpenedLedger: Sendable {
    let path: String
    private let opened = Mutex<Ledger?>(nil)

    init(path: String) { self.path = path }

    func ledger() throws -> Ledger {
        try opened.withLock { ledger in
            if let ledger { return ledger }
            let made = try Ledger(path: path)
            ledger = made
            return made
        }
    }
}
