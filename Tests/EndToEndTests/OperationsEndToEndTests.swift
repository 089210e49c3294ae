import Foundation
import Testing

extension EndToEnd {
    /// Operating a running agent, as an operator would: scrape /metrics and /health of `uplink run` while an
    /// `uplink emulator` process refuses and accepts, `uplink tap`, `uplink top` under a pseudo-terminal, and
    /// `uplink test`.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct OperationsEndToEndTests {
        /// `uplink run` with its stdin open, its API on a free port (read from its log).
        final class Agent {
            let process = Process()
            let input = Pipe()
            let stderrFile: URL
            private(set) var port = 0

            private init(config: String) throws {
                stderrFile = try UplinkProcess.temporaryFile("agent-stderr")
                process.executableURL = UplinkProcess.executable
                process.arguments = ["run", config]
                process.standardInput = input
                process.standardOutput = FileHandle.nullDevice
                process.standardError = try FileHandle(forWritingTo: stderrFile)
                try process.run()
            }

            /// Starts the agent and waits until its API listens.
            static func start(config: String) async throws -> Agent {
                let agent = try Agent(config: config)
                let deadline = Date().addingTimeInterval(30)
                while Date() < deadline {
                    let log = agent.log
                    if let range = log.range(of: "api.port=") {
                        agent.port = Int(log[range.upperBound...].prefix(while: \.isNumber)) ?? 0
                        if agent.port > 0 { return agent }
                    }
                    try await Task.sleep(for: .milliseconds(50))
                }
                agent.stop()
                throw UplinkProcess.TimeoutError()
            }

            var log: String { (try? String(contentsOf: stderrFile, encoding: .utf8)) ?? "" }
            var address: String { "127.0.0.1:\(port)" }

            func write(_ lines: [String]) {
                input.fileHandleForWriting.write(Data((lines.joined(separator: "\n") + "\n").utf8))
            }

            /// GET over plain HTTP with curl: the status and the body.
            func get(_ path: String) async throws -> (status: Int, body: String) {
                let body = try UplinkProcess.temporaryFile("body")
                let curl = Process()
                curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
                curl.arguments = ["-s", "-o", body.path, "-w", "%{http_code}", "--max-time", "10", "http://\(address)\(path)"]
                let output = Pipe()
                curl.standardOutput = output
                try curl.run()
                try await UplinkProcess.waitAsync(for: curl, timeout: 20)
                let status = Int(String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)) ?? 0
                return (status, (try? String(contentsOf: body, encoding: .utf8)) ?? "")
            }

            /// Ends stdin: the pipeline drains and exits.
            func finish() async throws -> Int32 {
                try input.fileHandleForWriting.close()
                try await UplinkProcess.waitAsync(for: process, timeout: 60)
                return process.terminationStatus
            }

