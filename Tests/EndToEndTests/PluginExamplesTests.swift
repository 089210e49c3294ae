import Foundation
import Testing

extension EndToEnd {
    /// Every example in plugins-examples/ is built as its README says and its pipeline is run with the built
    /// `uplink` (or, for the Swift package, the binary it builds).
    @Suite struct PluginExamplesTests {
        static var repository: URL { ExamplePipelinesTests.repository }
        static var examples: URL { repository.appendingPathComponent("plugins-examples") }

        /// Runs a program to completion and returns its status and output (stdout + stderr), bounded in time.
        static func command(
            _ arguments: [String], in directory: URL? = nil, environment: [String: String] = [:], timeout: TimeInterval
        ) throws -> (status: Int32, output: String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = arguments
            process.currentDirectoryURL = directory
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
            let log = try UplinkProcess.temporaryFile("command.log")
            let handle = try FileHandle(forWritingTo: log)
            process.standardOutput = handle
            process.standardError = handle
            process.standardInput = FileHandle.nullDevice
            try process.run()
            try UplinkProcess.wait(for: process, timeout: timeout)
            try handle.close()
            return (process.terminationStatus, String(decoding: try Data(contentsOf: log), as: UTF8.self))
        }

        @Test(.timeLimit(.minutes(2))) func pythonExampleRunsItsPipeline() throws {
            let pipeline = Self.examples.appendingPathComponent("python-process/pipeline.yaml").path
            let input =
                #"{"sensor":"a","temp":21.5}"# + "\n" + #"{"sensor":"b","temp":35}"# + "\n" + #"{"note":"no reading"}"#
                + "\n"
            let result = try UplinkProcess.run(
                ["run", pipeline], input: Data(input.utf8),
                environment: ["UPLINK_DATA_DIR": UplinkProcess.temporaryDirectory().path, "SITE": "depot"])
            #expect(result.status == 0, "stderr: \(result.stderr)")
            #expect(
                result.stdoutText.split(separator: "\n") == [
                    #"{"sensor":"a","temp":21.5,"site":"depot","alert":false}"#,
                    #"{"sensor":"b","temp":35,"site":"depot","alert":true}"#,
                    #"{"note":"no reading","site":"depot"}"#,
                ])
            #expect(result.stderr.contains("enriching for site depot"), "the plugin's log message reaches the log")

