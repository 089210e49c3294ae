import Foundation
import Testing

extension EndToEnd {
    /// Every error path a person meets on the command line, run through the binary: what it prints must be a
    /// message a person can act on, never a Swift value dumped with its type name (`IoTCoreError(credentials)`,
    /// `SingleConnectionFailure(target: …)`), and a misspelt command or name gets the one that was meant.
    @Suite(.serialized, .timeLimit(.minutes(2))) struct ErrorMessagesTests {
        struct Case: CustomTestStringConvertible, Sendable {
            var name: String
            /// Arguments after `uplink`; `CONFIG` is replaced by the path of `config` (whose `data_dir: STATE`
            /// becomes a fresh directory).
            var arguments: [String]
            var config: String = ""
            var input = ""
            /// Text the output must contain (the hint that makes it actionable).
            var expected: String
            var testDescription: String { name }
        }

        /// Text that looks like a Swift value printed with `\(error)`: a type name and a parenthesis.
        static let swiftTypeName = try! NSRegularExpression(pattern: #"\b[A-Z][A-Za-z0-9]+\("#)

        static func leaks(_ text: String) -> [String] {
            let range = NSRange(text.startIndex..., in: text)
            return swiftTypeName.matches(in: text, range: range).compactMap { match in
                // The whole line, to show where it is.
                guard let found = Range(match.range, in: text) else { return nil }
                let line = text[..<found.lowerBound].split(separator: "\n", omittingEmptySubsequences: false).last ?? ""
                return String(line) + String(text[found])
            }
        }

        /// A pipeline whose sink is the embedded emulator, for the commands that use a sink's device.
        static let embeddedSink = """
            data_dir: STATE
            sources:
              in: { type: stdin }
            transforms:
              wrap: { type: json, inputs: [in] }
            sinks:
              cloud: { type: iotcore_http, inputs: [wrap], endpoint: embedded, product_sn: p, device_sn: d, device_secret: s }
            """

        static let cases: [Case] = [
            Case(
                name: "a YAML syntax error", arguments: ["validate", "CONFIG"],
                config: "sources:\n  a: {type: stdin\nsinks: [\n", expected: "while parsing a flow mapping"),
            Case(
                name: "a cycle", arguments: ["validate", "CONFIG"],
                config: """
                    sources:
                      in: { type: stdin }
                    transforms:
                      a: { type: json, inputs: [in, b] }
                      b: { type: json, inputs: [a] }
                    sinks:
                      out: { type: stdout, inputs: [b] }
                    """, expected: "is part of a cycle"),
            Case(
                name: "an unset variable", arguments: ["validate", "CONFIG"],
                config: """
                    sources:
                      in: { type: stdin }
                    transforms:
                      wrap: { type: json, inputs: [in] }
                    sinks:
                      cloud: { type: iotcore_http, inputs: [wrap], endpoint: embedded, product_sn: p, device_sn: "${UPLINK_TEST_UNSET_SN}", device_secret: s }
                    """, expected: "environment variable UPLINK_TEST_UNSET_SN is not set"),
            Case(name: "a misspelt command", arguments: ["valdiate", "x.yaml"], expected: "did you mean 'validate'?"),
            Case(name: "a misspelt subcommand", arguments: ["dead-letters", "replya"], expected: "did you mean 'dead-letters replay'?"),
            Case(name: "a misspelt plugin name", arguments: ["plugins", "sreial"], expected: "did you mean 'serial'?"),
            Case(name: "a misspelt flag", arguments: ["run", "--log-levle", "debug", "x.yaml"], expected: "Did you mean '--log-level'?"),
            Case(name: "a log level abbreviated", arguments: ["run", "--log-level", "warn", "x.yaml"], expected: "did you mean 'warning'?"),
            Case(
                name: "a misspelt option", arguments: ["validate", "CONFIG"],
                config: """
                    sources:
                      s: { type: serial, device: /dev/null, buad: 9600 }
                    sinks:
                      out: { type: stdout, inputs: [s] }
                    """, expected: "did you mean 'baud'?"),
            Case(
                name: "a misspelt transform in a test", arguments: ["test", "CONFIG"],
                config: """
                    sources:
                      in: { type: stdin }
                    transforms:
                      wrap: { type: json, inputs: [in] }
                    sinks:
                      out: { type: stdout, inputs: [wrap] }
                    tests:
                      - name: x
                        input: { lines: [a] }
                        through: [wrapp]
                        expect: { count: 1 }
                    """, expected: "no component 'wrapp'; did you mean 'wrap'?"),
            Case(
                name: "a test filter that selects nothing", arguments: ["test", "CONFIG", "--filter", "pases"],
                config: """
                    sources:
                      in: { type: stdin }
                    transforms:
                      wrap: { type: json, inputs: [in] }
                    sinks:
                      out: { type: stdout, inputs: [wrap] }
                    tests:
                      - name: passes
                        input: { lines: [a] }
                        through: [wrap]
                        expect: { count: 1 }
                    """, expected: "no test name contains 'pases'; did you mean 'passes'? (tests: 'passes')"),
            Case(
                name: "a command, a device and an output that do not exist", arguments: ["run", "CONFIG"],
                config: """
                    data_dir: STATE
                    sources:
                      e: { type: exec, command: [/nonexistent/command], interval: 1h }
                      s: { type: serial, device: /nonexistent/tty }
                    transforms:
                      j: { type: json, inputs: [e, s] }
                    sinks:
                      o: { type: file, inputs: [j], path: /nonexistent/directory/out.jsonl }
                    """, expected: "option 'path' cannot be opened for writing: the directory /nonexistent/directory does not exist"),
            Case(
                name: "regular expressions that do not compile", arguments: ["validate", "CONFIG"],
                config: """
                    sources:
                      f: { type: file, include: [/nonexistent/*.log], multiline: { start_pattern: "(" } }
                    transforms:
                      j: { type: json, inputs: [f], mode: regex, pattern: "(?<a>" }
                    sinks:
                      o: { type: stdout, inputs: [j] }
                    """, expected: "is not a valid regular expression"),
            Case(name: "a configuration that does not exist", arguments: ["validate", "/nonexistent/uplink.yaml"], expected: "uplink: cannot read /nonexistent/uplink.yaml: no such file or directory"),
            Case(
                name: "a plugin that does not exist", arguments: ["validate", "CONFIG"],
                config: """
                    plugins: [./missing-plugin.so]
                    sources:
                      in: { type: stdin }
                    sinks:
                      out: { type: stdout, inputs: [in] }
                    """, expected: "missing-plugin.so"),
            Case(name: "an API that is not there (top)", arguments: ["top", "--api", "127.0.0.1:1", "--count", "1"], expected: "Connection refused"),
            Case(name: "an API that is not there (tap)", arguments: ["tap", "x", "--api", "127.0.0.1:1", "--limit", "1"], expected: "Connection refused"),
            Case(
                name: "a body that does not exist", arguments: ["publish", "CONFIG", "--file", "/nonexistent/body.json"],
                config: Self.embeddedSink, expected: "uplink: cannot read /nonexistent/body.json: no such file or directory"),
            Case(
                name: "dead letters that do not exist", arguments: ["dead-letters", "replay", "/nonexistent/dl.jsonl", "--config", "CONFIG"],
                config: Self.embeddedSink, expected: "uplink: cannot read /nonexistent/dl.jsonl: no such file or directory"),
            Case(name: "devices that do not exist", arguments: ["emulator", "--devices", "/nonexistent/devices.yaml"], expected: "uplink: cannot read /nonexistent/devices.yaml: no such file or directory"),
        ]

        @Test(arguments: cases) func anErrorIsForPeople(_ test: Case) async throws {
            var arguments = test.arguments
            if !test.config.isEmpty {
                let state = UplinkProcess.temporaryDirectory().appendingPathComponent("state").path
                let path = try UplinkProcess.writeConfig(test.config.replacingOccurrences(of: "data_dir: STATE", with: "data_dir: \(state)"))
                arguments = arguments.map { $0 == "CONFIG" ? path : $0 }
            }
            let result = try await UplinkProcess.runAsync(arguments, input: Data(test.input.utf8), timeout: 30)
            let output = result.stdoutText + result.stderr
            #expect(result.status != 0, "\(output)")
            #expect(output.contains(test.expected), "\(output)")
            #expect(Self.leaks(output).isEmpty, "Swift type names in: \(Self.leaks(output))")
        }

        /// Refused credentials went out as `IoTCoreError(credentials): …`.
        @Test func refusedCredentialsAreForPeople() async throws {
            let directory = UplinkProcess.temporaryDirectory()
            let emulator = try DeliveryFaultTests.EmulatorProcess(directory: directory)
            defer { emulator.stop() }
            let config = try UplinkProcess.writeConfig(
                """
                data_dir: \(directory.appendingPathComponent("state").path)
                sources:
                  in: { type: stdin }
                transforms:
                  wrap: { type: json, inputs: [in] }
                sinks:
                  cloud:
                    type: iotcore_http
                    inputs: [wrap]
                    \(emulator.sinkOptions(indent: 4).replacingOccurrences(of: "device_secret: s3cr3tKey0000000", with: "device_secret: not-the-secret"))
                """)
            let result = try await UplinkProcess.runAsync(["auth", config], input: Data(), timeout: 30)
            let output = result.stdoutText + result.stderr
            #expect(result.status != 0)
            #expect(output.contains("refused the device's credentials"), "\(output)")
            #expect(Self.leaks(output).isEmpty, "Swift type names in: \(Self.leaks(output))")
        }

        /// A port in use went out as NIO's `bind(descriptor:ptr:bytes:): Address already in use (errno: 98)`.
        @Test func aPortInUseIsForPeople() async throws {
            let directory = UplinkProcess.temporaryDirectory()
            let emulator = try DeliveryFaultTests.EmulatorProcess(directory: directory)
            defer { emulator.stop() }
            let devices = ExamplePipelinesTests.repository.appendingPathComponent("examples/emulator-devices.yaml").path
            let result = try await UplinkProcess.runAsync(["emulator", "--devices", devices, "--port", "\(emulator.port)"], input: Data(), timeout: 30)
            let output = result.stdoutText + result.stderr
            #expect(result.status == 1)
            #expect(output.contains("cannot listen on 127.0.0.1:\(emulator.port): Address already in use (errno 98)"), "\(output)")
            #expect(!output.contains("bind("), "\(output)")
            #expect(Self.leaks(output).isEmpty, "Swift type names in: \(Self.leaks(output))")
        }

        /// A config that cannot be read went out as `x.yaml:0:0: error: cannot read the configuration: cannot open
        /// x.yaml: Permission denied (errno 13)`, a position that does not exist. Now one line with the path and
        /// the errno's text, exit 78 from validate and run alike.
        @Test func anUnreadableConfigurationSaysWhy() throws {
            let directory = UplinkProcess.temporaryDirectory().path
            let unreadable = directory + "/unreadable.yaml"
            FileManager.default.createFile(
                atPath: unreadable, contents: Data("sources: {in: {type: stdin}}\nsinks: {out: {type: stdout, inputs: [in]}}\n".utf8),
                attributes: [.posixPermissions: 0])
            // Root reads a mode-000 file: that case runs as nobody (setpriv), or is left out where it cannot.
            let asRoot = getuid() == 0
            let setpriv = "/usr/bin/setpriv"
            var cases: [(prefix: [String], path: String, reason: String)] = [
                ([], directory, "is a directory"),
                ([], directory + "/missing.yaml", "no such file or directory"),
            ]
            if !asRoot {
                cases.append(([], unreadable, "permission denied"))
            } else if FileManager.default.isExecutableFile(atPath: setpriv) {
                cases.append(([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"], unreadable, "permission denied"))
            }
            for (prefix, path, reason) in cases {
                for command in ["validate", "run"] {
                    let result = try Self.runPrefixed(prefix, [command, path])
                    #expect(result.status == 78, "\(command) \(path): \(result.stderr)")
                    #expect(result.stderr == "uplink: cannot read \(path): \(reason)\n", "\(command) \(path): \(result.stderr)")
                }
            }
        }

        /// Runs `uplink` after `prefix` (a command that runs another, such as setpriv), stdin empty.
        static func runPrefixed(_ prefix: [String], _ arguments: [String]) throws -> UplinkProcess.Result {
            guard let program = prefix.first else { return try UplinkProcess.run(arguments, timeout: 30) }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = Array(prefix.dropFirst()) + [UplinkProcess.executable.path] + arguments
            let stderrFile = try UplinkProcess.temporaryFile("stderr")
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = FileHandle.nullDevice
            process.standardError = try FileHandle(forWritingTo: stderrFile)
            try process.run()
            try UplinkProcess.wait(for: process, timeout: 30)
            return UplinkProcess.Result(
                status: process.terminationStatus, stdout: Data(),
                stderr: String(decoding: try Data(contentsOf: stderrFile), as: UTF8.self))
        }

        /// The pattern finds what it is for, so the tests above can fail.
        @Test func thePatternFindsTypeNames() {
            #expect(!Self.leaks("authentication failed: IoTCoreError(credentials): RetCode 171").isEmpty)
            #expect(!Self.leaks("Connection errors: SingleConnectionFailure(target: [IPv4]127.0.0.1)").isEmpty)
            #expect(Self.leaks("RetCode 171 (signature error) at test.yaml:3:4 (stdin, a.yaml:2:3)").isEmpty)
        }
    }
}
