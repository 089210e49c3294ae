import Foundation
import Testing

/// A raw pseudo-terminal standing in for a serial sensor: the test writes to `master`; the agent opens the
/// slave's path.
struct PseudoTerminal {
    let master: Int32
    let slave: Int32

    init() throws {
        var master: Int32 = -1
        var slave: Int32 = -1
        var raw = termios()
        cfmakeraw(&raw)
        guard openpty(&master, &slave, nil, &raw, nil) == 0 else { throw POSIXError(.EIO) }
        self.master = master
        self.slave = slave
    }

    func close() {
        _ = Glibc.close(master)
        _ = Glibc.close(slave)
    }
}

extension EndToEnd {
    /// The serial example end to end: a pseudo-terminal stands in for the sensor, the embedded emulator for the
    /// cloud; every reading must arrive as a thing-model property, once.
    @Suite(.serialized, .timeLimit(.minutes(2))) struct SerialToCloudTests {
        @Test func serialCSVSensorReachesTheCloudAsThingModelProperties() throws {
            let terminal = try PseudoTerminal()
            defer { terminal.close() }
            let (master, slave) = (terminal.master, terminal.slave)
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
}

extension EndToEnd {
    /// A serial line cannot be paused: with a disk buffer in front of the sink, readings taken while the cloud is
    /// unreachable wait on disk and are all delivered once it is back.
    @Suite(.serialized, .timeLimit(.minutes(2))) struct SerialDiskBufferTests {
        @Test func serialReadingsSurviveAnOutageInTheDiskBuffer() throws {
            let terminal = try PseudoTerminal()
            defer { terminal.close() }
            let (master, slave) = (terminal.master, terminal.slave)
            let directory = UplinkProcess.temporaryDirectory()
            let emulator = try DeliveryFaultTests.EmulatorProcess(directory: directory)
            defer { emulator.stop() }
            // The "cloud" is down (every connection closed at once) until the test brings the link up.
            let link = try CloudLink(to: emulator.port)
            defer { link.stop() }
            let config = try UplinkProcess.writeConfig(
                """
                data_dir: \(directory.appendingPathComponent("state").path)
                sources:
                  sensor: { type: serial, device: "\(String(cString: ttyname(slave)))", baud: 115200 }
                transforms:
                  wrap: { type: json, inputs: [sensor] }
                  batches: { type: batch, inputs: [wrap], encoding: ndjson, timeout: 200ms }
                sinks:
                  cloud:
                    type: iotcore_http
                    inputs: [batches]
                    \(emulator.sinkOptions(indent: 4))
                    retry: { initial_backoff: 20ms, max_backoff: 200ms }
                    buffer: { type: disk, max_size: 16MiB, fsync_interval: 50ms }
                """, name: "serial-disk.yaml")
            try DiskBufferFaultTests.routeSink(of: config, through: link, to: emulator)
            let agent = try DeliveryFaultTests.startAgent(config)
            // 3,000 readings while the cloud is unreachable: the sink cannot send, the buffer fills.
            for index in 0..<3_000 {
                let line = "line \(index) " + String(repeating: "x", count: 80) + "\n"
                _ = line.utf8CString.withUnsafeBufferPointer { write(master, $0.baseAddress, $0.count - 1) }
                if index % 100 == 99 { usleep(20_000) }  // a sensor's pace, not a wait
            }
            // The last reading reaches the buffer's segments (their records hold the batches' NDJSON as written).
            let buffer = directory.appendingPathComponent("state/cloud/buffer")
            func buffered() -> Bool {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: buffer.path)) ?? []
                return names.filter { $0.hasPrefix("segment-") }.contains {
                    let bytes = try? Data(contentsOf: buffer.appendingPathComponent($0))
                    return bytes?.range(of: Data("line 2999 ".utf8)) != nil
                }
            }
            DeliveryFaultTests.waitFor(60) { buffered() }
            #expect(buffered(), "the readings wait on disk")
            #expect(emulator.receivedLines().isEmpty, "nothing could be sent during the outage")
            // The cloud comes back.
            link.comeUp()
            DeliveryFaultTests.waitFor(60) { Set(emulator.receivedLines()).count >= 3_000 }
            kill(agent.processIdentifier, SIGTERM)
            try UplinkProcess.wait(for: agent, timeout: 30)
            let received = emulator.receivedLines()
            let distinct = Set(received)
            print("serial outage with disk buffer: 3000 read, \(received.count) received, distinct \(distinct.count), lost \(3_000 - distinct.count)")
            #expect(distinct.count == 3_000)
            #expect(agent.terminationStatus == 0)
        }
    }
}
