// swift-tools-version:6.1
import PackageDescription

import struct Foundation.URL

// Micro-benchmarks of Uplink's hot paths (package-benchmark), kept out of the main package so that `swift build`
// and `swift test` at the root neither resolve nor build the benchmark tooling. Run them with `bench/micro.sh`.
//
// package-benchmark counts allocations with jemalloc by default; its MallocInterposer trait counts them with an
// LD_PRELOADed interposer instead, so no libjemalloc is needed. Naming the trait also leaves its
// RuntimeInterposer trait (ARC counters on Linux with Swift 6.3) off: these benchmarks do not measure ARC.

// A path dependency's identity is its directory's name, which is the checkout's name (`uplink`, or a worktree's).
let uplink = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .lastPathComponent.lowercased()

let package = Package(
    name: "UplinkBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        // The same requirement as the main package (a stage's ComponentContext carries a Logger).
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
    ],
    targets: [
        .executableTarget(
            name: "UplinkBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "UplinkCore", package: uplink),
                .product(name: "UplinkPlugins", package: uplink),
                .product(name: "IoTCore", package: uplink),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/UplinkBenchmarks",
            swiftSettings: [
                .enableUpcomingFeature("ExistentialAny"),
                .enableUpcomingFeature("MemberImportVisibility"),
            ],
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark")
            ]
        )
    ]
)