            func stop() {
                if process.isRunning {
                    process.terminate()
                    try? UplinkProcess.wait(for: process, timeout: 20)
                }
            }
        }

        /// The value of the series `name` whose labels contain every fragment of `labels`.
        static func metric(_ text: String, _ name: String, _ labels: [String] = []) -> Double? {
            for line in text.split(separator: "\n") where line.hasPrefix(name + "{") || line.hasPrefix(name + " ") {
                guard labels.allSatisfy({ line.contains($0) }), let value = line.split(separator: " ").last else { continue }
                return Double(value)
            }
            return nil
        }

        /// Polls `condition` without blocking a thread of the shared pool (other suites' tests run on it).
        static func waitUntil(_ seconds: TimeInterval, _ condition: () async throws -> Bool) async throws -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if try await condition() { return true }
                try await Task.sleep(for: .milliseconds(100))
            }
            return try await condition()
        }

        static func localConfig(_ directory: URL, extra: String = "") throws -> String {
            try UplinkProcess.writeConfig(
                """
                data_dir: \(directory.appendingPathComponent("state").path)
                api: { address: "127.0.0.1:0", unhealthy_after: 1s }
                summary_interval: 1s
                sources:
                  console: { type: stdin }
                transforms:
                  wrap: { type: json, inputs: [console] }
                sinks:
                \(extra.isEmpty ? "  out: { type: file, inputs: [wrap], path: \(directory.appendingPathComponent("out.jsonl").path) }" : extra)
                """, name: "ops.yaml")
        }

        @Test func metricsCountWhatWasSentAndHealthFollowsTheCloud() async throws {
            let directory = UplinkProcess.temporaryDirectory()
            let emulator = try DeliveryFaultTests.EmulatorProcess(directory: directory)
            defer { emulator.stop() }
            let config = try Self.localConfig(
                directory,
                extra: """
                      cloud:
                        type: iotcore_http
                        inputs: [wrap]
                        \(emulator.sinkOptions(indent: 4))
                        retry: { initial_backoff: 50ms, max_backoff: 300ms }
                    """)
            let agent = try await Agent.start(config: config)
            defer { agent.stop() }

            agent.write((1...200).map { "reading \($0)" })
            var text = ""
            let delivered = try await Self.waitUntil(60) {
                text = try await agent.get("/metrics").body
                return Self.metric(text, "uplink_component_sent_events_total", [#"component_id="cloud""#]) == 200
            }
            #expect(delivered, "cloud sent: \(Self.metric(text, "uplink_component_sent_events_total", [#"component_id="cloud""#]) ?? -1)")
            let console = #"component_id="console",component_type="stdin",component_kind="source""#
            let wrap = #"component_id="wrap",component_type="json",component_kind="transform""#
            let cloud = #"component_id="cloud",component_type="iotcore_http",component_kind="sink""#
            #expect(Self.metric(text, "uplink_component_sent_events_total", [console]) == 200)
            #expect(Self.metric(text, "uplink_component_received_events_total", [wrap]) == 200)
            #expect(Self.metric(text, "uplink_component_sent_events_total", [wrap]) == 200)
            #expect(Self.metric(text, "uplink_component_received_events_total", [cloud]) == 200)
            #expect(Self.metric(text, "uplink_component_dropped_events_total", [cloud, #"reason="dead_letter""#]) == 0)
            #expect(Self.metric(text, "uplink_component_errors_total", [cloud]) == 0)
            // 200 publishes and the /auth, each answered RetCode 0.
            #expect((Self.metric(text, "uplink_iotcore_requests_total", [cloud, #"retcode="0""#]) ?? 0) >= 201)
            #expect((Self.metric(text, "uplink_iotcore_request_duration_seconds_count", [cloud]) ?? 0) >= 201)
            #expect(Self.metric(text, "uplink_iotcore_auth_renewals_total", [cloud]) == 1)
            #expect(Self.metric(text, "uplink_buffer_events", [cloud]) == 0)
            #expect(text.contains("# TYPE uplink_iotcore_request_duration_seconds histogram"))
            #expect(!text.contains("s3cr3tKey0000000"), "the secret never appears in a metric")
            #expect(!text.contains("eyJ"), "the token never appears in a metric")
            #expect(try await agent.get("/health").status == 200)
            #expect(try await agent.get("/ready").status == 200)

            // The cloud refuses every publish (RetCode 130, "try again"): after unhealthy_after (1 s) of failing,
            // /health is 503 and says why. (Refused connections would not do: the agent keeps its connections.)
            try emulator.faults(#"{"ratio_130":1}"#)
            agent.write(["while down 1", "while down 2"])
            var health = (status: 0, body: "")
            #expect(try await Self.waitUntil(20) {
                health = try await agent.get("/health")
                return health.status == 503
            })
            #expect(health.body.contains(#""status":"unhealthy""#))
            #expect(health.body.contains(#""component_id":"cloud""#))
            #expect(health.body.contains("IoT-Core requests failing: RetCode 130"))
            // And healthy again once it accepts, with everything delivered.
            try emulator.faults(#"{"ratio_130":0}"#)
            #expect(try await Self.waitUntil(30) { try await agent.get("/health").status == 200 })
            #expect(try await Self.waitUntil(30) {
                Self.metric(try await agent.get("/metrics").body, "uplink_component_sent_events_total", [cloud]) == 202
            })
            let after = try await agent.get("/metrics").body
            #expect((Self.metric(after, "uplink_iotcore_requests_total", [cloud, #"retcode="130""#]) ?? 0) >= 1)
            #expect((Self.metric(after, "uplink_iotcore_retries_total", [cloud]) ?? 0) >= 1)

            #expect(try await agent.finish() == 0)
            // One summary line per component per interval, never one per event.
            let log = agent.log
            #expect(log.contains("[cloud] component summary"))
            #expect(log.contains("[console] component summary"))
            #expect(log.components(separatedBy: "component summary").count - 1 < 3 * 60)
            #expect(!log.contains("s3cr3tKey0000000"))
        }

        @Test func metricsShowTheAdaptiveConcurrencyLimitAndTheRequestsInFlight() async throws {
            let directory = UplinkProcess.temporaryDirectory()
            let emulator = try DeliveryFaultTests.EmulatorProcess(directory: directory)
            defer { emulator.stop() }
            // 500 ms per answer: the limit grows from 2 to its ceiling of 6 within a few round trips, and the
            // requests stay on the wire long enough to be seen there.
            try emulator.faults(#"{"latency_ms":500}"#)
            let config = try Self.localConfig(
                directory,
                extra: """
                      cloud:
                        type: iotcore_http
                        inputs: [wrap]
                        \(emulator.sinkOptions(indent: 4))
                        concurrency: 2
                        max_concurrency: 6
                    """)
            let agent = try await Agent.start(config: config)
            defer { agent.stop() }
            let cloud = #"component_id="cloud",component_type="iotcore_http",component_kind="sink""#

            var text = try await agent.get("/metrics").body
            #expect(text.contains("# TYPE uplink_iotcore_concurrency_limit gauge"))
            #expect(text.contains("# TYPE uplink_iotcore_requests_in_flight gauge"))
            #expect(Self.metric(text, "uplink_iotcore_concurrency_limit", [cloud]) == 2)
            #expect(Self.metric(text, "uplink_iotcore_max_concurrency", [cloud]) == 6)
            #expect(Self.metric(text, "uplink_iotcore_requests_in_flight", [cloud]) == 0)

            agent.write((1...200).map { "reading \($0)" })
            let full = try await Self.waitUntil(60) {
                text = try await agent.get("/metrics").body
                return Self.metric(text, "uplink_iotcore_concurrency_limit", [cloud]) == 6
                    && Self.metric(text, "uplink_iotcore_requests_in_flight", [cloud]) == 6
            }
            #expect(full, "limit \(Self.metric(text, "uplink_iotcore_concurrency_limit", [cloud]) ?? -1), in flight \(Self.metric(text, "uplink_iotcore_requests_in_flight", [cloud]) ?? -1)")
            // `uplink top` shows the same gauges as `in flight/limit` (a request may just be ending, so not
            // necessarily 6/6 at that instant).
            let top = try await UplinkProcess.runAsync(["top", "--api", agent.address, "--count", "1"])
            #expect(top.status == 0)
            let table = top.stdoutText.split(separator: "\n")
            #expect(table.contains { $0.hasPrefix("ID ") && $0.contains("IN FLIGHT") })
            let row = try #require(table.first { $0.hasPrefix("cloud ") }, "\(top.stdoutText)")
            let cell = try #require(row.split(separator: " ").first { $0.contains("/") }, "\(row)")
            let numbers = cell.split(separator: "/").compactMap { Int($0) }
            #expect(numbers.count == 2 && (2...6).contains(numbers[1]) && (0...numbers[1]).contains(numbers[0]), "\(row)")

            try emulator.faults(#"{"latency_ms":0}"#)
            #expect(try await Self.waitUntil(60) {
                text = try await agent.get("/metrics").body
                return Self.metric(text, "uplink_component_sent_events_total", [cloud]) == 200
            })
            #expect(try await Self.waitUntil(10) {
                Self.metric(try await agent.get("/metrics").body, "uplink_iotcore_requests_in_flight", [cloud]) == 0
            })
            #expect(try await agent.finish() == 0)
        }

        @Test func tapPrintsASampleOfTheEventsLeavingAComponent() async throws {
            let directory = UplinkProcess.temporaryDirectory()
            let agent = try await Agent.start(config: try Self.localConfig(directory))
            defer { agent.stop() }

            let tap = Process()
            tap.executableURL = UplinkProcess.executable
            tap.arguments = ["tap", "wrap", "--limit", "3", "--api", agent.address]
            let output = Pipe()
            tap.standardOutput = output
            tap.standardError = FileHandle.nullDevice
            try tap.run()
            // Lines keep coming until the tap has its three.
            var sent = 0
            while tap.isRunning && sent < 2_000 {
                sent += 1
                agent.write(["line \(sent)"])
                try await Task.sleep(for: .milliseconds(20))
            }
            try await UplinkProcess.waitAsync(for: tap, timeout: 10)
            #expect(tap.terminationStatus == 0)
            let lines = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                .split(separator: "\n")
            #expect(lines.count == 3)
            for line in lines {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                #expect(object["component_id"] as? String == "wrap")
                #expect(object["kind"] as? String == "record")
                let event = try #require(object["event"] as? [String: Any])
                #expect((event["message"] as? String)?.hasPrefix("line ") == true)
            }

            let unknown = try await UplinkProcess.runAsync(["tap", "nope", "--api", agent.address])
            #expect(unknown.status == 1)
            #expect(unknown.stderr.contains("no component 'nope' (components: console, wrap, out)"))
            let sink = try await UplinkProcess.runAsync(["tap", "out", "--api", agent.address])
            #expect(sink.status == 1)
            #expect(sink.stderr.contains("'out' is a sink"))

            // The pipeline itself lost nothing to the tap.
            #expect(try await agent.finish() == 0)
            let written = try String(contentsOf: directory.appendingPathComponent("out.jsonl"), encoding: .utf8)
            #expect(written.split(separator: "\n").count == sent)
        }

        /// Starts `uplink top --api api` on a new 140x30 pseudo-terminal; returns it with the terminal's master
        /// side, non-blocking, for the test to read what top draws and to type into.
        static func startTop(api: String) throws -> (process: Process, master: Int32) {
            var master: Int32 = 0
            var slave: Int32 = 0
            var size = winsize(ws_row: 30, ws_col: 140, ws_xpixel: 0, ws_ypixel: 0)
            guard openpty(&master, &slave, nil, nil, &size) == 0 else { throw POSIXError(.EIO) }
            let top = Process()
            top.executableURL = UplinkProcess.executable
            top.arguments = ["top", "--api", api]
            let terminal = FileHandle(fileDescriptor: slave, closeOnDealloc: true)
            top.standardInput = terminal
            top.standardOutput = terminal
            top.standardError = terminal
            try top.run()
            try terminal.close()
            _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
            return (top, master)
        }

        @Test func topDrawsTheComponentsAndTheirRatesUnderAPseudoTerminal() async throws {
            let directory = UplinkProcess.temporaryDirectory()
            let agent = try await Agent.start(config: try Self.localConfig(directory))
            defer { agent.stop() }

            let (top, firstMaster) = try Self.startTop(api: agent.address)
            var master = firstMaster

            /// The `wrap` transform's rows as top drew them.
            func rateRows(_ text: String) -> [String] {
                text.components(separatedBy: "\r\n").filter { $0.contains("wrap") && $0.contains("transform") }
            }
            func showsARate(_ row: String) -> Bool {
                let cells = row.split(separator: " ")
                return cells.count > 5 && cells[4] != "0"
            }
            // Read what top draws while events flow (50 every 50 ms, about 1000 a second), until a refresh shows
            // the transform's rate.
            var screen = Data()
            let deadline = Date().addingTimeInterval(30)
            var sent = 0
            var buffer = [UInt8](repeating: 0, count: 65536)
            while Date() < deadline, !rateRows(String(decoding: screen, as: UTF8.self)).contains(where: showsARate) {
                sent += 1
                agent.write((0..<50).map { "event \(sent)-\($0)" })
                let count = read(master, &buffer, buffer.count)
                if count > 0 { screen.append(contentsOf: buffer[0..<count]) }
                try await Task.sleep(for: .milliseconds(50))
            }
            let text = String(decoding: screen, as: UTF8.self)
            #expect(text.contains("\u{1B}[?1049h"), "top switches to the alternate screen")
            #expect(text.contains("uplink top — \(agent.address)"))
            for header in ["ID", "KIND", "IN/s", "OUT/s", "DROPPED", "ERRORS", "BUFFER"] { #expect(text.contains(header)) }
            for id in ["console", "wrap", "out"] { #expect(text.contains(id)) }
            // About 1000 events per second flow: some refresh shows a rate that is not 0.
            #expect(rateRows(text).contains(where: showsARate), "rows: \(rateRows(text).suffix(3))")

            // q quits and restores the terminal.
            _ = "q".withCString { write(master, $0, 1) }
            try await UplinkProcess.waitAsync(for: top, timeout: 10)
            #expect(top.terminationStatus == 0)
            var rest = [UInt8](repeating: 0, count: 65536)
            let count = read(master, &rest, rest.count)
            let tail = text + (count > 0 ? String(decoding: rest[0..<count], as: UTF8.self) : "")
            #expect(tail.contains("\u{1B}[?1049l"), "top leaves the alternate screen")
            #expect(tail.contains("\u{1B}[?25h"), "top shows the cursor again")
            close(master)

            // Ctrl-C (SIGINT) quits cleanly too, restoring the terminal.
            let second: Process
            (second, master) = try Self.startTop(api: agent.address)
            var drawn = Data()
            #expect(try await Self.waitUntil(10) {
                let count = read(master, &buffer, buffer.count)
                if count > 0 { drawn.append(contentsOf: buffer[0..<count]) }
                return String(decoding: drawn, as: UTF8.self).contains("console")
            })
            kill(second.processIdentifier, SIGINT)
            try await UplinkProcess.waitAsync(for: second, timeout: 10)
            #expect(second.terminationStatus == 0)
            _ = try await Self.waitUntil(2) {
                let count = read(master, &buffer, buffer.count)
                if count > 0 { drawn.append(contentsOf: buffer[0..<count]) }
                return String(decoding: drawn, as: UTF8.self).contains("\u{1B}[?1049l")
            }
            #expect(String(decoding: drawn, as: UTF8.self).contains("\u{1B}[?1049l"))
            close(master)

            // Without a terminal: plain tables.
            let plain = try await UplinkProcess.runAsync(["top", "--api", agent.address, "--count", "2", "--interval", "0.2"])
            #expect(plain.status == 0, "\(plain.stderr)")
            #expect(!plain.stdoutText.contains("\u{1B}["))
            #expect(plain.stdoutText.components(separatedBy: "uplink top —").count - 1 == 2)
            #expect(plain.stdoutText.contains("wrap"))
            #expect(try await agent.finish() == 0)

            let unreachable = try await UplinkProcess.runAsync(["top", "--api", "127.0.0.1:1", "--count", "1"])
            #expect(unreachable.status == 1)
            #expect(unreachable.stderr.contains("cannot reach the Uplink API at 127.0.0.1:1"))
        }

        @Test func everyExamplePipelineWithTestsPassesThem() async throws {
            let directory = ExamplePipelinesTests.repository.appendingPathComponent("pipelines")
            let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".yaml") }.sorted()
            var tested = 0
            for file in files {
                let path = directory.appendingPathComponent(file).path
                guard try String(contentsOfFile: path, encoding: .utf8).contains("\ntests:") else { continue }
                tested += 1
                let result = try await UplinkProcess.runAsync(["test", path])
                #expect(result.status == 0, "\(file):\n\(result.stdoutText)\(result.stderr)")
                #expect(result.stdoutText.contains(" passed, 0 failed"))
            }
            #expect(tested >= 4)
        }

        @Test func uplinkTestReportsFailuresWithTheComponentInputExpectedAndActual() async throws {
            let config = try UplinkProcess.writeConfig(
                """
                sources:
                  in: { type: stdin }
                transforms:
                  readings: { type: json, inputs: [in], mode: csv, columns: [t:int, temp:float] }
                sinks:
                  out: { type: stdout, inputs: [readings] }
                tests:
                  - name: passes
                    input: { lines: ["1,26.5"] }
                    component: readings
                    expect: { count: 1, events: [{json: {temp: 26.5}}] }
                  - name: fails
                    input: { lines: ["1,26.5"] }
                    component: readings
                    expect: { events: [{json: {temp: 30}}] }
                """)
            let result = try await UplinkProcess.runAsync(["test", config])
            #expect(result.status == 1)
            let output = result.stdoutText
            #expect(output.contains("ok   \(config):8: passes"))
            #expect(output.contains("FAIL \(config):12: fails"))
            #expect(output.contains("component: readings"))
            #expect(output.contains(#"input:     lines ["1,26.5"]"#))
            #expect(output.contains(#"expected event 1: json: {"temp":30}"#))
            #expect(output.contains(#"actual:   {"t":1,"temp":26.5}"#))
            #expect(output.contains("$.temp: expected 30, got 26.5"))
            #expect(output.contains("1 passed, 1 failed"))

            let only = try await UplinkProcess.runAsync(["test", config, "--filter", "passes"])
            #expect(only.status == 0)

            let invalid = try UplinkProcess.writeConfig(
                """
                sources:
                  in: { type: stdin }
                sinks:
                  out: { type: stdout, inputs: [in] }
                tests:
                  - name: a sink cannot be tested
                    input: { lines: ["x"] }
                    component: out
                    expect: { count: 1 }
                """)
            let refused = try await UplinkProcess.runAsync(["test", invalid])
            #expect(refused.status == 78)
            #expect(refused.stderr.contains("'out' is a sink; tests run transforms only"))
        }
    }
}

