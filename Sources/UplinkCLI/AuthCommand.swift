import ArgumentParser
import IoTCore
import Logging
import UplinkCore
import UplinkPlugins

struct Auth: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Authenticate an iotcore_http sink's device and print when its token expires (never the token).",
        discussion: "Exits 7 when no connection can be made, 28 when nothing answered within --timeout, 22 when IoT-Core refused the credentials."
    )

    @Argument(help: "Configuration files with an iotcore_http sink.")
    var configs: [String]

    @Option(help: "The sink's id, when the configuration has several.")
    var sink: String?

    @Option(help: "Give up after this long (30s, 500ms, or seconds).", transform: parseTimeout)
    var timeout: Duration = .seconds(30)

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        try logging.bootstrap()
        let target = try iotCoreTarget(configs: configs, sink: sink)
        let logger = Logger(label: "uplink.auth")
        let token = try await IoTCoreOneShot.run(target, timeout: timeout, logger: logger) { client in
            try await client.authenticate()
        }
        printOut("authenticated \(target.productSN)/\(target.deviceSN): token expires \(token.expiresAt) (\(token.expirySource.rawValue))\n")
    }
}

/// `--timeout` of the one-shot commands: a duration as in configs, or a number of seconds as curl's
/// `--max-time`; positive.
func parseTimeout(_ text: String) throws -> Duration {
    let duration = Double(text).map { Duration.milliseconds(Int64(($0 * 1000).rounded())) } ?? ValueParsing.duration(text)
    guard let duration, duration > .zero else {
        throw ValidationError("--timeout must be a positive duration such as 30s or 500ms, got '\(text)'")
    }
    return duration
}
