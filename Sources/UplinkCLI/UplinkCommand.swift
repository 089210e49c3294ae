import ArgumentParser
import CUplinkLinux

/// The `uplink` command line: one subcommand per file in this module.
struct Uplink: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uplink",
        abstract: "Collect, transform and ship telemetry: a plugin-based pipeline for IoT-Core and beyond.",
        version: UplinkVersion.description,
        subcommands: [
            Run.self, Validate.self, Test.self, Plugins.self, Graph.self, Top.self, Tap.self, Emulator.self, Auth.self,
            Publish.self, DeadLetters.self, BenchChannel.self,
        ]
    )
}

/// `uplink --version` prints this; scripts/install.sh stamps the commit (UPLINK_COMMIT) at build time.
enum UplinkVersion {
    static let version = "0.1.0"
    static var description: String { "\(version) (commit \(String(cString: uplink_build_commit())))" }
}
