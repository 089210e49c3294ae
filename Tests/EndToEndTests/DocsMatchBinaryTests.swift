import Foundation
import Testing

extension EndToEnd {
    /// What the README and the example pipelines promise, checked against the binary: a promise that stops
    /// holding fails here, not in a new user's first hour.
    @Suite(.serialized, .timeLimit(.minutes(2))) struct DocsMatchBinaryTests {
        static var repository: URL { ExamplePipelinesTests.repository }
        static var readme: String {
            (try? String(contentsOf: repository.appendingPathComponent("README.md"), encoding: .utf8)) ?? ""
        }

        /// The files of `pipelines/`.
        static func pipelineFiles() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: repository.appendingPathComponent("pipelines").path)
                .filter { $0.hasSuffix(".yaml") }.sorted()
        }

        @Test func everyPipelineIsInTheReadmeTable() throws {
            // Rows of the example table: | `pipelines/NAME.yaml` | what it shows |
            let listed = Set(
                Self.readme.split(separator: "\n").compactMap { line -> String? in
                    guard line.hasPrefix("| `pipelines/"), let end = line.dropFirst(13).firstIndex(of: "`") else { return nil }
                    return String(line[line.index(line.startIndex, offsetBy: 13)..<end])
                })
            let files = Set(try Self.pipelineFiles())
            #expect(!files.isEmpty)
            #expect(files.subtracting(listed).isEmpty, "in pipelines/ but not in the README's table: \(files.subtracting(listed).sorted())")
            #expect(listed.subtracting(files).isEmpty, "in the README's table but not in pipelines/: \(listed.subtracting(files).sorted())")
        }

        @Test(arguments: try! pipelineFiles()) func everyPipelineCarriesTestsThatPass(_ file: String) async throws {
            let path = Self.repository.appendingPathComponent("pipelines/\(file)").path
            let result = try await UplinkProcess.runAsync(
                ["test", path], input: Data(), environment: ["UPLINK_DATA_DIR": UplinkProcess.temporaryDirectory().path])
            let output = result.stdoutText
            #expect(result.status == 0, "\(output)\(result.stderr)")
            let summary = output.split(separator: "\n").last.map(String.init) ?? ""
            let passed = Int(summary.prefix(while: \.isNumber)) ?? 0
            #expect(passed > 0 && summary.hasSuffix("passed, 0 failed"), "\(file) has no tests: \(output)")
        }

        /// README, `--help` and the binary accept the same `--log-level`s.
        @Test func logLevelsAgree() async throws {
            let readmeLine = try #require(Self.readme.split(separator: "\n").first { $0.contains("`--log-level ") })
            let written = try #require(readmeLine.split(separator: "`").first { $0.hasPrefix("--log-level ") })
            let readmeLevels = written.dropFirst("--log-level ".count).split(separator: "|").map(String.init)

            let help = try await UplinkProcess.runAsync(["run", "--help"], input: Data()).stdoutText.replacingOccurrences(of: "\n", with: " ")
            let helpText = try #require(help.range(of: "--log-level <log-level>", options: .backwards).map { String(help[$0.upperBound...]) })
            // "trace, debug, info, notice, warning, error or critical. (default: info)"
            let sentence = helpText.prefix(while: { $0 != "." }).split(whereSeparator: { " ,".contains($0) }).filter { $0 != "or" }
            #expect(sentence.map(String.init) == readmeLevels, "help: \(helpText.prefix(120))")

            let missing = UplinkProcess.temporaryDirectory().appendingPathComponent("missing.yaml").path
            for level in readmeLevels {
                let result = try await UplinkProcess.runAsync(["run", "--log-level", level, missing], input: Data())
                #expect(result.status == 78, "--log-level \(level) refused: \(result.stderr)")
            }
            #expect(try await UplinkProcess.runAsync(["run", "--log-level", "loud", missing], input: Data()).status == 64)
        }

        @Test func pluginsListsNestedOptions() async throws {
            let sink = try await UplinkProcess.runAsync(["plugins", "iotcore_http"], input: Data()).stdoutText
            #expect(sink.contains("    - retry.max_backoff: duration"), "\(sink)")
            #expect(sink.contains("    - buffer.max_events: integer"), "\(sink)")
            #expect(sink.contains("    - buffer.when_full: "), "\(sink)")
            let file = try await UplinkProcess.runAsync(["plugins", "file"], input: Data()).stdoutText
            #expect(file.contains("    - multiline.start_pattern: string"), "\(file)")
            let batch = try await UplinkProcess.runAsync(["plugins", "batch"], input: Data()).stdoutText
            #expect(batch.contains("    - dead_letter_max_size: size, default 10MiB, formerly dead_letter_max_bytes"), "\(batch)")
            let source = try await UplinkProcess.runAsync(["plugins", "stdin"], input: Data()).stdoutText
            #expect(!source.contains("EVERY TRANSFORM AND SINK"), "a source has no inputs: \(source)")
        }

        /// Every option of every built-in plugin says what it takes: `aggregate`'s `fields` was listed as `any`.
        @Test func everyOptionHasAPreciseType() async throws {
            let listing = try await UplinkProcess.runAsync(["plugins"], input: Data()).stdoutText
            // Option lines: "    - name: type, default …" (nested ones as "    - buffer.max_events: …").
            let options = listing.split(separator: "\n").filter { $0.hasPrefix("    - ") }.map { line in
                let text = line.dropFirst(6)
                let name = text.prefix(while: { $0 != ":" })
                let type = text.dropFirst(name.count + 2).prefix(while: { $0 != "," })
                return (name: String(name), type: String(type))
            }
            #expect(options.count > 100, "\(listing.prefix(400))")
            let vague = options.filter { ["any", "mapping of strings", ""].contains($0.type) }
            #expect(vague.isEmpty, "options without a precise type: \(vague)")
            let aggregate = try await UplinkProcess.runAsync(["plugins", "aggregate"], input: Data()).stdoutText
            #expect(
                aggregate.contains(
                    "    - fields: map of field name to function or list of functions (mean, min, max, sum, count, first, last), required"),
                "\(aggregate)")
        }

        /// "each run's lines tagged with its exit status": in the record, with `attributes_field`.
        @Test func execRunsCarryTheirExitStatus() async throws {
            let directory = UplinkProcess.temporaryDirectory()
            let output = directory.appendingPathComponent("out.jsonl")
            let config = try UplinkProcess.writeConfig(
                """
                data_dir: \(directory.appendingPathComponent("state").path)
                sources:
                  probe: { type: exec, command: ["echo one; echo two; exit 3"], shell: true, interval: 1h }
                transforms:
                  wrap: { type: json, inputs: [probe], attributes_field: run }
                sinks:
                  out: { type: file, inputs: [wrap], path: \(output.path) }
                """)
            let agent = Process()
            agent.executableURL = UplinkProcess.executable
            agent.arguments = ["run", config, "--log-level", "error"]
            agent.standardOutput = FileHandle.nullDevice
            agent.standardError = FileHandle.nullDevice
            try agent.run()
            func records() -> [[String: Any]] {
                let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
                return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            }
            _ = try await UplinkProcess.waitUntil(30) { records().count >= 2 }
            kill(agent.processIdentifier, SIGTERM)
            try await UplinkProcess.waitAsync(for: agent, timeout: 30)
            let found = records()
            #expect(found.map { $0["message"] as? String } == ["one", "two"])
            for record in found {
                let run = try #require(record["run"] as? [String: Any], "\(record)")
                #expect(run["exit_code"] as? Int == 3)
                #expect((run["pid"] as? Int ?? 0) > 0)
            }
        }

        /// The quick start says where to look: the emulator's line, just before `pipeline stopped`.
        @Test func theQuickStartShowsWhatTheCloudReceivedWhereTheReadmeSays() async throws {
            #expect(Self.readme.contains("the log line `embedded IoT-Core emulator received`, just\nbefore `pipeline stopped`"))
            let state = UplinkProcess.temporaryDirectory()
            let config = Self.repository.appendingPathComponent("pipelines/quickstart-embedded.yaml").path
            let result = try await UplinkProcess.runAsync(
                ["run", config], input: Data("hello\nworld\n".utf8), environment: ["UPLINK_DATA_DIR": state.path])
            #expect(result.status == 0, "\(result.stderr)")
            let lines = result.stderr.split(separator: "\n")
            try #require(lines.count >= 2, "\(result.stderr)")
            #expect(lines[lines.count - 1].contains("pipeline stopped"), "\(result.stderr)")
            #expect(lines[lines.count - 2].contains("embedded IoT-Core emulator received"), "\(result.stderr)")
            #expect(lines[lines.count - 2].contains("emulator.messages=2"))
            #expect(lines[lines.count - 2].contains("emulator.last_topic=/abcdefgh12345678/device001/upload"))
            // "The last of them" is the last line given, not whichever request happened to finish last.
            #expect(lines[lines.count - 2].contains(#"emulator.last_body="{\"message\":\"world\""#), "\(result.stderr)")
        }
    }
}
