import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import TestSupport
import UploaderCore
@testable import Dock
@testable import Ingest
@testable import Agent
@testable import Ledger
import Platform

/// Collects what another thread reports and lets a test wait for it, with a
/// timeout that only turns a missing event into a failure.
final class Collector<Item: Sendable>: Sendable {
    private let items = Mutex<[Item]>([])
    private let signal = DispatchSemaphore(value: 0)

    func add(_ item: Item) {
        items.withLock { $0.append(item) }
        signal.signal()
    }

    var all: [Item] { items.withLock { $0 } }

    /// Waits until `predicate` holds for the collected items (at most `seconds`).
    func wait(seconds: Double = 20, until predicate: ([Item]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !predicate(all) {
            if signal.wait(timeout: .now() + max(0, deadline.timeIntervalSinceNow)) == .timedOut { return predicate(all) }
        }
        return true
    }
}

/// A service beside the daemon's that notes whether invariant 7 is checked in the tasks it runs in.
final class BlockingCheckProbe: Service, Sendable {
    let sawTheCheckOn = Atomic<Bool>(false)

    func run() async throws {
        sawTheCheckOn.store(BlockingCallCheck.isEnabled, ordering: .relaxed)
        try? await gracefulShutdown()
    }
}

extension TestSite {
    /// A site that docks cameras: its camera models and a mount root (`mnt`) of folders.
    static func docking(models: String = EmulatedDockTests.modelsText, docking: String = "") throws -> TestSite {
        let site = try make("dock") {
            $0.files["cameras.toml"] = models
            $0.extra = "[docking]\nmount_root = \"mnt\"\nmodels = \"cameras.toml\"\n\(docking)"
        }
        // The ledger exists before the first dock, as on an installed docking PC.
        _ = try site.ledger
        return site
    }

    func runner(models: CameraModels, folders: [String: String], now: @escaping @Sendable () -> Date = Date.init) throws -> DockRunner {
        DockRunner(configuration: try configuration(), models: models, ledger: try ledger, mounter: FolderMounter(folders: folders),
                   logger: Logger(label: "test"), now: now)
    }
}

/// A mount-step test runs only as root, like the dock unit's mount step.
let asRoot: Testing.ConditionTrait = .enabled(if: geteuid() == 0, "the dock unit's mount step runs as root; so must its test")
