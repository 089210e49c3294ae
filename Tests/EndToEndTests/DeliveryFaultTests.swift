import Foundation
import Testing

extension EndToEnd {
    /// Fault tests with real processes: the agent is killed with SIGKILL mid-stream and restarted; the cloud
    /// (a separate `uplink emulator` process) refuses connections and answers 130/100077 at random.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct DeliveryFaultTests {
        /// A separate emulator process, so it outlives the agent it serves.
        final class EmulatorProcess {
            let process = Process()
            let port: Int
            let caFile: String
            let acceptedLog: String

            init(directory: URL, extra: [String] = []) throws {
                caFile = directory.appendingPathComponent("ca.pem").path
                acceptedLog = directory.appendingPathComponent("accepted.jsonl").path
                let devices = ExamplePipelinesTests.repository.appendingPathComponent("examples/emulator-devices.yaml").path
                process.executableURL = UplinkProcess.executable
                process.arguments = ["emulator", "--devices", devices, "--port", "0", "--ca-out", caFile, "--accepted-log", acceptedLog, "--log-level", "error"] + extra
                let output = Pipe()
                process.standardOutput = output
                process.standardError = FileHandle.nullDevice
                try process.run()
                var line = Data()
                let deadline = Date().addingTimeInterval(30)
                while !line.contains(0x0A), Date() < deadline {
                    let byte = output.fileHandleForReading.readData(ofLength: 1)
                    if byte.isEmpty { break }
                    line.append(byte)
                }
                let text = String(decoding: line, as: UTF8.self)
                guard let address = text.range(of: "127.0.0.1:"), let port = Int(text[address.upperBound...].prefix(while: \.isNumber)) else {
                    throw UplinkProcess.TimeoutError()
                }
                self.port = port
            }

            func stop() {
                process.terminate()
                try? UplinkProcess.wait(for: process, timeout: 10)
            }

            /// The `iotcore_http` options that send to this emulator as the test device: YAML lines for a sink
            /// whose options are indented by `indent` spaces (the first line takes the interpolation's place).
            func sinkOptions(indent: Int) -> String {
                [
                    "endpoint: https://127.0.0.1:\(port)", "ca_file: \(caFile)", "product_sn: abcdefgh12345678",
                    "device_sn: device001", "device_secret: s3cr3tKey0000000",
                ].joined(separator: "\n" + String(repeating: " ", count: indent))
            }

            func faults(_ json: String) throws {
                let curl = Process()
                curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
                curl.arguments = ["-s", "--cacert", caFile, "--data-binary", json, "https://127.0.0.1:\(port)/_emulator/faults"]
                curl.standardOutput = FileHandle.nullDevice
                try curl.run()
                curl.waitUntilExit()
            }

            /// How many requests the emulator accepted so far (cheap: counts the accepted log's lines).
            func acceptedRequests() -> Int {
                guard let bytes = FileManager.default.contents(atPath: acceptedLog) else { return 0 }
                return bytes.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
            }

            /// Every `message` of every accepted NDJSON body, in arrival order.
            func receivedLines() -> [String] {
                guard let text = try? String(contentsOfFile: acceptedLog, encoding: .utf8) else { return [] }
                var lines: [String] = []
                for entry in text.split(separator: "\n") {
                    guard let object = try? JSONSerialization.jsonObject(with: Data(entry.utf8)) as? [String: Any],
                        let body = Data(base64Encoded: object["body_base64"] as? String ?? "")
                    else { continue }
                    for record in body.split(separator: 0x0A) {
                        if let fields = try? JSONSerialization.jsonObject(with: Data(record)) as? [String: Any], let message = fields["message"] as? String {
                            lines.append(message)
                        }
                    }
                }
                return lines
            }
        }

        static func config(
            directory: URL, log: String, emulator: EmulatorProcess, buffer: String = "", shutdownTimeout: String = "20s",
            global: String = "", tailOptions: String = ", checkpoint_interval: 200ms", sinkOptions: String = ""
        ) throws -> String {
            try UplinkProcess.writeConfig(
                """
                data_dir: \(directory.appendingPathComponent("state").path)
                shutdown_timeout: \(shutdownTimeout)
                \(global)
                sources:
                  app: { type: file, include: ["\(log)"], read_from: beginning\(tailOptions) }
                transforms:
                  wrap: { type: json, inputs: [app] }
                  batches: { type: batch, inputs: [wrap], encoding: ndjson, max_events: 500, timeout: 200ms }
                sinks:
                  cloud:
                    type: iotcore_http
                    inputs: [batches]
                    \(emulator.sinkOptions(indent: 4))
                    retry: { initial_backoff: 20ms, max_backoff: 500ms }
                    \(sinkOptions)
                \(buffer)
                """, name: "fault.yaml")
        }

        static func startAgent(_ config: String, log: URL? = nil, arguments: [String] = []) throws -> Process {
            let process = Process()
            process.executableURL = UplinkProcess.executable
            process.arguments = ["run", config, "--log-level", log == nil ? "warning" : "info"] + arguments
            if let log {
                FileManager.default.createFile(atPath: log.path, contents: nil)
                process.standardError = try FileHandle(forWritingTo: log)
            } else {
                process.standardError = FileHandle.nullDevice
            }
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            return process
        }

        static func waitFor(_ deadline: TimeInterval, _ condition: () -> Bool) {
            let end = Date().addingTimeInterval(deadline)
            while Date() < end && !condition() { usleep(100_000) }
        }

        /// The text of line `number` as ``writeLines(_:_:)`` writes it.
        static func line(_ number: Int) -> String { "line \(number) " + String(repeating: "x", count: 80) }

