import Foundation
import Testing

extension EndToEnd {
    @Suite(.serialized, .timeLimit(.minutes(2))) struct ExamplePipelinesTests {
        static var repository: URL {
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        }

        @Test func everyExamplePipelineValidates() throws {
            let directory = Self.repository.appendingPathComponent("pipelines")
            let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".yaml") }.sorted()
            #expect(!files.isEmpty)
            for file in files {
                let result = try UplinkProcess.run(["validate", directory.appendingPathComponent(file).path])
                #expect(result.status == 0, "\(file): \(result.stderr)")
            }
        }

        @Test func quickStartShipsToTheEmbeddedEmulator() throws {
            let state = UplinkProcess.temporaryDirectory()
            let config = Self.repository.appendingPathComponent("pipelines/quickstart-embedded.yaml").path
            let lines = (1...250).map { "reading \($0)" }.joined(separator: "\n") + "\n"
            let result = try UplinkProcess.run(["run", config], input: Data(lines.utf8), environment: ["UPLINK_DATA_DIR": state.path])
            #expect(result.status == 0, "stderr: \(result.stderr)")
            #expect(result.stderr.contains("emulator.messages=250"))
            let accepted = try String(contentsOfFile: state.appendingPathComponent("cloud/embedded-accepted.jsonl").path, encoding: .utf8)
            let bodies = try accepted.split(separator: "\n").map { line -> String in
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                #expect(object["topic"] as? String == "/abcdefgh12345678/device001/upload")
                return String(decoding: Data(base64Encoded: object["body_base64"] as! String)!, as: UTF8.self)
            }
            #expect(bodies.count == 250)
            // In the order they were read (the quick start keeps order per topic).
            #expect(bodies.map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }.map { $0["message"] as! String } == (1...250).map { "reading \($0)" })
            #expect(result.stderr.contains(#"emulator.last_body="{\"message\":\"reading 250\""#), "stderr: \(result.stderr)")
            // The token is cached 0600 so a restart does not authenticate again; the secret is never printed.
            let token = state.appendingPathComponent("cloud/iotcore-token-abcdefgh12345678-device001.json").path
            #expect((try FileManager.default.attributesOfItem(atPath: token)[.posixPermissions] as? Int) == 0o600)
            #expect(!result.stderr.contains("s3cr3tKey0000000"))
        }

        /// The kept-alive connection of the sink's client used to stay open until the client was deinitialised (its
        /// metrics reporter keeps it alive), and the embedded emulator's graceful shutdown waited ~5 s for it.
        @Test func embeddedPipelineExitsPromptlyAfterItsLastDelivery() throws {
            let state = UplinkProcess.temporaryDirectory()
            let config = Self.repository.appendingPathComponent("pipelines/quickstart-embedded.yaml").path
            let result = try UplinkProcess.run(
                ["run", "--log-format", "json", config], input: Data("hello\nworld\n".utf8),
                environment: ["UPLINK_DATA_DIR": state.path], timeout: 30)
            let exited = Date()
            #expect(result.status == 0, "stderr: \(result.stderr)")
            #expect(result.stderr.contains("\"emulator.messages\":\"2\""), "stderr: \(result.stderr)")
            // From the sink's last delivery (the emulator's summary line) to the exit of the process.
            let received = try #require(
                result.stderr.split(separator: "\n").first { $0.contains("embedded IoT-Core emulator received") })
            let object = try #require(try JSONSerialization.jsonObject(with: Data(received.utf8)) as? [String: Any])
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let logged = try #require((object["time"] as? String ?? object["timestamp"] as? String).flatMap(formatter.date(from:)))
            let shutdown = exited.timeIntervalSince(logged)
            #expect(shutdown < 2, "the process took \(shutdown) s to exit after its last delivery")
        }

        @Test func authAndPublishCommands() throws {
            let state = UplinkProcess.temporaryDirectory()
            let config = Self.repository.appendingPathComponent("pipelines/quickstart-embedded.yaml").path
            let auth = try UplinkProcess.run(["auth", config], environment: ["UPLINK_DATA_DIR": state.path])
            #expect(auth.status == 0, "stderr: \(auth.stderr)")
            #expect(auth.stdoutText.contains("authenticated abcdefgh12345678/device001: token expires"))
            #expect(!auth.stdoutText.contains("eyJ"), "the token must never be printed")

            let publish = try UplinkProcess.run(
                ["publish", config, "--topic", "/$system/abcdefgh12345678/device001/shadow/upstream"],
                input: Data(#"{"Method":"update","State":{"Reported":{"t":1}},"Version":-1}"#.utf8),
                environment: ["UPLINK_DATA_DIR": state.path])
            #expect(publish.status == 0, "stderr: \(publish.stderr)")
            #expect(publish.stdoutText.contains("MessageID"))

            let refused = try UplinkProcess.run(
                ["publish", config, "--topic", "/someone/else/upload"], input: Data("x".utf8), environment: ["UPLINK_DATA_DIR": state.path])
            // curl's exit code for a refused request (IoTCoreOneShot).
            #expect(refused.status == 22)
            #expect(refused.stderr.contains("100075"))

            let tooBig = try UplinkProcess.run(
                ["publish", config], input: Data(repeating: 0x61, count: 131_073), environment: ["UPLINK_DATA_DIR": state.path])
            #expect(tooBig.status == 1)
            #expect(tooBig.stderr.contains("at most 131072"))
        }

        @Test func emulatorCommandServesOverTLS() throws {
            let directory = UplinkProcess.temporaryDirectory()
            let devices = Self.repository.appendingPathComponent("examples/emulator-devices.yaml").path
            let ca = directory.appendingPathComponent("ca.pem").path
            let process = Process()
            process.executableURL = UplinkProcess.executable
            process.arguments = ["emulator", "--devices", devices, "--port", "0", "--ca-out", ca]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = FileHandle.nullDevice
            try process.run()
            defer {
                process.terminate()
                try? UplinkProcess.wait(for: process, timeout: 10)
            }
            // The first line says where it listens.
            var line = Data()
            let deadline = Date().addingTimeInterval(20)
            while !line.contains(0x0A), Date() < deadline {
                let byte = output.fileHandleForReading.readData(ofLength: 1)
                if byte.isEmpty { break }
                line.append(byte)
            }
            let text = String(decoding: line, as: UTF8.self)
            let address = try #require(text.range(of: "127.0.0.1:"))
            let port = try #require(Int(text[address.upperBound...].prefix(while: \.isNumber)))
            let curl = Process()
            curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            let body = #"{"ProductSN":"abcdefgh12345678","DeviceSN":"device001"}"#
            curl.arguments = [
                "-s", "--cacert", ca, "-H", "Content-Type: application/json",
                "-H", "Authorization: 00a241845eef3cc51dfa41e30059e34b70d85d9d0fe769942e8b7d71a0dd77ae",
                "--data-binary", body, "https://127.0.0.1:\(port)/auth",
            ]
            let answer = Pipe()
            curl.standardOutput = answer
            try curl.run()
            curl.waitUntilExit()
            let reply = String(decoding: answer.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(reply.contains("\"RetCode\":0"), "reply: \(reply)")
            #expect(reply.contains("\"Token\""))
        }
    }
}

