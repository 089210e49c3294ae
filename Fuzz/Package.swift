// swift-tools-version:6.1
import PackageDescription

// libFuzzer targets for the parsers and decoders that read what the agent does not control (configs, lines,
// child processes' output, files left by an earlier run, server answers). scripts/fuzz.sh builds and runs them.
//
// The modules under test are the main package's own sources (Modules/ holds symlinks to ../Sources/...), built
// here with coverage instrumentation and AddressSanitizer and with testing enabled (the targets reach internal
// decoders through @testable import). The third-party dependencies are built plainly: their coverage is not
// what is fuzzed, and instrumenting NIO and BoringSSL would cost minutes. UplinkPlugins is built without its
// IoT-Core sink and the built-in list (they need the in-process emulator, that is Hummingbird and NIO); what
// the sink parses from the server lives in IoTCore, which is fuzzed whole.
let instrumented: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .unsafeFlags(["-sanitize=fuzzer,address", "-enable-testing"]),
]
let instrumentedC: [CSetting] = [.unsafeFlags(["-fsanitize=fuzzer-no-link,address"])]

let package = Package(
    name: "uplink-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
    ],
    targets: [
        .systemLibrary(name: "CCurl", path: "Modules/CCurl", pkgConfig: "libcurl"),
        .systemLibrary(name: "CYAML", path: "Modules/CYAML", pkgConfig: "yaml-0.1"),
        .systemLibrary(name: "CCrypto", path: "Modules/CCrypto", pkgConfig: "libcrypto"),
        .systemLibrary(name: "CUplinkPlugin", path: "Modules/CUplinkPlugin"),
        .systemLibrary(name: "CPCRE2", path: "Modules/CPCRE2", pkgConfig: "libpcre2-8"),
        .target(name: "UplinkFileSystem", path: "Modules/UplinkFileSystem", swiftSettings: instrumented),
        .target(name: "CUplinkLinux", path: "Modules/CUplinkLinux", cSettings: instrumentedC),
        .target(name: "UplinkYAML", dependencies: ["CYAML"], path: "Modules/UplinkYAML", swiftSettings: instrumented),
        .target(
            name: "UplinkCore",
            dependencies: [
                "UplinkYAML", "UplinkFileSystem", "CUplinkLinux", "CPCRE2",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Modules/UplinkCore", swiftSettings: instrumented),
        .target(
            name: "IoTCore",
            dependencies: ["UplinkFileSystem", "CCurl", "CCrypto", .product(name: "Logging", package: "swift-log")],
            path: "Modules/IoTCore", swiftSettings: instrumented),
        .target(
            name: "UplinkPlugins",
            dependencies: [
                "UplinkCore", "UplinkFileSystem", "CUplinkLinux", "CUplinkPlugin", "IoTCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Modules/UplinkPlugins",
            exclude: ["Builtins.swift", "Sinks/IoTCore"],
            swiftSettings: instrumented),
        // One binary for every target: libFuzzer's main runs the target named by the binary's name
        // (fuzz-<target>, a symlink scripts/fuzz.sh makes) or by UPLINK_FUZZ_TARGET.
        .executableTarget(
            name: "UplinkFuzz",
            dependencies: [
                "UplinkYAML", "UplinkCore", "UplinkFileSystem", "IoTCore", "UplinkPlugins",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Targets/UplinkFuzz",
            swiftSettings: instrumented + [.unsafeFlags(["-parse-as-library"])],
            linkerSettings: [.unsafeFlags(["-sanitize=fuzzer,address", "-use-ld=lld"])]),
    ]
)
