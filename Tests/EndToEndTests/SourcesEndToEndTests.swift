import Foundation
import Testing

/// A log file written the way applications and logrotate do it: appended line by line, rotated by rename
/// (the application reopens a moment later) or by copytruncate (the application keeps its descriptor).
final class RotatingLog {
    let path: String
    private var fd: Int32
    private(set) var written = 0

    init(path: String) {
        self.path = path
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
    }

    deinit { close(fd) }

    /// Writes `count` lines `line-N ...`, pausing now and then as a real writer does.
    func write(_ count: Int) {
        for _ in 0..<count {
            let line = Array("line-\(written) temperature=21.5 humidity=40 status=ok\n".utf8)
            _ = line.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
            written += 1
            if written % 100 == 0 { usleep(2000) }
        }
    }

    /// Shifts `.1` to `.2` (dropping the older one), so rotated names never match `*.log`.
    private func shift() {
        unlink(path + ".2")
        rename(path + ".1", path + ".2")
    }

    /// logrotate's default: rename, create; the application writes a few more lines to the old file, then
    /// reopens.
    func rotateByRename() {
        shift()
        rename(path, path + ".1")
        write(3)
        close(fd)
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
    }

    /// logrotate's copytruncate: copy, then truncate in place; the application keeps writing (O_APPEND).
    func rotateByCopyTruncate() throws {
        shift()
        try FileManager.default.copyItem(atPath: path, toPath: path + ".1")
        _ = truncate(path, 0)
    }
}

/// Runs `uplink run` in the background with stderr kept, stopped with SIGTERM as a service manager does.
final class RunningAgent {
    let process = Process()
    let stderrPath: String

    init(config: String, directory: URL) throws {
        stderrPath = directory.appendingPathComponent("agent-\(UUID().uuidString).log").path
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = UplinkProcess.executable
        process.arguments = ["run", config]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        try process.run()
    }

    var log: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Waits for a log line (for example the source's first "tailing file"), so signals find the handlers.
    func waitForLog(_ text: String, timeout: TimeInterval = 20) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if log.contains(text) { return true }
            usleep(10_000)
        }
        return false
    }

    func stop() throws -> Int32 {
        kill(process.processIdentifier, SIGTERM)
        try UplinkProcess.wait(for: process, timeout: 30)
        return process.terminationStatus
    }
}