extension EndToEnd {
    /// A large backlog read from the beginning shows a progress line on a terminal, and nothing in a log file.
    @Suite(.serialized, .timeLimit(.minutes(2))) struct BacklogProgressTests {
        static func config(_ directory: URL) throws -> String {
            let log = directory.appendingPathComponent("big.log")
            let line = String(repeating: "x", count: 99) + "\n"
            try String(repeating: line, count: 80_000).write(to: log, atomically: true, encoding: .utf8)
            return try UplinkProcess.writeConfig(
                """
                data_dir: \(directory.appendingPathComponent("state").path)
                sources:
                  app: { type: file, include: ["\(log.path)"], read_from: beginning, exit_on_eof: true }
                sinks:
                  out: { type: file, inputs: [app], path: \(directory.appendingPathComponent("out.log").path) }
                """)
        }

        @Test func aTerminalSeesTheProgressOfTheBacklog() async throws {
            let directory = UplinkProcess.temporaryDirectory()
            let config = try Self.config(directory)
            var master: Int32 = 0
            var slave: Int32 = 0
            guard openpty(&master, &slave, nil, nil, nil) == 0 else { throw POSIXError(.EIO) }
            defer { close(master) }
            let agent = Process()
            agent.executableURL = UplinkProcess.executable
            agent.arguments = ["run", config]
            let terminal = FileHandle(fileDescriptor: slave, closeOnDealloc: true)
            agent.standardInput = FileHandle.nullDevice
            agent.standardOutput = FileHandle.nullDevice
            agent.standardError = terminal
            try agent.run()
            try terminal.close()
            var output = Data()
            var buffer = [UInt8](repeating: 0, count: 65536)
            _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
            // Read the terminal until the agent has exited and nothing is left.
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline {
                let count = read(master, &buffer, buffer.count)
                if count > 0 {
                    output.append(contentsOf: buffer[0..<count])
                    continue
                }
                if !agent.isRunning { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            try await UplinkProcess.waitAsync(for: agent, timeout: 60)
            #expect(agent.terminationStatus == 0)
            let text = String(decoding: output, as: UTF8.self)
            #expect(text.contains("[app] reading the backlog of 1 file: "), "\(text.suffix(2000))")
            #expect(text.contains("/ 7.6MiB (100%)"))
        }

        @Test func aLogFileDoesNot() async throws {
            let directory = UplinkProcess.temporaryDirectory()
            let result = try await UplinkProcess.runAsync(["run", try Self.config(directory)])
            #expect(result.status == 0)
            #expect(!result.stderr.contains("reading the backlog"))
            #expect(!result.stderr.contains("\r"))
        }
    }
}

extension UplinkProcess {
    /// Waits for `process` without blocking a thread of the shared pool.
    static func waitAsync(for process: Process, timeout: TimeInterval) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline {
                kill(process.processIdentifier, SIGKILL)
                throw TimeoutError()
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// ``run(_:input:environment:timeout:)`` with an empty stdin, waiting without blocking a pool thread.
    static func runAsync(_ arguments: [String], timeout: TimeInterval = 60) async throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let stdoutFile = try temporaryFile("stdout")
        let stderrFile = try temporaryFile("stderr")
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: stdoutFile)
        process.standardError = try FileHandle(forWritingTo: stderrFile)
        try process.run()
        try await waitAsync(for: process, timeout: timeout)
        return Result(
            status: process.terminationStatus, stdout: try Data(contentsOf: stdoutFile),
            stderr: String(decoding: try Data(contentsOf: stderrFile), as: UTF8.self))
    }
}
