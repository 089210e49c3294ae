import Foundation
import Testing

extension EndToEnd {
    /// `pipelines/gateway-two-devices-iotcore.yaml` against `uplink emulator`: two devices on one board, each
    /// thing model taking its identity from the sink it feeds. Before, both took the identity of the sink built
    /// last, so one device's posts went to the other's topics and were refused (dead-lettered).
    @Suite(.serialized, .timeLimit(.minutes(2))) struct GatewayEndToEndTests {
        typealias EmulatorProcess = DeliveryFaultTests.EmulatorProcess

        @Test func eachDevicePublishesToItsOwnTopics() async throws {
            let directory = UplinkProcess.temporaryDirectory()
            let emulator = try EmulatorProcess(directory: directory)
            defer { emulator.stop() }
            let boilerLog = directory.appendingPathComponent("boiler.log").path
            let pumpLog = directory.appendingPathComponent("pump.log").path
            let readings = 20
            try (0..<readings).map { "time=\(1_700_000_000_000 + $0) water_temp=6\($0 % 10).5 pressure=1.\($0 % 10)" }
                .joined(separator: "\n").appending("\n").write(toFile: boilerLog, atomically: true, encoding: .utf8)
            try (0..<readings).map { "time=\(1_700_000_000_000 + $0) rpm=\(1400 + $0) flow=3.\($0 % 10)" }
                .joined(separator: "\n").appending("\n").write(toFile: pumpLog, atomically: true, encoding: .utf8)
            let state = directory.appendingPathComponent("state")
            let config = ExamplePipelinesTests.repository.appendingPathComponent("pipelines/gateway-two-devices-iotcore.yaml").path

            let agent = Process()
            agent.executableURL = UplinkProcess.executable
            agent.arguments = ["run", config, "--log-level", "warning"]
            agent.environment = ProcessInfo.processInfo.environment.merging([
                "UPLINK_DATA_DIR": state.path, "BOILER_LOG": boilerLog, "PUMP_LOG": pumpLog,
                "IOTCORE_ENDPOINT": "https://127.0.0.1:\(emulator.port)", "IOTCORE_CA_FILE": emulator.caFile,
            ]) { _, new in new }
            let stderr = directory.appendingPathComponent("agent.log")
            FileManager.default.createFile(atPath: stderr.path, contents: nil)
            agent.standardError = try FileHandle(forWritingTo: stderr)
            agent.standardOutput = FileHandle.nullDevice
            try agent.run()

            // Every reading accepted by the cloud, by topic: one property post per reading.
            func accepted() -> [String: [[String: Any]]] {
                guard let text = try? String(contentsOfFile: emulator.acceptedLog, encoding: .utf8) else { return [:] }
                var byTopic: [String: [[String: Any]]] = [:]
                for entry in text.split(separator: "\n") {
                    guard let object = try? JSONSerialization.jsonObject(with: Data(entry.utf8)) as? [String: Any],
                        let topic = object["topic"] as? String,
                        let body = Data(base64Encoded: object["body_base64"] as? String ?? ""),
                        let post = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
                        let properties = post["Property"] as? [String: Any]
                    else { continue }
                    byTopic[topic, default: []].append(properties)
                }
                return byTopic
            }
            let boilerTopic = "/$system/abcdefgh12345678/device001/tmodel/property/post"
            let pumpTopic = "/$system/abcdefgh12345678/pump003/tmodel/property/post"
            _ = try await UplinkProcess.waitUntil(60) {
                let seen = accepted()
                return (seen[boilerTopic]?.count ?? 0) >= readings && (seen[pumpTopic]?.count ?? 0) >= readings
            }
            kill(agent.processIdentifier, SIGTERM)
            try await UplinkProcess.waitAsync(for: agent, timeout: 30)
            let log = (try? String(contentsOf: stderr, encoding: .utf8)) ?? ""
            #expect(agent.terminationStatus == 0, "agent log: \(log)")

            let seen = accepted()
            #expect(Set(seen.keys) == [boilerTopic, pumpTopic], "topics: \(seen.keys.sorted())")
            let boiler = seen[boilerTopic] ?? []
            let pump = seen[pumpTopic] ?? []
            #expect(boiler.count == readings)
            #expect(pump.count == readings)
            #expect(boiler.allSatisfy { Set($0.keys) == ["temp", "pressure"] }, "the boiler's topics carry only its properties")
            #expect(pump.allSatisfy { Set($0.keys) == ["rpm", "flow"] }, "the pump's topics carry only its properties")
            // Nothing was refused: no dead letters for either device.
            for sink in ["boiler", "pump"] {
                let deadLetters = state.appendingPathComponent("\(sink)/dead-letters.jsonl").path
                let text = (try? String(contentsOfFile: deadLetters, encoding: .utf8)) ?? ""
                #expect(text.isEmpty, "\(sink) dead letters: \(text)")
            }
        }
    }
}
