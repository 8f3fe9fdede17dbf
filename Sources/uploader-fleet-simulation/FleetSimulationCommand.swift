import ArgumentParser
import Crypto
import Fleet
import Foundation
import Ledger
import Synchronization
import Transport
import UploaderCore

/// The fleet benchmark's loader (`scripts/lib/bench-fleet.sh`): writes a
/// fleet registry of years into the configured store (signed commits with
/// parallel PUTs, and the newest snapshots), so a new dock's first sync can be
/// timed against it. Its own executable: the product never ships a way to
/// write made-up commits. Keys are made here and thrown away.
@main
struct FleetSimulationCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uploader-fleet-simulation",
        abstract: "Write a simulated fleet registry (signed commits and snapshots) into the configured store.")
    @Option(help: "The configuration file (its [store] is written to).") var config: String
    @Option(help: "Cameras registered (device.add).") var cameras = 2_000
    @Option(help: "Commits in all (member admissions and device additions included).") var commits = 100_000
    @Option(help: "Member docks (the first creates the fleet).") var members = 20
    @Option(help: "PUTs at once.") var parallel = 16
    @Option(help: "Snapshots written: the newest this many multiples of the interval (a new dock reads the newest).") var snapshots = 3

    static func say(_ started: Date, _ text: String) {
        FileHandle.standardError.write(Data("\(String(format: "%6.1f", Date().timeIntervalSince(started))) s  \(text)\n".utf8))
    }

    func validate() throws {
        guard members >= 1, cameras >= 1, commits >= members + cameras, parallel >= 1 else {
            throw ValidationError("--members ≥ 1, --cameras ≥ 1, --commits ≥ members + cameras, --parallel ≥ 1")
        }
    }

    func run() throws {
        let configuration = try ConfigurationLoader.load(path: config)
        let credentials = try Credentials.load(configuration.store.credentials)
        let prefix = configuration.store.prefix
        let started = Date()
        func say(_ text: String) { Self.say(started, text) }

        var registry = SimulatedRegistry(members: members, cameras: cameras)
        let keys = try (0..<members).map { _ in try Ed25519PrivateKey() }
        let lastSnapshot = Int64(commits) / FleetSnapshot.interval * FleetSnapshot.interval
        let firstSnapshot = max(FleetSnapshot.interval, lastSnapshot - Int64(snapshots - 1) * FleetSnapshot.interval)
        var objects: [(key: String, bytes: [UInt8])] = []
        objects.reserveCapacity(commits + snapshots)
        var parent = Ledger.fleetGenesisParent
        let base = Date(timeIntervalSince1970: 1_700_000_000)
        for number in Int64(1)...Int64(commits) {
            let writer = Int(number - 1) < members ? 0 : Int(number % Int64(members))
            let change = registry.next(number: number, keys: keys)
            let commit = try FleetCommit(number: number, parent: parent, dock: String(format: "dock-%02d", writer + 1), user: "admin",
                                         at: base.addingTimeInterval(Double(number) * 600), change: change, key: keys[writer])
            parent = commit.hash
            objects.append((FleetKeys.commit(prefix: prefix, number: number), try commit.encoded()))
            if number % FleetSnapshot.interval == 0, number >= firstSnapshot, snapshots > 0 {
                let snapshot = try FleetSnapshot.Writer(header: FleetSnapshot.Header(number: number, commit: commit.hash, dock: commit.dock, user: "admin",
                                                                                     signer: keys[writer].publicKey.hex))
                registry.forEachEntry(snapshot.add)
                _ = try snapshot.finish(key: keys[writer])
                objects.append((FleetSnapshot.key(prefix: prefix, number: number), snapshot.bytes ?? []))
                say("snapshot at commit \(number): \(registry.liveDevices) cameras, \(registry.livePeriods) custody periods, \((snapshot.bytes ?? []).count / 1024) KiB")
            }
        }
        say("\(commits) commits signed; writing \(objects.count) objects with \(parallel) PUTs at once")

        let all = objects
        let next = Atomic<Int>(0)
        let failures = Mutex<[String]>([])
        let finished = DispatchSemaphore(value: 0)
        for _ in 0..<parallel {
            Thread {
                defer { finished.signal() }
                let client = S3Client(configuration: configuration, credentials: credentials)
                while true {
                    let index = next.add(1, ordering: .relaxed).oldValue
                    guard index < all.count else { return }
                    var attempt = 0
                    while true {
                        attempt += 1
                        do {
                            if try client.putOnce(key: all[index].key, bytes: all[index].bytes, contentType: "application/json") == .exists {
                                failures.withLock { $0.append("\(all[index].key) exists already: use an empty prefix") }
                            }
                            break
                        } catch let error as UploaderError where error.isRetryable && attempt < 5 {
                            Thread.sleep(forTimeInterval: 0.2 * Double(attempt))
                        } catch {
                            failures.withLock { $0.append("\(all[index].key): \(error)") }
                            break
                        }
                    }
                    if (index + 1) % 20_000 == 0 { FleetSimulationCommand.say(started, "\(index + 1) objects written") }
                }
            }.start()
        }
        for _ in 0..<parallel { finished.wait() }
        let failed = failures.withLock { $0 }
        guard failed.isEmpty else { throw ValidationError("\(failed.count) objects not written, e.g. \(failed[0])") }
        say("done: \(commits) commits, \(objects.count - commits) snapshots under \(prefix.isEmpty ? "the bucket's root" : prefix)")
    }
}

