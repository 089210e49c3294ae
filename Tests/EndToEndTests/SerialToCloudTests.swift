import Foundation
import Testing

/// The serial example end to end: a pseudo-terminal stands in for the sensor, the embedded emulator for the
/// cloud; every reading must arrive as a thing-model property, once.
@Suite(.serialized, .timeLimit(.minutes(2))) struct SerialToCloudTests {
    @Test func serialCSVSensorReachesTheCloudAsThingModelProperties() throws {
        var master: Int32 = -1
        var slave: Int32 = -1
        var raw = termios()
        cfmakeraw(&raw)
        guard openpty(&master, &slave, nil, &raw, nil) == 0 else { throw POSIXError(.EIO) }
        defer {
            close(master)
            close(slave)
        }
        let state = UplinkProcess.temporaryDirectory()
        let link = state.appendingPathComponent("ttyUSB-sensor").path
        symlink(String(cString: ttyname(slave)), link)
        let config = ExamplePipelinesTests.repository.appendingPathComponent("pipelines/serial-csv-thing-model-iotcore.yaml").path

        let process = Process()
        process.executableURL = UplinkProcess.executable
        process.arguments = ["run", config]
        process.environment = ProcessInfo.processInfo.environment.merging(
            ["UPLINK_SERIAL": link, "UPLINK_DATA_DIR": state.path]) { _, new in new }
        let log = state.appendingPathComponent("uplink.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: log)
        process.standardOutput = FileHandle.nullDevice
        try process.run()

        // 100 readings at a sensor's pace (CRLF line ends, as many boards print).
        let base: Int64 = 1_700_000_000_000
        for index in 0..<100 {
            let line = "\(base + Int64(index) * 1000),\(20 + Double(index) / 10),\(40 + index % 20)\r\n"
            _ = line.utf8CString.withUnsafeBufferPointer { write(master, $0.baseAddress, $0.count - 1) }
            usleep(2_000)
        }
        let accepted = state.appendingPathComponent("cloud/embedded-accepted.jsonl").path
        var times = Set<Int64>()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            times = Self.propertyTimes(accepted)
            if times.count >= 100 { break }
            usleep(100_000)
        }
        kill(process.processIdentifier, SIGTERM)
        try UplinkProcess.wait(for: process, timeout: 30)
        let stderr = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus == 0, "log: \(stderr)")
        times = Self.propertyTimes(accepted)
        #expect(times == Set((0..<100).map { base + Int64($0) * 1000 }), "log: \(stderr)")
        print("serial -> cloud: 100 readings written, \(times.count) distinct readings received")
    }

    /// The `Time` of every `temp` property the emulator accepted.
    static func propertyTimes(_ path: String) -> Set<Int64> {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        var times = Set<Int64>()
        for line in text.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                (object["topic"] as? String)?.hasSuffix("/tmodel/property/post") == true,
                let body = Data(base64Encoded: object["body_base64"] as? String ?? ""),
                let post = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
                let property = post["Property"] as? [String: Any]
            else { continue }
            // A merged post has one entry per identifier; fixed-column readings repeat identifiers, so one each.
            if let temp = property["temp"] as? [String: Any], let time = temp["Time"] as? Int64 ?? (temp["Time"] as? Int).map(Int64.init) {
                times.insert(time)
            }
        }
        return times
    }
}
