import Foundation

extension UplinkProcess {
    /// ``run(_:input:environment:timeout:)`` waiting without blocking a thread of the shared pool: the unit
    /// tests that run alongside need both of a 2-core machine's pool threads for their own bounded waits.
    static func runAsync(
        _ arguments: [String], input: Data, environment: [String: String] = [:], timeout: TimeInterval = 60
    ) async throws -> Result {
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
        try await waitAsync(for: process, timeout: timeout)
        return Result(
            status: process.terminationStatus, stdout: try Data(contentsOf: stdoutFile),
            stderr: String(decoding: try Data(contentsOf: stderrFile), as: UTF8.self))
    }

    /// Polls `condition` every 50 ms until it holds or `seconds` pass, without blocking a pool thread.
    static func waitUntil(_ seconds: TimeInterval, _ condition: () throws -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try condition()
    }
}
