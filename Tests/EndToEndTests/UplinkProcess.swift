import Foundation
import Testing

/// Runs the built `uplink` binary as a user would: real process, real pipes, real files.
struct UplinkProcess {
    /// The `uplink` executable next to the test bundle in the build directory, or `UPLINK_E2E_BINARY` (to run
    /// the same tests against another build, e.g. main's, for a before/after figure).
    static var executable: URL {
        if let override = ProcessInfo.processInfo.environment["UPLINK_E2E_BINARY"] { return URL(fileURLWithPath: override) }
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = testBinary.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("uplink")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        let fallback = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".build/debug/uplink")
        return fallback
    }

    struct Result {
        var status: Int32
        var stdout: Data
        var stderr: String
        var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    }

    /// Runs to completion, feeding `input` on stdin (then closing it). Bounded by `timeout`.
    static func run(_ arguments: [String], input: Data = Data(), environment: [String: String] = [:], timeout: TimeInterval = 60) throws -> Result {
        let launched = try launch(arguments, input: input, environment: environment)
        try wait(for: launched.process, timeout: timeout)
        return try launched.result()
    }

    /// A started `uplink` whose stdout and stderr go to files, read once it has ended.
    struct Launched {
        let process: Process
        let stdout: URL
        let stderr: URL

        func result() throws -> Result {
            Result(
                status: process.terminationStatus, stdout: try Data(contentsOf: stdout),
                stderr: String(decoding: try Data(contentsOf: stderr), as: UTF8.self))
        }
    }

    /// Starts `uplink` with `input` written to its stdin (then closed) by a thread of its own.
    static func launch(_ arguments: [String], input: Data, environment: [String: String]) throws -> Launched {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        let stdinPipe = Pipe()
        let stdoutFile = try temporaryFile("stdout")
        let stderrFile = try temporaryFile("stderr")
        process.standardInput = stdinPipe
        process.standardOutput = try FileHandle(forWritingTo: stdoutFile)
        process.standardError = try FileHandle(forWritingTo: stderrFile)
        try process.run()
        let writer = Thread {
            try? stdinPipe.fileHandleForWriting.write(contentsOf: input)
            try? stdinPipe.fileHandleForWriting.close()
        }
        writer.start()
        return Launched(process: process, stdout: stdoutFile, stderr: stderrFile)
    }

    static func wait(for process: Process, timeout: TimeInterval) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline {
                process.interrupt()
                kill(process.processIdentifier, SIGKILL)
                throw TimeoutError()
            }
            usleep(10_000)
        }
    }

    struct TimeoutError: Error {}

    static func temporaryFile(_ name: String) throws -> URL {
        let url = temporaryDirectory().appendingPathComponent(name)
        FileManager.default.createFile(atPath: url.path, contents: nil)
        return url
    }

    static func temporaryDirectory() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("uplink-e2e-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func writeConfig(_ yaml: String, name: String = "pipeline.yaml") throws -> String {
        let url = temporaryDirectory().appendingPathComponent(name)
        try yaml.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }
}