            let listing = try UplinkProcess.run(["plugins", "process", "--config", pipeline])
            #expect(listing.status == 0, "stderr: \(listing.stderr)")
            #expect(
                listing.stdoutText.contains(
                    "enrich: 'enrich' 1.0  transform [record -> record]  (process: python3 enrich.py)"))
            #expect(listing.stdoutText.contains("- config.alert_above: number"))
        }

        @Test(.timeLimit(.minutes(2))) func shellExampleRunsItsPipeline() throws {
            let pipeline = Self.examples.appendingPathComponent("shell-process/pipeline.yaml").path
            let archive = UplinkProcess.temporaryDirectory().appendingPathComponent("uptime.jsonl").path
            let result = try UplinkProcess.run(
                ["run", pipeline],
                environment: [
                    "UPLINK_DATA_DIR": UplinkProcess.temporaryDirectory().path, "UPTIME_COUNT": "3",
                    "UPTIME_INTERVAL": "0.1", "UPTIME_FILE": archive,
                ])
            #expect(result.status == 0, "stderr: \(result.stderr)")
            let lines = result.stdoutText.split(separator: "\n")
            #expect(lines.count == 3)
            for line in lines {
                let record = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                #expect(record["uptime_s"] is NSNumber && record["load1"] is NSNumber, "\(line)")
            }
            let archived = try String(contentsOfFile: archive, encoding: .utf8).split(separator: "\n")
            #expect(archived.count >= 1)
            #expect(archived.joined().components(separatedBy: "uptime_s").count - 1 == 3, "every record was appended")
        }

        @Test(.timeLimit(.minutes(2))) func cExampleBuildsWithMakeAndRunsItsPipeline() throws {
            // Built in a copy, so the repository stays clean.
            let work = UplinkProcess.temporaryDirectory()
            for file in ["scale.c", "Makefile", "pipeline.yaml"] {
                try FileManager.default.copyItem(
                    at: Self.examples.appendingPathComponent("c-shared-object/\(file)"),
                    to: work.appendingPathComponent(file))
            }
            let include = Self.repository.appendingPathComponent("include").path
            let make = try Self.command(
                ["make", "UPLINK_INCLUDE=\(include)", "CFLAGS=-O2 -Wall -Wextra -Werror -std=c11"], in: work, timeout: 60)
            #expect(make.status == 0, "\(make.output)")
            let pipeline = work.appendingPathComponent("pipeline.yaml").path
            let input = #"{"sensor":"a","celsius":21.5}"# + "\n" + #"{"sensor":"b","celsius":-40}"# + "\n"
            let result = try UplinkProcess.run(
                ["run", pipeline], input: Data(input.utf8),
                environment: ["UPLINK_DATA_DIR": work.appendingPathComponent("state").path])
            #expect(result.status == 0, "stderr: \(result.stderr)")
            #expect(
                result.stdoutText.split(separator: "\n") == [
                    #"{"sensor":"a","celsius":21.5,"fahrenheit":70.7}"#,
                    #"{"sensor":"b","celsius":-40,"fahrenheit":-40.0}"#,
                ])

            let listing = try UplinkProcess.run(["plugins", "scale", "--config", pipeline])
            #expect(listing.status == 0, "stderr: \(listing.stderr)")
            let library = work.appendingPathComponent("libscale.so").resolvingSymlinksInPath().path
            #expect(
                listing.stdoutText.contains("scale  [record -> record]  (shared object \(library))"),
                "\(listing.stdoutText)")
            #expect(listing.stdoutText.contains("- field: string, required"))
        }

        @Test(.timeLimit(.minutes(2))) func aPluginThatCannotBeLoadedIsAConfigErrorAtItsLine() throws {
            let config = try UplinkProcess.writeConfig(
                """
                plugins:
                  - ./libmissing.so
                sources:
                  s: { type: stdin }
                sinks:
                  k: { type: stdout, inputs: [s] }
                """)
            let result = try UplinkProcess.run(["validate", config])
            #expect(result.status == 78)
            let directory = (config as NSString).deletingLastPathComponent
            #expect(
                result.stderr.contains(
                    "\(config):2:5: error: plugin \(directory)/libmissing.so: cannot open: No such file or directory"),
                "\(result.stderr)")
        }

        /// Builds the Swift example package (its own dependency graph, so the first build takes many minutes on a
        /// small machine) in a scratch directory under /tmp, then runs its pipeline with the binary it built.
        @Test(
            .enabled(
                if: ProcessInfo.processInfo.environment["UPLINK_SKIP_SWIFT_EXAMPLE"] == nil,
                "UPLINK_SKIP_SWIFT_EXAMPLE is set"),
            .timeLimit(.minutes(60)))
        func swiftExamplePackageBuildsAndRunsItsPipeline() throws {
            let package = Self.examples.appendingPathComponent("swift-unit-converter")
            let scratch =
                ProcessInfo.processInfo.environment["UPLINK_SWIFT_EXAMPLE_SCRATCH"] ?? "/tmp/uplink-swift-example-build"
            let build = try Self.command(
                ["swift", "build", "--package-path", package.path, "--scratch-path", scratch], timeout: 3600)
            #expect(build.status == 0, "\(build.output.suffix(4000))")
            let binary = URL(fileURLWithPath: scratch).appendingPathComponent("debug/uplink-units")
            #expect(FileManager.default.isExecutableFile(atPath: binary.path))

            let pipeline = package.appendingPathComponent("pipeline.yaml").path
            let run = Process()
            run.executableURL = binary
            run.arguments = ["run", pipeline, "--log-level", "warning"]
            run.environment = ["UPLINK_DATA_DIR": UplinkProcess.temporaryDirectory().path]
            let input = Pipe()
            let output = Pipe()
            run.standardInput = input
            run.standardOutput = output
            try run.run()
            input.fileHandleForWriting.write(
                Data((#"{"temp":21.5,"pressure":101325}"# + "\n" + #"{"temp":"n/a"}"# + "\n").utf8))
            try input.fileHandleForWriting.close()
            try UplinkProcess.wait(for: run, timeout: 60)
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(run.terminationStatus == 0)
            #expect(
                text.split(separator: "\n") == [
                    #"{"temp":70.7,"pressure":101325,"pressure_kpa":101.33}"#, #"{"temp":"n/a"}"#,
                ])

            let listing = Process()
            listing.executableURL = binary
            listing.arguments = ["plugins", "unit_convert"]
            let listed = Pipe()
            listing.standardOutput = listed
            try listing.run()
            try UplinkProcess.wait(for: listing, timeout: 60)
            let plugins = String(decoding: listed.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(plugins.contains("unit_convert  [record -> record]  (package swift-unit-converter)"), "\(plugins)")
        }
    }
}
