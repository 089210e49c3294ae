import Foundation
import Testing

extension EndToEnd {
    /// A `file` source whose directory the agent may not list, seen from outside as an operator would: a
    /// warning with the path and errno once, `errors_total` counted, `/health` unhealthy after `unhealthy_after`.
    ///
    /// CI runs as root, for whom a directory's mode stops nothing; the agent is started through `setpriv` as
    /// `nobody`, so the kernel really refuses (EACCES). Without root (or setpriv) the test cannot drop
    /// privileges and is skipped; run as another user, `FileSourceUnreadableTests` covers EACCES instead.
    @Suite(.serialized, .timeLimit(.minutes(2))) struct UnreadablePathEndToEndTests {
        static var canDropPrivileges: Bool {
            geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")
        }

        @Test(.enabled(if: canDropPrivileges, "needs root and setpriv to run the agent as nobody"))
        func aDirectoryTheAgentMayNotListMakesItUnhealthy() async throws {
            let directory = UplinkProcess.temporaryDirectory()
            let logs = directory.appendingPathComponent("logs")
            let state = directory.appendingPathComponent("state")
            try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
            try "a line nobody may read\n".write(to: logs.appendingPathComponent("app.log"), atomically: true, encoding: .utf8)
            chmod(directory.path, 0o755)
            chmod(state.path, 0o777)
            chmod(logs.path, 0o700)  // root's; nobody may neither list nor enter it
            let output = directory.appendingPathComponent("out.jsonl")
            let config = try UplinkProcess.writeConfig(
                """
                data_dir: \(state.path)
                api: { address: "127.0.0.1:0", unhealthy_after: 1s }
                sources:
                  app: { type: file, include: ["\(logs.path)/*.log"], scan_interval: 100ms }
                transforms:
                  wrap: { type: json, inputs: [app] }
                sinks:
                  out: { type: file, inputs: [wrap], path: \(output.path) }
                """)
            chmod(config, 0o644)
            chmod(URL(fileURLWithPath: config).deletingLastPathComponent().path, 0o755)
            FileManager.default.createFile(atPath: output.path, contents: nil)
            chmod(output.path, 0o666)

            let stderr = try UplinkProcess.temporaryFile("agent-stderr")
            let agent = Process()
            agent.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            agent.arguments = [
                "--reuid=65534", "--regid=65534", "--clear-groups", UplinkProcess.executable.path, "run", config,
            ]
            agent.standardInput = FileHandle.nullDevice
            agent.standardOutput = FileHandle.nullDevice
            agent.standardError = try FileHandle(forWritingTo: stderr)
            try agent.run()
            defer {
                agent.terminate()
                try? UplinkProcess.wait(for: agent, timeout: 20)
            }
            func log() -> String { (try? String(contentsOf: stderr, encoding: .utf8)) ?? "" }

            // The API's port, from the log.
            var port = 0
            let started = Date()
            while port == 0, Date().timeIntervalSince(started) < 30, agent.isRunning {
                if let range = log().range(of: "api.port=") { port = Int(log()[range.upperBound...].prefix(while: \.isNumber)) ?? 0 }
                try await Task.sleep(for: .milliseconds(50))
            }
            try #require(port > 0, "the agent did not start: \(log())")

            func get(_ path: String) async throws -> (status: Int, body: String) {
                let body = try UplinkProcess.temporaryFile("body")
                let curl = Process()
                curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
                curl.arguments = ["-s", "-o", body.path, "-w", "%{http_code}", "--max-time", "10", "http://127.0.0.1:\(port)\(path)"]
                let status = Pipe()
                curl.standardOutput = status
                try curl.run()
                try await UplinkProcess.waitAsync(for: curl, timeout: 20)
                return (
                    Int(String(decoding: status.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)) ?? 0,
                    (try? String(contentsOf: body, encoding: .utf8)) ?? ""
                )
            }
            var health = (status: 0, body: "")
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                health = try await get("/health")
                if health.status == 503 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(health.status == 503, "\(health.body)")
            #expect(health.body.contains(#""component_id":"app""#))
            #expect(health.body.contains("cannot read \(logs.path): Permission denied (errno 13)"), "\(health.body)")

            // Many scans later (100 ms apart, over a second): one warning, one error.
            let metrics = try await get("/metrics").body
            let errors = metrics.split(separator: "\n").first { $0.hasPrefix("uplink_component_errors_total{") && $0.contains(#"component_id="app""#) }
            #expect(errors?.hasSuffix(" 1") == true, "\(String(describing: errors))")
            let warnings = log().split(separator: "\n").filter { $0.contains("cannot read a path the source is configured to read") }
            #expect(warnings.count == 1, "\(warnings)")
            #expect(warnings.first?.contains("file.path=\(logs.path)") == true)
            #expect(warnings.first?.contains("file.errno=13") == true)
        }
    }
}
