// swift-tools-version:6.1
import PackageDescription

// Swift 6 language mode with complete strict concurrency; the upcoming features Hummingbird enables.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "uplink",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "uplink", targets: ["uplink"]),
        // The plugin API: stage protocols, event types, the registry. Built-ins use exactly this API.
        .library(name: "UplinkCore", targets: ["UplinkCore"]),
        .library(name: "UplinkPlugins", targets: ["UplinkPlugins"]),
        .library(name: "UplinkYAML", targets: ["UplinkYAML"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
    ],
    targets: [
        // C libraries fixed by the design card, reached through system-library targets.
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),

        // Linux interfaces Glibc does not export to Swift (epoll, inotify, ptys, termios).
        .target(name: "CUplinkLinux"),

        .target(
            name: "UplinkYAML",
            dependencies: ["CYAML"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "UplinkCore",
            dependencies: [
                "UplinkYAML",
                "CUplinkLinux",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "UplinkPlugins",
            dependencies: [
                "UplinkCore",
                "CUplinkLinux",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "uplink",
            dependencies: [
                "UplinkCore",
                "UplinkPlugins",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        .testTarget(name: "UplinkYAMLTests", dependencies: ["UplinkYAML"], swiftSettings: swiftSettings),
        .testTarget(
            name: "UplinkPluginsTests",
            dependencies: ["UplinkCore", "UplinkPlugins", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "UplinkCoreTests",
            dependencies: ["UplinkCore", "UplinkPlugins"],
            swiftSettings: swiftSettings
        ),
        // Runs the built `uplink` binary as a user would: real processes, pipes, files, loopback HTTPS.
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["uplink"],
            swiftSettings: swiftSettings
        ),
    ]
)
