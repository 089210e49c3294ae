import Foundation
import Testing

extension EndToEnd {
    /// Stopping `uplink run` with real signals: a disk-buffered sink does not wait for an unreachable cloud, a
    /// drain says what it waits for, a second signal stops at once, and a failed API bind reads no input.
    @Suite(.serialized, .timeLimit(.minutes(3))) struct StopEndToEndTests {
        typealias Faults = DeliveryFaultTests

        static func text(_ url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }

        /// Waits (bounded) until the agent's log contains `fragment`.
        static func waitForLog(_ url: URL, _ fragment: String, seconds: TimeInterval = 30) -> Bool {
            Faults.waitFor(seconds) { text(url).contains(fragment) }
            return text(url).contains(fragment)
        }

        /// Seconds until `process` exits (bounded by `timeout`).
        static func secondsToExit(_ process: Process, timeout: TimeInterval = 60) throws -> Double {
            let start = Date()
            try UplinkProcess.wait(for: process, timeout: timeout)
            return Date().timeIntervalSince(start)
        }

        @Test func aDiskBufferedSinkStopsAtOnceWithAnUnreachableCloudAndKeepsItsRecords() throws {
            let directory = UplinkProcess.temporaryDirectory()
            for name in ["down", "up"] {
                try FileManager.default.createDirectory(at: directory.appendingPathComponent(name), withIntermediateDirectories: true)
            }
            let down = try Faults.EmulatorProcess(directory: directory.appendingPathComponent("down"))
            defer { down.stop() }
            try down.faults(#"{"refuse_connections_seconds":600}"#)
            let log = directory.appendingPathComponent("app.log").path
            let total = 3_000
            try Faults.writeLines(log, 0..<total)
            let buffer = "    buffer: { type: disk, max_size: 8MiB }"
            let config = try Faults.config(
                directory: directory, log: log, emulator: down, buffer: buffer, shutdownTimeout: "30s")
            let agentLog = directory.appendingPathComponent("agent.log")
            let agent = try Faults.startAgent(config, log: agentLog)
            // Ready to stop: every line is in the disk buffer (the tail's checkpoint is at the end of the file).
            Faults.waitFor(30) { TailCheckpoint.offset(stateDirectory: directory.appendingPathComponent("state")) == DiskBufferFaultTests.fileSize(log) }
            #expect(TailCheckpoint.offset(stateDirectory: directory.appendingPathComponent("state")) == DiskBufferFaultTests.fileSize(log))
            kill(agent.processIdentifier, SIGTERM)
            let seconds = try Self.secondsToExit(agent)
            print("disk-buffered sink, cloud unreachable: SIGTERM to exit \(String(format: "%.2f", seconds)) s (shutdown_timeout 30s), status \(agent.terminationStatus)")
            #expect(agent.terminationStatus == 0, "\(Self.text(agentLog))")
            #expect(seconds < 5, "a disk-buffered sink does not wait for the cloud")
            #expect(Self.text(agentLog).contains("the disk buffer keeps their records for the next start"))
            #expect(down.receivedLines().isEmpty)

            // The next start, with the cloud back: everything that was in the buffer arrives.
            let up = try Faults.EmulatorProcess(directory: directory.appendingPathComponent("up"))
            defer { up.stop() }
            let second = try Faults.startAgent(
                try Faults.config(directory: directory, log: log, emulator: up, buffer: buffer, shutdownTimeout: "30s"))
            Faults.waitFor(60) { Set(up.receivedLines()).count >= total }
            kill(second.processIdentifier, SIGTERM)
            try UplinkProcess.wait(for: second, timeout: 30)
            #expect(Set(up.receivedLines()).count == total)
            #expect(second.terminationStatus == 0)
        }

        /// A memory-buffered pipeline whose cloud refuses connections, stopped with SIGTERM once the sink holds
        /// lines: returns the agent and its log.
        static func drainingAgent(shutdownTimeout: String) throws -> (Process, URL, Faults.EmulatorProcess) {
            let directory = UplinkProcess.temporaryDirectory()
            let down = try Faults.EmulatorProcess(directory: directory)
            try down.faults(#"{"refuse_connections_seconds":600}"#)
            let log = directory.appendingPathComponent("app.log").path
            try Faults.writeLines(log, 0..<1_000)
            let config = try Faults.config(
                directory: directory, log: log, emulator: down, shutdownTimeout: shutdownTimeout,
                global: "summary_interval: 200ms")
            let agentLog = directory.appendingPathComponent("agent.log")
            let agent = try Faults.startAgent(config, log: agentLog)
            // Ready: the sink has taken lines it cannot deliver (its summary counts them).
            _ = Self.waitForLog(agentLog, "[cloud] component summary")
            Faults.waitFor(30) {
                Self.text(agentLog).split(separator: "\n").contains { $0.contains("[cloud] component summary") && !$0.contains("events.received=0") }
            }
            kill(agent.processIdentifier, SIGTERM)
            return (agent, agentLog, down)
        }

        @Test func aDrainWithoutADiskBufferSaysWhatItIsWaitingFor() throws {
            let (agent, agentLog, down) = try Self.drainingAgent(shutdownTimeout: "5s")
            defer { down.stop() }
            #expect(Self.waitForLog(agentLog, "still draining: waiting for a component", seconds: 10))
            let seconds = try Self.secondsToExit(agent)
            let waiting = Self.text(agentLog).split(separator: "\n").filter { $0.contains("still draining") }
            print("drain without a disk buffer, cloud unreachable: \(waiting.count) progress lines, e.g. \(waiting.first ?? "")")
            #expect(waiting.contains { $0.contains("[cloud]") && $0.contains("drain.in_flight_events=") })
            #expect(agent.terminationStatus == 1, "the drain did not finish: not a clean stop")
            #expect(seconds < 10)
        }

        @Test func aSecondSignalStopsAtOnce() throws {
            let (agent, agentLog, down) = try Self.drainingAgent(shutdownTimeout: "60s")
            defer { down.stop() }
            // Draining (the first signal was taken): a second one.
            #expect(Self.waitForLog(agentLog, "stopping sources", seconds: 10))
            kill(agent.processIdentifier, SIGTERM)
            let seconds = try Self.secondsToExit(agent)
            print("second SIGTERM during a 60 s drain: exit after \(String(format: "%.2f", seconds)) s, status \(agent.terminationStatus)")
            #expect(seconds < 5)
            #expect(agent.terminationStatus == 1)
            #expect(Self.text(agentLog).contains("second stop signal: stopping at once"))
            #expect(!Self.text(agentLog).contains("shutdown deadline exceeded"))
        }

        /// A listening socket on a free loopback port, held open so that the agent cannot bind it.
        static func occupiedPort() throws -> (descriptor: Int32, port: Int) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                    bind(fd, pointer, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, pointer, &length) == 0
                }
            }
            guard fd >= 0, bound else { throw UplinkProcess.TimeoutError() }
            return (fd, Int(UInt16(bigEndian: address.sin_port)))
        }

