// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "uploader",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "uploader", targets: ["uploader"]),
        // The ledger-scale benchmark's loader (scripts/bench); not installed by scripts/package.
        .executable(name: "uploader-ledger-simulation", targets: ["uploader-ledger-simulation"]),
        // The fleet benchmark's loader (scripts/bench fleet); not installed either.
        .executable(name: "uploader-fleet-simulation", targets: ["uploader-fleet-simulation"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
    ],
    targets: [
        // C libraries, one system-library target each; every one has a shim.h.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CUdev",
            pkgConfig: "libudev",
            providers: [.apt(["libudev-dev"])]
        ),
        .systemLibrary(
            name: "CLibUSB",
            pkgConfig: "libusb-1.0",
            providers: [.apt(["libusb-1.0-0-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),

        // Pure Swift domain: no I/O, so its tests run in milliseconds.
        .target(
            name: "UploaderCore",
            dependencies: [
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),
        // The one home of syscalls, blocking-work threads, signals, fail points
        // and systemd notify.
        .target(
            name: "Platform",
            dependencies: [
                "UploaderCore",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // The local spool: its file layout and locks, the sealed-copy format,
        // the keyring that seals it, and its backpressure.
        .target(
            name: "Spool",
            dependencies: [
                "UploaderCore", "Platform", "Crypto",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "Crypto",
            dependencies: ["COpenSSL", "UploaderCore"]
        ),
        .target(
            name: "Ledger",
            dependencies: [
                "UploaderCore", "Platform", "Crypto",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "Ingest",
            dependencies: [
                "UploaderCore", "Platform", "Spool", "Crypto", "Ledger",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "Transport",
            dependencies: [
                "CCurl", "UploaderCore", "Platform", "Crypto",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]
        ),
        .target(
            name: "Dock",
            dependencies: [
                "CUdev", "CLibUSB", "UploaderCore", "Platform",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // The fleet registry as signed commits in the evidence store, read into each dock's ledger.
        .target(
            name: "Fleet",
            dependencies: ["UploaderCore", "Platform", "Ledger", "Crypto", "Transport"]
        ),
        // The workflows and their failure policy, side by side: dock, ingest, upload,
        // housekeeping (purge, alerts, metrics) and the daemon's services.
        .target(
            name: "Agent",
            dependencies: [
                "UploaderCore", "Platform", "Spool", "Ledger", "Crypto", "Ingest", "Transport", "Dock", "Fleet",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "uploader",
            dependencies: [
                "UploaderCore", "Platform", "Spool", "Ledger", "Ingest", "Transport", "Crypto", "Dock", "Agent", "Fleet",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Benchmark-only: years of simulated ledger history, never linked by `uploader`.
        .target(
            name: "LedgerSimulation",
            dependencies: [
                "UploaderCore", "Ledger", "Crypto",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        // The fleet benchmark's loader (scripts/lib/bench-fleet.sh): a registry of years in the store; not installed.
        .executableTarget(
            name: "uploader-fleet-simulation",
            dependencies: [
                "UploaderCore", "Ledger", "Fleet", "Transport", "Crypto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "uploader-ledger-simulation",
            dependencies: [
                "UploaderCore", "Platform", "Ledger", "LedgerSimulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // What every test target may use, with no store and no child process: temporary
        // folders, camera recordings, the one bounded wait, invariant 7's check, the tags.
        .target(
            name: "TestBasics",
            dependencies: ["Platform", "Crypto", "Ingest", .product(name: "SystemPackage", package: "swift-system")],
            path: "Tests/TestBasics"
        ),
        // Shared by the test targets that need more: the store scripts/test starts (SeaweedFS,
        // moto), a site built against it, the built `uploader` as a child, fault proxies.
        .target(
            name: "TestSupport",
            dependencies: [
                "TestBasics", "UploaderCore", "Platform", "Crypto", "Ingest", "Spool", "Ledger", "Transport", "Agent",
                .product(name: "Logging", package: "swift-log"), .product(name: "SystemPackage", package: "swift-system"),
            ],
            path: "Tests/TestSupport"
        ),
        // The domain, with no server and no child process: runs in seconds (`scripts/test --domain`).
        .testTarget(name: "DomainTests", dependencies: [
            "UploaderCore", "Platform", "Crypto", "Spool", "Ingest", "TestBasics", .product(name: "SystemPackage", package: "swift-system"),
        ]),
        .testTarget(name: "LedgerTests", dependencies: ["UploaderCore", "Platform", "Crypto", "Ledger", "LedgerSimulation", "TestSupport", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "IngestTests", dependencies: [
            "UploaderCore", "Platform", "Crypto", "Spool", "Agent", "Ingest", "Ledger", "TestSupport", .product(name: "Logging", package: "swift-log"), .product(name: "SystemPackage", package: "swift-system"),
        ]),
        .testTarget(name: "TransportTests", dependencies: [
            "UploaderCore", "Crypto", "Agent", "Transport", "Ingest", "Ledger", "Platform", "Spool", "TestSupport", .product(name: "Logging", package: "swift-log"), .product(name: "SystemPackage", package: "swift-system"),
        ]),
        // The agent's services in-process: scheduling, monitoring and alerts, its log handler.
        .testTarget(name: "AgentTests", dependencies: [
            "UploaderCore", "Platform", "Ledger", "Transport", "Agent", "TestSupport", .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "EndToEndTests", dependencies: [
            "UploaderCore", "Platform", "Spool", "Ledger", "Transport", "Agent", "Crypto", "TestSupport", .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        .testTarget(name: "FleetTests", dependencies: ["UploaderCore", "Ledger", "Transport", "Crypto", "Fleet", "Agent", "TestSupport"]),
        // Emulated USB cameras (umockdev); linked by the tests only, never by the product.
        .systemLibrary(
            name: "CUMockdev",
            path: "Tests/CUMockdev",
            pkgConfig: "umockdev-1.0",
            providers: [.apt(["libumockdev-dev"])]
        ),
        .testTarget(
            name: "DockTests",
            dependencies: [
                "UploaderCore", "Platform", "Crypto", "Spool", "Agent", "Dock", "Ingest", "Ledger", "TestSupport", "CUMockdev",
                .product(name: "Logging", package: "swift-log"), .product(name: "SystemPackage", package: "swift-system"), .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Fixtures")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
