import Foundation
import Testing

extension EndToEnd {
    /// The edge example end to end: a pseudo-terminal stands in for the sensor, the embedded emulator for the
    /// cloud. An alarm line must arrive as a thing-model event, the readings as aggregated properties (a 1 s
    /// window here, through `EDGE_WINDOW`), and an impossible value nowhere.
    @Suite(.serialized, .timeLimit(.minutes(2))) struct SerialEdgeTests {
        @Test func alarmsArriveAsEventsReadingsAsAggregatesAndImpossibleValuesNot() throws {
            let terminal = try PseudoTerminal()
            defer { terminal.close() }
            let state = UplinkProcess.temporaryDirectory()
            let link = state.appendingPathComponent("ttyUSB-sensor").path
            symlink(String(cString: ttyname(terminal.slave)), link)
            let config = ExamplePipelinesTests.repository.appendingPathComponent("pipelines/serial-edge-iotcore.yaml").path

            let process = Process()
            process.executableURL = UplinkProcess.executable
            process.arguments = ["run", config]
            process.environment = ProcessInfo.processInfo.environment.merging(
                ["UPLINK_SERIAL": link, "UPLINK_DATA_DIR": state.path, "EDGE_WINDOW": "1s"]) { _, new in new }
            let log = state.appendingPathComponent("uplink.log")
            FileManager.default.createFile(atPath: log.path, contents: nil)
            process.standardError = try FileHandle(forWritingTo: log)
            process.standardOutput = FileHandle.nullDevice
            try process.run()

            // A probe that lost contact (-127 °C, then 850 °C with an alarm status), an overheat alarm, and
            // readings that each move past the deadband; the pty holds them until the agent opens it.
            let base: Int64 = 1_700_000_000_000
            let lines = [
                "\(base),20.0,40,ok", "\(base + 1000),-127.0,40,ok", "\(base + 2000),21.0,42,ok",
                "\(base + 3000),850.0,40,overheat", "\(base + 4000),96.5,41,overheat", "\(base + 5000),22.0,44,ok",
            ]
            for line in lines {
                let text = line + "\r\n"
                _ = text.utf8CString.withUnsafeBufferPointer { write(terminal.master, $0.baseAddress, $0.count - 1) }
            }
            let accepted = state.appendingPathComponent("cloud/embedded-accepted.jsonl").path
            DeliveryFaultTests.waitFor(60) {
                let posts = Self.posts(accepted)
                let temps = posts.properties.flatMap { [$0["temp_min"], $0["temp_max"]] }.compactMap { $0 }
                return !posts.events.isEmpty && temps.contains(20.0) && temps.contains(22.0)
            }
            kill(process.processIdentifier, SIGTERM)
            try UplinkProcess.wait(for: process, timeout: 30)
            let stderr = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            #expect(process.terminationStatus == 0, "log: \(stderr)")

            let posts = Self.posts(accepted)
            #expect(posts.events.count == 1, "the overheat alarm, once; the 850 °C one was dropped. log: \(stderr)")
            #expect(posts.events.first?["Identifier"] as? String == "overheat")
            let output = posts.events.first?["Output"] as? [String: Any]
            #expect(output?["temp"] as? Double == 96.5)
            #expect((posts.events.first?["Time"] as? NSNumber)?.int64Value == base + 4000)
            // Every property post is an aggregate (mean, min and max of a window), never a raw reading.
            #expect(!posts.properties.isEmpty)
            for property in posts.properties {
                #expect(property["temp"] != nil && property["temp_min"] != nil && property["temp_max"] != nil, "\(property)")
            }
            let values = posts.properties.flatMap { $0.values }
            #expect(values.allSatisfy { (-40.0..<125.0).contains($0) }, "no impossible value reached the cloud: \(values)")
            #expect(Set(posts.properties.flatMap { [$0["temp_min"], $0["temp_max"]] }.compactMap { $0 }).isSuperset(of: [20.0, 22.0]))
            print("serial edge -> cloud: \(lines.count) lines written, \(posts.events.count) event, \(posts.properties.count) aggregated property posts")
        }

        /// The accepted thing-model posts: event bodies, and each property post's values by identifier.
        static func posts(_ path: String) -> (events: [[String: Any]], properties: [[String: Double]]) {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return ([], []) }
            var events: [[String: Any]] = []
            var properties: [[String: Double]] = []
            for line in text.split(separator: "\n") {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                    let topic = object["topic"] as? String,
                    let body = Data(base64Encoded: object["body_base64"] as? String ?? ""),
                    let post = try? JSONSerialization.jsonObject(with: body) as? [String: Any]
                else { continue }
                if topic.hasSuffix("/tmodel/event/post") {
                    events.append(post)
                } else if topic.hasSuffix("/tmodel/property/post"), let property = post["Property"] as? [String: Any] {
                    properties.append(property.compactMapValues { (($0 as? [String: Any])?["Value"] as? NSNumber)?.doubleValue })
                }
            }
            return (events, properties)
        }
    }
}