        static func writeLines(_ path: String, _ range: Range<Int>) throws {
            let text = range.map(line).joined(separator: "\n") + "\n"
            let handle = FileHandle(forWritingAtPath: path) ?? {
                FileManager.default.createFile(atPath: path, contents: nil)
                return FileHandle(forWritingAtPath: path)!
            }()
            handle.seekToEndOfFile()
            handle.write(Data(text.utf8))
            handle.closeFile()
        }

        /// The sink's concurrency (pinned at 4 by the test: adaptive concurrency would otherwise grow it up to
        /// `max_concurrency`) and the batch's `max_events` in ``config(directory:log:emulator:buffer:shutdownTimeout:global:tailOptions:sinkOptions:)``:
        /// at most this many lines are on the wire at once, so at most this many can be delivered and not yet
        /// acknowledged when the agent is killed.
        static let inFlightBound = 4 * 500

        @Test func killNineMidTailThenRestartDuplicatesNoMoreThanWasInFlight() throws {
            let directory = UplinkProcess.temporaryDirectory()
            // RetCode 130 on ~10% of publishes: retried batches complete out of order.
            let emulator = try EmulatorProcess(directory: directory, extra: ["--ratio-130", "0.1"])
            defer { emulator.stop() }
            let log = directory.appendingPathComponent("app.log").path
            let total = 100_000
            try Self.writeLines(log, 0..<5_000)
            // The default checkpoint_interval (1s): it is the sync interval, not how far checkpoints lag.
            let config = try Self.config(
                directory: directory, log: log, emulator: emulator, tailOptions: "", sinkOptions: "max_concurrency: 4")
            // The application keeps logging, 2,000 lines every 100 ms, while the agent is killed and restarted.
            let writer = Thread {
                for start in stride(from: 5_000, to: total, by: 2_000) {
                    usleep(100_000)
                    try? Self.writeLines(log, start..<min(start + 2_000, total))
                }
            }

            let first = try Self.startAgent(config)
            writer.start()
            // Mid-stream: once 30 requests (of up to 500 lines) were accepted.
            Self.waitFor(60) { emulator.acceptedRequests() >= 30 }
            kill(first.processIdentifier, SIGKILL)
            first.waitUntilExit()
            let beforeRestart = emulator.receivedLines().count
            // Where the restart will resume, in whole lines, and the lines after it it will skip (acknowledged out
            // of order, recorded as delivered ranges).
            let (offset, delivered) = TailCheckpoint.first(stateDirectory: directory.appendingPathComponent("state"))
            let content = FileManager.default.contents(atPath: log) ?? Data()
            func lines(_ range: Range<Int>) -> Int {
                content[min(range.lowerBound, content.count)..<min(range.upperBound, content.count)].reduce(0) {
                    $0 + ($1 == 0x0A ? 1 : 0)
                }
            }
            let checkpointedLines = lines(0..<offset)
            let skippedLines = delivered.reduce(0) { $0 + lines($1) }
            #expect(checkpointedLines > 0, "a checkpoint must have been written before the kill")
            #expect(
                checkpointedLines + skippedLines <= beforeRestart,
                "the checkpoint must never pass what the cloud accepted")
            #expect(beforeRestart > 0 && beforeRestart < total, "the kill should land mid-stream (received \(beforeRestart))")

            let second = try Self.startAgent(config)
            Self.waitFor(90) { Set(emulator.receivedLines()).count >= total }
            kill(second.processIdentifier, SIGTERM)
            try UplinkProcess.wait(for: second, timeout: 30)
            #expect(second.terminationStatus == 0)

            let received = emulator.receivedLines()
            let distinct = Set(received)
            let lost = (0..<total).filter { !distinct.contains(Self.line($0)) }.count
            let duplicates = received.count - distinct.count
            print(
                "kill -9 fault test (130 on 10%): sent \(total), received \(received.count) (\(beforeRestart) before the kill, \(checkpointedLines) checkpointed + \(skippedLines) in \(delivered.count) delivered ranges), duplicates \(duplicates), bound \(Self.inFlightBound) (in flight: concurrency 4 x 500 records per batch), lost \(lost)"
            )
            #expect(lost == 0)
            // At least once, and only what was on the wire at the kill is sent again: the checkpoint follows
            // every acknowledgement at once, records those that came back out of order as delivered ranges,
            // which the restart skips (a batch waiting for its retry does not hold back the ones after it), and
            // a source chunk spread over two batches is acknowledged per batch (its acknowledgement is cut where
            // the batch boundary falls), so a delivered batch is never sent again with the next one's lines.
            #expect(duplicates <= Self.inFlightBound)
        }

        @Test func refusedConnectionsAndRandomRetCodesLoseNothing() throws {
            let directory = UplinkProcess.temporaryDirectory()
            let emulator = try EmulatorProcess(directory: directory, extra: ["--ratio-130", "0.2", "--ratio-100077", "0.1"])
            defer { emulator.stop() }
            let log = directory.appendingPathComponent("app.log").path
            try Self.writeLines(log, 0..<5_000)
            let config = try Self.config(directory: directory, log: log, emulator: emulator)
            try emulator.faults(#"{"refuse_connections_seconds":2}"#)
            let agent = try Self.startAgent(config)
            // More lines while the cloud is refusing connections.
            try Self.writeLines(log, 5_000..<10_000)
            Self.waitFor(90) { Set(emulator.receivedLines()).count >= 10_000 }
            kill(agent.processIdentifier, SIGTERM)
            try UplinkProcess.wait(for: agent, timeout: 30)
            let received = emulator.receivedLines()
            let distinct = Set(received)
            print("refuse + 130/100077 fault test: sent 10000, received \(received.count), distinct \(distinct.count), duplicates \(received.count - distinct.count), lost \(10_000 - distinct.count)")
            #expect(distinct.count == 10_000)
            #expect(agent.terminationStatus == 0)
        }
    }
}
