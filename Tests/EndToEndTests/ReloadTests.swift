import Foundation
import Testing

extension EndToEnd {
    /// SIGHUP while data flows: a changed configuration is applied in place (the tail keeps running), a broken one
    /// is refused and the running pipeline kept, a change to a disk buffer replaces the whole pipeline after draining it;
    /// every line arrives exactly once.
    @Suite(.serialized, .timeLimit(.minutes(2))) struct ReloadTests {
        static func config(log: String, output: String, state: String, transform: Bool, disk: Bool = false) -> String {
            """
            data_dir: \(state)
            sources:
              app: { type: file, include: ["\(log)"], read_from: beginning, checkpoint_interval: 100ms }
            \(transform ? "transforms:\n  wrap: { type: json, inputs: [app], source_field: via }\n" : "")
            sinks:
              out: { type: file, inputs: [\(transform ? "wrap" : "app")], path: "\(output)", buffer: { type: \(disk ? "disk" : "memory") } }
            """
        }

        /// A file tail into a file sink, its configuration, and the agent's log.
        struct Fixture {
            let log: String
            let output: String
            let state: String
            let configPath: String
            let agentLogPath: URL

            init() throws {
                let directory = UplinkProcess.temporaryDirectory()
                log = directory.appendingPathComponent("app.log").path
                output = directory.appendingPathComponent("out.log").path
                state = directory.appendingPathComponent("state").path
                configPath = directory.appendingPathComponent("pipeline.yaml").path
                agentLogPath = directory.appendingPathComponent("agent.log")
                try writeConfig(transform: false)
            }

            func writeConfig(transform: Bool, disk: Bool = false) throws {
                try ReloadTests.config(log: log, output: output, state: state, transform: transform, disk: disk)
                    .write(toFile: configPath, atomically: true, encoding: .utf8)
            }

            func startAgent(_ arguments: [String] = []) throws -> Process {
                try DeliveryFaultTests.startAgent(configPath, log: agentLogPath, arguments: arguments)
            }

            var agentLog: String { (try? String(contentsOf: agentLogPath, encoding: .utf8)) ?? "" }
        }

        @Test func sighupWithAChangedThenABrokenConfigLosesNothing() throws {
            let fixture = try Fixture()
            let (log, output, configPath) = (fixture.log, fixture.output, fixture.configPath)
            FileManager.default.createFile(atPath: log, contents: nil)
            let agent = try fixture.startAgent()

            let writer = FileHandle(forWritingAtPath: log)!
            func write(_ range: Range<Int>) {
                writer.seekToEndOfFile()
                writer.write(Data(range.map { "line \($0)\n" }.joined().utf8))
            }
            func outputLines() -> [String] {
                ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
            }
            func waitFor(_ condition: () -> Bool) {
                let deadline = Date().addingTimeInterval(30)
                while !condition(), Date() < deadline { usleep(50_000) }
            }
            func waitFor(_ count: Int) { waitFor { outputLines().count >= count } }
            func waitForLog(_ text: String) { waitFor { fixture.agentLog.contains(text) } }
            // Lines keep coming while the agent reloads: 100 at a time, 20 ms apart (pacing the writer, not a wait).
            func trickle(_ batches: Range<Int>) {
                for batch in batches {
                    write((batch * 100)..<(batch * 100 + 100))
                    usleep(20_000)
                }
            }

            // Signals find their handler once the tail runs.
            waitForLog("tailing file")
            trickle(0..<10)
            waitFor(500)
            // A changed configuration, applied while lines keep coming.
            try fixture.writeConfig(transform: true)
            kill(agent.processIdentifier, SIGHUP)
            trickle(10..<20)
            waitForLog("configuration reloaded; unchanged components kept running")
            waitFor(2000)
            // A broken configuration is refused; the running pipeline keeps going.
            try "sources:\n  app: { type: fil }\n".write(toFile: configPath, atomically: true, encoding: .utf8)
            kill(agent.processIdentifier, SIGHUP)
            waitForLog("the new configuration is invalid; keeping the running pipeline")
            write(2000..<2500)
            waitFor(2500)
            // A change to a disk buffer cannot be applied in place: the pipeline drains and restarts, the tail resumes from its
            // checkpoint.
            try fixture.writeConfig(transform: true, disk: true)
            kill(agent.processIdentifier, SIGHUP)
            trickle(25..<30)
            waitForLog("changed its disk buffer")
            waitFor(3000)
            kill(agent.processIdentifier, SIGTERM)
            try UplinkProcess.wait(for: agent, timeout: 30)
            writer.closeFile()

            let agentLog = fixture.agentLog
            #expect(agent.terminationStatus == 0, "\(agentLog)")
            #expect(agentLog.contains("configuration reloaded; unchanged components kept running"))
            #expect(agentLog.contains("configuration changed; draining the running pipeline"))
            #expect(agentLog.contains("changed its disk buffer"))
            #expect(agentLog.contains("the new configuration is invalid; keeping the running pipeline"))
            #expect(agentLog.contains("unknown source type 'fil'"))
            var seen: [Int: Int] = [:]
            var transformed = 0
            var lateRaw = 0
            for line in outputLines() {
                var text = line
                let isJSON = line.hasPrefix("{")
                if isJSON {
                    let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                    text = object["message"] as! String
                    transformed += 1
                }
                let number = Int(text.dropFirst(5))!
                seen[number, default: 0] += 1
                if number >= 2000 && !isJSON { lateRaw += 1 }
            }
            let lost = (0..<3000).filter { seen[$0] == nil }.count
            let duplicates = seen.values.filter { $0 > 1 }.count
            print("reload test: 3000 lines written, \(seen.count) distinct received (\(transformed) by the reloaded pipeline), duplicates \(duplicates), lost \(lost)")
            #expect(lost == 0)
            #expect(duplicates == 0)
            // Lines written once the new pipeline had delivered lines 1000-1999 can only go through it.
            #expect(lateRaw == 0, "lines after the reload go through the new transform")
            #expect(transformed >= 1500)
        }

        @Test func watchAppliesAnEditedConfigurationInPlace() throws {
            let fixture = try Fixture()
            let (log, output) = (fixture.log, fixture.output)
            try Data("before\n".utf8).write(to: URL(fileURLWithPath: log))
            let agent = try fixture.startAgent(["--watch"])
            func agentLog() -> String { fixture.agentLog }
            func waitFor(_ condition: () -> Bool) {
                let deadline = Date().addingTimeInterval(20)
                while !condition(), Date() < deadline { usleep(50_000) }
            }
            func delivered() -> String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }
            waitFor { delivered().contains("before") }
            // An editor saves the file: no signal, the watcher notices the new modification time.
            try fixture.writeConfig(transform: true)
            waitFor { agentLog().contains("configuration reloaded; unchanged components kept running") }
            let writer = FileHandle(forWritingAtPath: log)!
            writer.seekToEndOfFile()
            writer.write(Data("after\n".utf8))
            writer.closeFile()
            waitFor { delivered().contains("\"message\":\"after\"") }
            kill(agent.processIdentifier, SIGTERM)
            try UplinkProcess.wait(for: agent, timeout: 30)
            #expect(agentLog().contains("configuration reloaded; unchanged components kept running"), "\(agentLog())")
            #expect(delivered().contains("\"message\":\"after\""), "\(delivered())")
            #expect(!agentLog().contains("draining the running pipeline"))
            #expect(agent.terminationStatus == 0)
        }
    }
}
