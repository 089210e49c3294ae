import Foundation
import Testing

extension EndToEnd {
    /// The micro-benchmarks live in their own package (Benchmarks/) so the main build stays light; this keeps them
    /// building as the code they measure changes. Running them is `bench/micro.sh`'s job (release, minutes), not a
    /// test's: this one only proves the package still compiles against the code it measures.
    @Suite struct BenchmarksPackageTests {
        @Test(
            .enabled(
                if: ProcessInfo.processInfo.environment["UPLINK_SKIP_BENCHMARKS_BUILD"] == nil,
                "UPLINK_SKIP_BENCHMARKS_BUILD is set"),
            .timeLimit(.minutes(60)))
        func benchmarksPackageBuilds() throws {
            let package = PluginExamplesTests.repository.appendingPathComponent("Benchmarks")
            let scratch =
                ProcessInfo.processInfo.environment["UPLINK_BENCHMARKS_SCRATCH"] ?? "/tmp/uplink-benchmarks-build"
            let build = try PluginExamplesTests.command(
                ["swift", "build", "--package-path", package.path, "--scratch-path", scratch, "--product", "UplinkBenchmarks"],
                timeout: 3600)
            #expect(build.status == 0, "\(build.output.suffix(4000))")
            #expect(FileManager.default.isExecutableFile(atPath: scratch + "/debug/UplinkBenchmarks"))
        }
    }
}