        @Test func aFailedAPIBindReadsNoInput() throws {
            let directory = UplinkProcess.temporaryDirectory()
            let emulator = try Faults.EmulatorProcess(directory: directory)
            defer { emulator.stop() }
            let (descriptor, port) = try Self.occupiedPort()
            defer { close(descriptor) }
            let log = directory.appendingPathComponent("app.log").path
            try Faults.writeLines(log, 0..<1_000)
            let config = try Faults.config(
                directory: directory, log: log, emulator: emulator, global: "api: { address: \"127.0.0.1:\(port)\" }")
            let agentLog = directory.appendingPathComponent("agent.log")
            let agent = try Faults.startAgent(config, log: agentLog)
            try UplinkProcess.wait(for: agent, timeout: 30)
            let text = Self.text(agentLog)
            #expect(agent.terminationStatus == 1)
            #expect(text.contains("api.address"), "\(text)")
            #expect(!text.contains("shutdown deadline exceeded"), "\(text)")
            #expect(!text.contains("pipeline started"), "\(text)")
            // Nothing was read: the tail never started (no checkpoint), nothing was sent.
            #expect(TailCheckpoint.offset(stateDirectory: directory.appendingPathComponent("state")) == 0)
            #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("state/app").path))
            #expect(emulator.receivedLines().isEmpty)
        }
    }
}
