import Foundation
import Testing

extension EndToEnd {
    /// `uplink auth`, `uplink publish` and `uplink validate` on the iotcore_http sink, as a user runs them.
    @Suite(.serialized, .timeLimit(.minutes(2))) struct IoTCoreCommandsTests {
        typealias Emulator = DeliveryFaultTests.EmulatorProcess

        static func config(endpoint: String, caFile: String = "/dev/null", secret: String = "s3cr3tKey0000000", extra: String = "") throws -> String {
            let directory = UplinkProcess.temporaryDirectory()
            return try UplinkProcess.writeConfig(
                """
                data_dir: \(directory.path)/state
                sources:
                  in: { type: stdin }
                transforms:
                  wrap: { type: json, inputs: [in] }
                sinks:
                  cloud:
                    type: iotcore_http
                    inputs: [wrap]
                    endpoint: \(endpoint)
                    ca_file: \(caFile)
                    product_sn: abcdefgh12345678
                    device_sn: device001
                    device_secret: \(secret)
                \(extra)
                """)
        }

        /// A loopback port where nothing listens: bound, then closed.
        static func closedPort() -> Int {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
            }
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            close(fd)
            return Int(UInt16(bigEndian: address.sin_port))
        }

        @Test func authAndPublishEndAtOnceWhenNothingListens() throws {
            let config = try Self.config(endpoint: "https://127.0.0.1:\(Self.closedPort())")
            for arguments in [["auth", config], ["publish", config]] {
                let started = Date()
                let result = try UplinkProcess.run(arguments, input: Data("{}".utf8), timeout: 20)
                #expect(result.status == 7, "\(arguments[0]): \(result.stderr)")
                #expect(Date().timeIntervalSince(started) < 10)
                let lines = result.stderr.split(separator: "\n").filter { !$0.contains(" warning ") && !$0.contains(" info ") }
                #expect(lines.count == 1 && lines[0].contains("could not connect"), "\(result.stderr)")
                #expect(!result.stderr.contains("IoTCoreError"), "no Swift type names: \(result.stderr)")
            }
        }

        @Test func publishGivesUpAfterTheTimeoutWithCode28() throws {
            let emulator = try Emulator(directory: UplinkProcess.temporaryDirectory())
            defer { emulator.stop() }
            try emulator.faults(#"{"ratio_130":1}"#)
            let config = try Self.config(endpoint: "https://127.0.0.1:\(emulator.port)", caFile: emulator.caFile)
            let result = try UplinkProcess.run(["publish", config, "--timeout", "1s"], input: Data("{}".utf8), timeout: 30)
            #expect(result.status == 28, "\(result.stderr)")
            #expect(result.stderr.contains("gave up after 1s") && result.stderr.contains("RetCode 130"), "\(result.stderr)")
        }

        @Test func aWrongSecretAfterAGoodRunFailsInsteadOfUsingTheCachedToken() throws {
            let emulator = try Emulator(directory: UplinkProcess.temporaryDirectory())
            defer { emulator.stop() }
            let good = try Self.config(endpoint: "https://127.0.0.1:\(emulator.port)", caFile: emulator.caFile)
            let first = try UplinkProcess.run(["publish", good], input: Data(#"{"fan":1}"#.utf8))
            #expect(first.status == 0, "\(first.stderr)")
            // The same data_dir (so the same token cache), another secret.
            let text = try String(contentsOfFile: good, encoding: .utf8).replacingOccurrences(of: "s3cr3tKey0000000", with: "wrong-secret-000")
            try text.write(toFile: good, atomically: true, encoding: .utf8)
            for command in ["publish", "auth"] {
                let result = try UplinkProcess.run([command, good], input: Data(#"{"fan":2}"#.utf8))
                #expect(result.status == 22, "\(command): \(result.stderr)")
                #expect(result.stderr.contains("refused the device credentials"), "\(result.stderr)")
            }
            let accepted = (try? String(contentsOfFile: emulator.acceptedLog, encoding: .utf8)) ?? ""
            #expect(accepted.split(separator: "\n").count == 1, "only the good run's message arrives: \(accepted)")
        }

        @Test func validateRefusesWhatRunWouldWithFileLineColumn() throws {
            let cases: [(extra: String, endpoint: String, needle: String)] = [
                ("", "http://localhost:19080", "endpoint"),
                ("", "http://127.evil.example", "endpoint"),
                ("", "https://u:p@h.example", "user information"),
                ("    topic: /a/../auth", "https://h.example", "topic"),
                ("    topic: /a/%41/x", "https://h.example", "topic"),
                ("    device_sn: \"dev\\tice\"", "https://h.example", "device_sn"),
                ("    device_sn: \"dev\\nice\"", "https://h.example", "device_sn"),
                ("    device_sn: \"dévice\"", "https://h.example", "device_sn"),
                ("    device_sn: \"..\"", "https://h.example", "device_sn"),
                ("    device_secret_file: /etc/hostname", "https://h.example", "not both"),
                ("    send_timestamp: sometimes", "https://h.example", "send_timestamp"),
            ]
            for (extra, endpoint, needle) in cases {
                var config = try Self.config(endpoint: endpoint, extra: extra)
                if extra.contains("device_sn:") {
                    // Replace the sink's own device_sn line instead of adding a second one.
                    let text = try String(contentsOfFile: config, encoding: .utf8)
                        .replacingOccurrences(of: "    device_sn: device001\n", with: "")
                    try text.write(toFile: config, atomically: true, encoding: .utf8)
                }
                let result = try UplinkProcess.run(["validate", config])
                #expect(result.status == 78, "\(extra) \(endpoint): \(result.stderr)")
                let located = result.stderr.split(separator: "\n").contains { line in
                    line.contains(config + ":") && line.contains(needle)
                        && line.split(separator: ":").dropFirst().prefix(2).allSatisfy { Int($0) != nil }
                }
                #expect(located, "\(extra) \(endpoint): \(result.stderr)")
                config = ""
            }
        }

        @Test func aSecretFileReadableByOthersGetsAWarning() throws {
            let secretFile = UplinkProcess.temporaryDirectory().appendingPathComponent("secret").path
            try "s3cr3tKey0000000\n".write(toFile: secretFile, atomically: true, encoding: .utf8)
            chmod(secretFile, 0o644)
            let config = try Self.config(endpoint: "https://h.example")
            let text = try String(contentsOfFile: config, encoding: .utf8)
                .replacingOccurrences(of: "device_secret: s3cr3tKey0000000", with: "device_secret_file: \(secretFile)")
            try text.write(toFile: config, atomically: true, encoding: .utf8)
            let loose = try UplinkProcess.run(["validate", config])
            #expect(loose.status == 0, "\(loose.stderr)")
            #expect(loose.stderr.contains("can be read by other users") && loose.stderr.contains("chmod 600"), "\(loose.stderr)")
            chmod(secretFile, 0o600)
            let tight = try UplinkProcess.run(["validate", config])
            #expect(tight.status == 0 && !tight.stderr.contains("other users"), "\(tight.stderr)")
        }
    }
}
