import ArgumentParser
import IoTCore
import Logging
import UplinkPlugins

struct Auth: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Authenticate an iotcore_http sink's device and print when its token expires (never the token)."
    )

    @Argument(help: "Configuration files with an iotcore_http sink.")
    var configs: [String]

    @Option(help: "The sink's id, when the configuration has several.")
    var sink: String?

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        try logging.bootstrap()
        let target = try iotCoreTarget(configs: configs, sink: sink)
        let logger = Logger(label: "uplink.auth")
        do {
            let token = try await target.withClient(logger: logger) { client in try await client.authenticate() }
            printOut("authenticated \(target.productSN)/\(target.deviceSN): token expires \(token.expiresAt) (\(token.expirySource.rawValue))\n")
        } catch {
            printError("authentication failed: \(error)")
            throw ExitCode(1)
        }
    }
}
