import ArgumentParser
import IoTCore
import Logging
import UplinkPlugins

/// Runs one IoT-Core call of a one-shot command (`uplink auth`, `uplink publish`) within `--timeout` and
/// ends it the way curl does: one line with the reason on standard error and curl's exit code.
///
/// | exit | when |
/// |---|---|
/// | 7 | no connection could be made (refused, unreachable, name not resolved): at once, no retry |
/// | 28 | no answer within `--timeout` (transient failures are retried until then) |
/// | 22 | the service refused: a RetCode that retrying cannot change (credentials, ACL, size) |
/// | 1 | anything else (TLS, malformed answers) |
enum IoTCoreOneShot {
    static let couldNotConnect: Int32 = 7
    static let timedOut: Int32 = 28
    static let refused: Int32 = 22

    /// `--timeout` went by; the last failure the client saw, if any.
    struct DeadlinePassed: Error {
        var lastFailure: String?
    }

    static func run<T: Sendable>(
        _ target: IoTCoreTarget, timeout: Duration, logger: Logger, _ body: @escaping @Sendable (IoTCoreClient) async throws -> T
    ) async throws -> T {
        do {
            return try await target.withClient(logger: logger, oneShot: timeout) { client in
                try await withThrowingTaskGroup(of: T?.self) { group in
                    group.addTask { try await body(client) }
                    group.addTask {
                        try await Task.sleep(for: timeout)
                        return nil
                    }
                    defer { group.cancelAll() }
                    guard let first = try await group.next(), let result = first else {
                        throw DeadlinePassed(lastFailure: client.failure?.reason)
                    }
                    return result
                }
            }
        } catch let deadline as DeadlinePassed {
            let why = deadline.lastFailure.map { ": last failure: \($0)" } ?? ": no answer"
            printError("gave up after \(timeout.formatted) against \(target.endpointDescription)\(why)")
            throw ExitCode(timedOut)
        } catch let error as IoTCoreError {
            let cause = error.underlying as? IoTCoreError
            switch error.code == .retriesExhausted ? cause?.code : error.code {
            case .connect?:
                printError("could not connect to \(target.endpointDescription): \(cause?.message ?? error.message)")
                throw ExitCode(couldNotConnect)
            case .timeout?:
                printError("no answer from \(target.endpointDescription): \(cause?.message ?? error.message)")
                throw ExitCode(timedOut)
            case .credentials?:
                // The message already names the RetCode ("RetCode 171 (signature error): …").
                printError(
                    "IoT-Core refused the device's credentials: \(cause?.message ?? error.message); "
                        + "check product_sn, device_sn and device_secret")
                throw ExitCode(refused)
            default:
                if error.retCode != nil {
                    printError("IoT-Core refused: \(cause?.message ?? error.message)")
                    throw ExitCode(refused)
                }
                printError("failed: \(cause?.message ?? error.message)")
                throw ExitCode(1)
            }
        }
    }
}

extension Duration {
    /// `30s`, `1.5s`: how `--timeout` is written.
    fileprivate var formatted: String {
        let (seconds, attoseconds) = components
        if attoseconds == 0 { return "\(seconds)s" }
        return "\(Double(seconds) + Double(attoseconds) / 1e18)s"
    }
}
