import Foundation
import Testing

extension EndToEnd {
    /// `aggregate` across a reload that replaces it and a shutdown: the retiring stage sends its open window when it
    /// is detached, the new one at the end of input, and together they account for every line exactly once.
    @Suite(.serialized, .timeLimit(.minutes(2))) struct AggregateReloadTests {
        static func config(log: String, raw: String, aggregates: String, state: String, functions: String) -> String {
            """
            data_dir: \(state)
            sources:
              app: { type: file, include: ["\(log)"], read_from: beginning, checkpoint_interval: 100ms }
            transforms:
              wrap: { type: json, inputs: [app], mode: json }
              hourly: { type: aggregate, inputs: [wrap], window: 1h, fields: { n: \(functions) } }
            sinks:
              raw: { type: file, inputs: [wrap], path: "\(raw)" }
              out: { type: file, inputs: [hourly], path: "\(aggregates)" }
            """
        }

        @Test func aReloadSendsTheOpenWindowAndNothingIsCountedTwice() throws {
            let directory = UplinkProcess.temporaryDirectory()
            let log = directory.appendingPathComponent("app.log").path
            let raw = directory.appendingPathComponent("raw.log").path
            let aggregates = directory.appendingPathComponent("aggregates.log").path
            let state = directory.appendingPathComponent("state").path
            let configPath = directory.appendingPathComponent("pipeline.yaml").path
            let agentLog = directory.appendingPathComponent("agent.log")
            try Self.config(log: log, raw: raw, aggregates: aggregates, state: state, functions: "[sum]")
                .write(toFile: configPath, atomically: true, encoding: .utf8)
            try (0..<200).map { #"{"n":\#($0)}"# + "\n" }.joined().write(toFile: log, atomically: true, encoding: .utf8)
            let agent = try DeliveryFaultTests.startAgent(configPath, log: agentLog)

            func lines(_ path: String) -> [String] {
                ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
            }
            func counted() -> Int {
                lines(aggregates).reduce(0) { total, line in
                    let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
                    return total + ((object?["count"] as? Int) ?? 0)
                }
            }
            func waitFor(_ condition: () -> Bool) {
                let deadline = Date().addingTimeInterval(30)
                while !condition(), Date() < deadline { usleep(20_000) }
            }

            waitFor { lines(raw).count == 200 }
            #expect(lines(aggregates).isEmpty, "an hour's window is still open")
            // A changed aggregate replaces the running one: its open window must not be lost.
            try Self.config(log: log, raw: raw, aggregates: aggregates, state: state, functions: "[sum, max]")
                .write(toFile: configPath, atomically: true, encoding: .utf8)
            kill(agent.processIdentifier, SIGHUP)
            waitFor { counted() == 200 }
            #expect(counted() == 200, "the retiring aggregate sent its window: \(lines(aggregates))")
            try FileHandle(forWritingAtPath: log).map { handle in
                handle.seekToEndOfFile()
                handle.write(Data((200..<250).map { #"{"n":\#($0)}"# + "\n" }.joined().utf8))
                handle.closeFile()
            }
            waitFor { lines(raw).count == 250 }
            kill(agent.processIdentifier, SIGTERM)
            try UplinkProcess.wait(for: agent, timeout: 30)
            let logText = (try? String(contentsOf: agentLog, encoding: .utf8)) ?? ""
            #expect(agent.terminationStatus == 0, "\(logText)")
            #expect(logText.contains("configuration reloaded"))
            #expect(counted() == 250, "shutdown sent the new window: \(lines(aggregates))")
            let sums = lines(aggregates).compactMap {
                ((try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any])?["n_sum"] as? Int
            }
            print("aggregate reload: \(lines(aggregates))")
            #expect(sums.reduce(0, +) == (0..<250).reduce(0, +))
            #expect(lines(aggregates).last?.contains(#""n_max":249"#) == true, "the replacement uses the new functions")
        }
    }
}