extension EndToEnd {
    @Suite(.serialized, .timeLimit(.minutes(2))) struct SourcesEndToEndTests {
        /// Every `line-N` for N below `count` exactly once.
        func expectEachOnce(_ output: String, count: Int) {
            var seen = [Int](repeating: 0, count: count)
            var unexpected: [Substring] = []
            for line in output.split(separator: "\n") {
                guard line.hasPrefix("line-"), let end = line.firstIndex(of: " "),
                    let number = Int(line[line.index(line.startIndex, offsetBy: 5)..<end]), number < count
                else {
                    unexpected.append(line)
                    continue
                }
                seen[number] += 1
            }
            let missing = seen.indices.filter { seen[$0] == 0 }
            let twice = seen.indices.filter { seen[$0] > 1 }
            #expect(unexpected.isEmpty, "unexpected lines: \(unexpected.prefix(5))")
            #expect(missing.isEmpty, "\(missing.count) lines missing, first \(missing.prefix(10))")
            #expect(twice.isEmpty, "\(twice.count) lines delivered twice, first \(twice.prefix(10))")
        }

        @Test func tailThroughRotationsAndRestartsDeliversEveryLineExactlyOnce() throws {
            let directory = UplinkProcess.temporaryDirectory()
            let logs = directory.appendingPathComponent("logs").path
            try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
            let output = directory.appendingPathComponent("out.log").path
            let config = try UplinkProcess.writeConfig(
                """
                data_dir: \(directory.path)/state
                shutdown_timeout: 20s
                sources:
                  app:
                    type: file
                    include: ['\(logs)/*.log']
                    rotate_wait: 500ms
                    scan_interval: 200ms
                sinks:
                  archive: { type: file, inputs: [app], path: '\(output)' }
                """)
            let log = RotatingLog(path: logs + "/app.log")
            log.write(500)
            func outputLines() -> Int {
                (try? String(contentsOfFile: output, encoding: .utf8))?.split(separator: "\n").count ?? 0
            }
            /// Waits until everything written so far was delivered (the output is the readiness signal).
            func waitForEverythingWritten() {
                let deadline = Date().addingTimeInterval(30)
                while outputLines() < log.written, Date() < deadline { usleep(20_000) }
            }

            // Run 1: rotation by rename while running; stopped while lines are still being written.
            var agent = try RunningAgent(config: config, directory: directory)
            #expect(agent.waitForLog("tailing file"))
            log.write(700)
            log.rotateByRename()
            log.write(700)
            #expect(try agent.stop() == 0, "\(agent.log)")

            // Stopped: more lines, then a rename rotation the agent does not see happen.
            log.write(400)
            log.rotateByRename()
            log.write(400)

            // Run 2: finds the rotated file by its inode and finishes it; copytruncate while running.
            agent = try RunningAgent(config: config, directory: directory)
            #expect(agent.waitForLog("reading the rest of a file rotated while stopped"))
            log.write(600)
            try log.rotateByCopyTruncate()
            log.write(600)
            // Seen while running: a truncation the agent has not noticed yet when it stops, followed by a second
            // copytruncate while it is stopped, leaves a copy it cannot know by its first bytes (by design).
            waitForEverythingWritten()
            #expect(try agent.stop() == 0, "\(agent.log)")

            // Stopped: copytruncate the agent does not see.
            log.write(300)
            try log.rotateByCopyTruncate()
            log.write(300)

            // Run 3: finds the copy by its first bytes and finishes it; everything arrives exactly once.
            agent = try RunningAgent(config: config, directory: directory)
            #expect(agent.waitForLog("reading the rest of a file rotated while stopped"))
            log.write(500)
            let total = log.written
            waitForEverythingWritten()
            // Stopping drains the pipeline: anything extra (a duplicate) is in the output once the agent has exited.
            #expect(try agent.stop() == 0, "\(agent.log)")
            expectEachOnce(try String(contentsOfFile: output, encoding: .utf8), count: total)
        }

        @Test func stdinAtEndOfFileDeliversEverythingAndExitsZero() throws {
            let output = UplinkProcess.temporaryDirectory().appendingPathComponent("out.log").path
            let config = try UplinkProcess.writeConfig(
                """
                sources:
                  in: { type: stdin, max_line_bytes: 16, long_lines: split }
                sinks:
                  out: { type: file, inputs: [in], path: '\(output)' }
                """)
            var input = Data()
            for index in 0..<30_000 { input.append(contentsOf: Array("\(index) 0123456789abcdef\n".utf8)) }
            input.append(contentsOf: Array("tail without newline".utf8))
            let result = try UplinkProcess.run(["run", config], input: input)
            #expect(result.status == 0, "\(result.stderr)")
            let lines = try String(contentsOfFile: output, encoding: .utf8).split(
                separator: "\n", omittingEmptySubsequences: false)
            // Each line is split into pieces of at most 16 bytes; joined back they are the input.
            #expect(lines.allSatisfy { $0.utf8.count <= 16 })
            #expect(
                lines.dropLast().joined() == (0..<30_000).map { "\($0) 0123456789abcdef" }.joined() + "tail without newline"
            )
        }

        @Test func examplePipelinesValidate() throws {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("pipelines")
            for name in ["file-tail-to-file.yaml", "serial-to-stdout.yaml", "exec-to-stdout.yaml"] {
                let result = try UplinkProcess.run(["validate", root.appendingPathComponent(name).path])
                #expect(result.status == 0, "\(name): \(result.stderr)")
            }
        }
    }
}
