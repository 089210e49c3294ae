// swift-tools-version:6.1
import PackageDescription

// A user's own package: a custom transform, and an `uplink` binary that includes it next to the built-ins.
// It depends on Uplink by path here; a real one would use .package(url: "https://…/uplink.git", from: "0.1.0").
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "swift-unit-converter",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "uplink-units", targets: ["uplink-units"]),
        .library(name: "UnitConverter", targets: ["UnitConverter"]),
    ],
    dependencies: [
        .package(name: "uplink", path: "../..")
    ],
    targets: [
        // The plugin: depends only on the plugin API (stage protocols, events, config reader, registry).
        .target(
            name: "UnitConverter",
            dependencies: [
                .product(name: "UplinkCore", package: "uplink"),
                .product(name: "UplinkYAML", package: "uplink"),
            ],
            swiftSettings: swiftSettings
        ),
        // The binary: Uplink's command line with the built-ins plus this plugin.
        .executableTarget(
            name: "uplink-units",
            dependencies: ["UnitConverter", .product(name: "UplinkCLI", package: "uplink")],
            swiftSettings: swiftSettings
        ),
    ]
)
