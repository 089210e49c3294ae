// swift-tools-version:6.1
import PackageDescription

// Swift 6 language mode with complete strict concurrency; the upcoming features Hummingbird enables.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

// The agent binary is linked with the toolchain's lld and packed relative relocations (DT_RELR, glibc 2.36+):
// the dynamic loader reads ~0.2 MB of relocations at start-up instead of ~1 MB, and those pages stay resident
// for the life of the process (bench/RESULTS.md: idle RSS 28.4 -> 26.8 MB). Only the executable target, so a
// package that builds its own binary from the libraries is unaffected.
//
// Release builds are the binary a board runs, linked for memory (bench/RESULTS.md, "Footprint"):
// - the Swift runtime and FoundationEssentials statically (-static-stdlib, plus the two static libraries
//   FoundationEssentials needs that the driver does not add on its own): only the parts used are linked, and
//   there is no dynamic symbol binding against them;
// - not position-independent (-no-pie): the executable's ~750 KB of pointers (witness tables, metadata) then
//   need no relocation at start-up, so their pages stay clean, shared with the page cache, instead of becoming
//   the process's own memory. The shared libraries, heap, stacks and mmaps are still placed at random;
// - in the order of packaging/link-order.txt (written by bench/link_order.py from profiles of real pipelines):
//   the functions the steady state runs together, then those start-up runs, then the variables the runtime
//   writes. A fault maps 64 KiB of the file around it, so the idle agent kept 4.3 MiB of scattered code
//   resident; ordered, 3.1 MiB, and 2.4 MiB when scripts/build-release.sh adds -function-sections (this
//   package's functions then move one by one instead of a source file at a time). HTTPS peak RSS -2.5 MiB
//   (-4.4 MiB), idle RssAnon -0.2 MiB. Names that no longer exist are skipped: an outdated file costs memory,
//   not correctness.
// Debug builds (the tests) stay dynamic and position-independent.
let uplinkLinkerSettings: [LinkerSetting] = [
    .unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"], .when(platforms: [.linux])),
    // CUplinkStartup's answer to GnuTLS's constructor has to be in the dynamic symbol table to be found.
    .unsafeFlags(["-Xlinker", "--export-dynamic-symbol=_gnutls_global_init_skip"], .when(platforms: [.linux])),
    .unsafeFlags(
        [
            "-static-stdlib", "-l_FoundationCollections", "-l_FoundationCShims", "-Xclang-linker", "-no-pie",
            "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/packaging/link-order.txt",
            "-Xlinker", "--no-warn-symbol-ordering",
        ],
        .when(platforms: [.linux], configuration: .release)),
]

let package = Package(
    name: "uplink",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "uplink", targets: ["uplink"]),
        // The plugin API: stage protocols, event types, the registry. Built-ins use exactly this API.
        .library(name: "UplinkCore", targets: ["UplinkCore"]),
        .library(name: "UplinkPlugins", targets: ["UplinkPlugins"]),
        // The command line as a library: a user's own `uplink` is `UplinkCLI.main(registry:)` plus its plugins.
        .library(name: "UplinkCLI", targets: ["UplinkCLI"]),
        .library(name: "UplinkYAML", targets: ["UplinkYAML"]),
        // A Swift device SDK for the IoT-Core HTTPS interface, usable without the pipeline.
        .library(name: "IoTCore", targets: ["IoTCore"]),
        .library(name: "IoTCoreEmulator", targets: ["IoTCoreEmulator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0", traits: []),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
    ],
    targets: [
        // C libraries fixed by the design card, reached through system-library targets.
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        .systemLibrary(
            name: "CCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // PCRE2 for the regexes users write (json's regex mode, multiline start_pattern): unlike Swift's Regex, a
        // match can be bounded (pcre2_set_match_limit), so one line cannot stall a pipeline.
        .systemLibrary(
            name: "CPCRE2",
            pkgConfig: "libpcre2-8",
            providers: [.apt(["libpcre2-dev"])]
        ),

        // Linux interfaces Glibc does not export to Swift (epoll, inotify, ptys, termios).
        .target(name: "CUplinkLinux"),
        // The `uplink` executable's answers to its shared libraries' constructors (GnuTLS's unused initialisation
        // skipped); only the executable links it.
        .target(name: "CUplinkStartup"),
        // The C ABI of loadable plugins: a module map over include/uplink_plugin.h (header only).
        .systemLibrary(name: "CUplinkPlugin"),

        .target(
            name: "UplinkYAML",
            dependencies: ["CYAML"],
            swiftSettings: swiftSettings
        ),
        // The file-system seam and the one atomic write, shared by the engine, the IoT-Core SDK and the emulator.
        .target(name: "UplinkFileSystem", swiftSettings: swiftSettings),
        // A file system that records what a power cut would keep, for crash-state tests.
        .target(name: "UplinkFileSystemTesting", dependencies: ["UplinkFileSystem"], swiftSettings: swiftSettings),
        // What several test targets share (a seeded generator), so each does not keep its own copy.
        .target(name: "UplinkTestSupport", swiftSettings: swiftSettings),
        .target(
            name: "UplinkCore",
            dependencies: [
                "UplinkYAML",
                "UplinkFileSystem",
                "CUplinkLinux",
                "CPCRE2",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "IoTCore",
            dependencies: [
                "UplinkFileSystem",
                "CCurl",
                "CCrypto",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "IoTCoreEmulator",
            dependencies: [
                "UplinkFileSystem",
                "CCrypto",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "UplinkPlugins",
            dependencies: [
                "UplinkCore",
                "UplinkFileSystem",
                "CUplinkLinux",
                "CUplinkPlugin",
                "IoTCore",
                "IoTCoreEmulator",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Operating a running pipeline: the API listener (/metrics, /health, /ready, taps, component snapshots),
        // the Prometheus exporter, per-minute summaries and `uplink test`. The engine only keeps atomics; this
        // module reads them when asked, so the hot path never pays for an exporter.
        .target(
            name: "UplinkOperations",
            dependencies: [
                "UplinkCore",
                "UplinkYAML",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "UplinkCLI",
            dependencies: [
                "CUplinkLinux",
                "UplinkCore",
                "UplinkOperations",
                "UplinkPlugins",
                "UplinkYAML",
                "IoTCore",
                "IoTCoreEmulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // Three lines: the built-ins handed to the command-line library.
        .executableTarget(
            name: "uplink",
            dependencies: ["UplinkCLI", "UplinkPlugins", "CUplinkStartup"],
            swiftSettings: swiftSettings,
            linkerSettings: uplinkLinkerSettings
        ),

        .testTarget(name: "UplinkYAMLTests", dependencies: ["UplinkYAML"], swiftSettings: swiftSettings),
        .testTarget(
            name: "UplinkPluginsTests",
            dependencies: [
                "UplinkCore", "UplinkPlugins", "IoTCoreEmulator", "UplinkTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "UplinkCoreTests",
            dependencies: ["UplinkCore", "UplinkPlugins", "UplinkFileSystem", "UplinkFileSystemTesting", "UplinkTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "UplinkOperationsTests",
            dependencies: [
                "UplinkCore", "UplinkOperations", "UplinkPlugins", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IoTCoreTests",
            dependencies: ["IoTCore", "IoTCoreEmulator", "UplinkFileSystem", "UplinkFileSystemTesting", "UplinkTestSupport"],
            swiftSettings: swiftSettings),
        // Runs the built `uplink` binary as a user would: real processes, pipes, files, loopback HTTPS.
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["uplink"],
            swiftSettings: swiftSettings
        ),
    ]
)
