import Foundation

extension UplinkProcess {
    /// ``run(_:input:environment:timeout:)`` waiting without blocking a thread of the shared pool: the unit
    /// tests that run alongside need both of a 2-core machine's pool threads for their own bounded waits.
    static func runAsync(
        _ arguments: [String], input: Data, environment: [String: String] = [:], timeout: TimeInterval = 60
    ) async throws -> Result {
        let launched = try launch(arguments, input: input, environment: environment)
        try await waitAsync(for: launched.process, timeout: timeout)
        return try launched.result()
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