extension EndToEnd {
    @Suite(.serialized, .timeLimit(.minutes(2))) struct DeadLetterReplayTests {
        @Test func replayDeliversWhatCanBeAndKeepsTheRest() throws {
            let state = UplinkProcess.temporaryDirectory()
            let file = state.appendingPathComponent("dead-letters.jsonl").path
            func line(_ topic: String, _ payload: String) -> String {
                #"{"time":1,"component":"cloud","topic":"\#(topic)","reason":"ACL","retcode":100075,"payload_base64":"\#(Data(payload.utf8).base64EncodedString())"}"#
            }
            let lines = [
                line("/abcdefgh12345678/device001/upload", #"{"fixed":1}"#),
                line("/someone/else/upload", #"{"still":"refused"}"#),
                "not a dead letter",
                line("/$system/abcdefgh12345678/device001/shadow/upstream", #"{"Method":"update","State":{"Reported":{"a":1}},"Version":-1}"#),
            ]
            try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
            let config = ExamplePipelinesTests.repository.appendingPathComponent("pipelines/quickstart-embedded.yaml").path
            let result = try UplinkProcess.run(
                ["dead-letters", "replay", file, "--config", config], environment: ["UPLINK_DATA_DIR": state.path])
            #expect(result.status == 1, "lines remain, so the exit status says so: \(result.stderr)")
            #expect(result.stdoutText.contains("replayed 4 dead letters: 2 delivered, 2 remain"))
            #expect(result.stdoutText.contains("1 refused again (RetCode 100075"))
            let left = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n")
            #expect(left.count == 2)
            #expect(left.contains { $0.contains("/someone/else/upload") })
            #expect(left.contains("not a dead letter"))
            #expect((try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int) == 0o600)
            let accepted = try String(contentsOfFile: state.appendingPathComponent("cloud/embedded-accepted.jsonl").path, encoding: .utf8)
            let bodies = try accepted.split(separator: "\n").map { entry -> String in
                let object = try JSONSerialization.jsonObject(with: Data(entry.utf8)) as! [String: Any]
                return String(decoding: Data(base64Encoded: object["body_base64"] as! String)!, as: UTF8.self)
            }
            #expect(bodies == [#"{"fixed":1}"#, #"{"Method":"update","State":{"Reported":{"a":1}},"Version":-1}"#])
        }
    }
}