/// The registry as the simulation changes it, in memory (the loader's own
/// state, not a dock's): member admissions, then every camera added, then
/// custody periods of 8-hour shifts on the cameras in turn, with one in fifty
/// changes withdrawing a camera's last period.
struct SimulatedRegistry {
    let members: Int
    let cameras: Int
    var memberKeys: [(publicKey: String, dock: String, admittedIn: Int64)] = []
    /// Every period assigned, in commit order; nil once withdrawn.
    var periods: [(commit: Int64, serial: String, user: String, from: String, until: String)?] = []
    var lastPeriod: [Int: Int] = [:]
    var shifts: [Int: Int] = [:]
    private(set) var liveDevices = 0
    private(set) var livePeriods = 0

    init(members: Int, cameras: Int) {
        self.members = members
        self.cameras = cameras
    }

    static func serial(_ camera: Int) -> String { String(format: "BWC-%05d", camera) }
    static func officer(_ number: Int) -> String { String(format: "officer-%05d", number) }

    mutating func next(number: Int64, keys: [Ed25519PrivateKey]) -> RegistryChange {
        let index = Int(number - 1)
        if index < members {
            let dock = String(format: "dock-%02d", index + 1)
            memberKeys.append((keys[index].publicKey.hex, dock, number))
            return RegistryChange(kind: .memberAdmit, publicKey: keys[index].publicKey.hex, dock: dock)
        }
        if index < members + cameras {
            let camera = index - members
            liveDevices += 1
            return RegistryChange(kind: .deviceAdd, serial: Self.serial(camera), user: Self.officer(camera), model: "BWC-X")
        }
        let step = index - members - cameras
        let camera = step % cameras
        let serial = Self.serial(camera)
        if step % 50 == 49, let last = lastPeriod[camera], let period = periods[last] {
            periods[last] = nil
            lastPeriod[camera] = nil
            livePeriods -= 1
            return RegistryChange(kind: .periodWithdraw, serial: serial, period: period.commit)
        }
        let shift = shifts[camera, default: 0]
        shifts[camera] = shift + 1
        let start = Date(timeIntervalSince1970: 1_700_000_000 + Double(shift) * 86_400 + Double(camera % 3) * 28_800)
        let from = RegistryChange.time(start), until = RegistryChange.time(start.addingTimeInterval(28_800))
        let user = Self.officer((camera + shift * 7) % (cameras * 2))
        periods.append((number, serial, user, from, until))
        lastPeriod[camera] = periods.count - 1
        livePeriods += 1
        return RegistryChange(kind: .periodAssign, serial: serial, user: user, from: from, until: until)
    }

    /// The registry's entries in snapshot order (what a dock's ledger gives for the same commits).
    func forEachEntry(_ body: (FleetSnapshotEntry) -> Void) {
        for member in memberKeys.sorted(by: { ($0.admittedIn, RegistryChange.fingerprint(publicKeyHex: $0.publicKey) ?? "") < ($1.admittedIn, RegistryChange.fingerprint(publicKeyHex: $1.publicKey) ?? "") }) {
            body(.member(publicKey: member.publicKey, dock: member.dock, admittedIn: member.admittedIn))
        }
        for camera in 0..<liveDevices {
            body(.device(serial: Self.serial(camera), user: Self.officer(camera), name: nil, model: "BWC-X", removed: false))
        }
        for case let period? in periods {
            body(.period(commit: period.commit, serial: period.serial, user: period.user, from: period.from, until: period.until))
        }
    }
}
