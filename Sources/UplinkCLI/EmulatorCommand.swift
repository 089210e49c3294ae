import ArgumentParser
import IoTCoreEmulator
import Logging
import ServiceLifecycle
import UnixSignals
import UplinkCore
import UplinkOperations
import UplinkYAML

struct Emulator: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a local IoT-Core HTTPS emulator: /auth, /topic, the exact RetCodes, fault injection.",
        discussion: """
            Devices come from a YAML file:

              devices:
                - product_sn: abcdefgh12345678
                  device_sn: device001
                  secret: s3cr3tKey0000000
                  disabled: false                  # optional
                  publish_acl: ["/abcdefgh12345678/device001/#", "/$system/abcdefgh12345678/device001/#"]

            Accepted messages are listed at GET /_emulator/messages; faults can be changed at run time with
            POST /_emulator/faults.
            """
    )

    @Option(help: "YAML file listing the devices.") var devices: String
    @Option(help: "Address to listen on (loopback by default).") var host: String = "127.0.0.1"
    @Option(help: "Port (0 picks a free one).") var port: Int = 8443
    @Flag(help: "Serve plain HTTP instead of TLS (for debugging only).") var noTLS = false
    @Option(help: "PEM certificate chain to serve instead of a generated one.") var cert: String?
    @Option(help: "PEM private key for --cert.") var key: String?
    @Option(help: "Where to write the generated CA certificate (PEM).") var caOut: String?
    @Option(help: "Token lifetime, e.g. 7d, 1h, 2s.") var tokenLifetime: String = "7d"
    @Option(help: "Append every accepted message to this JSON-lines file.") var acceptedLog: String?
    @Option(name: .customLong("ratio-130"), help: "Fraction of publishes answered 130 (0-1).") var ratio130: Double = 0
    @Option(name: .customLong("ratio-100077"), help: "Fraction of publishes answered 100077 (0-1).") var ratio100077: Double = 0
    @Option(help: "Added latency per answer, e.g. 50ms.") var latency: String = "0"
    @Option(help: "Accepted messages kept in memory for GET /_emulator/messages (the oldest are dropped).")
    var maxRetainedMessages: Int = 10_000
    @Option(help: "Body bytes of those messages kept in memory, e.g. 64MiB.") var maxRetainedBytes: String = "64MiB"

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        try logging.bootstrap()
        let logger = Logger(label: "uplink.emulator")
        guard let lifetime = ValueParsing.duration(tokenLifetime) else {
            throw ValidationError("--token-lifetime must be a duration like 7d, 1h or 2s")
        }
        guard let addedLatency = ValueParsing.duration(latency) else {
            throw ValidationError("--latency must be a duration like 50ms")
        }
        guard let retainedBytes = ValueParsing.size(maxRetainedBytes) else {
            throw ValidationError("--max-retained-bytes must be a size like 64MiB or 1000000")
        }
        let tls: EmulatorTLS
        if noTLS {
            tls = .none
        } else if let cert {
            guard let key else { throw ValidationError("--cert needs --key") }
            tls = .files(certificateChain: cert, privateKey: key)
        } else {
            tls = .selfSigned(caCertificateOutput: caOut)
        }
        let configuration = EmulatorConfiguration(
            host: host, port: port, tls: tls, devices: try loadDevices(devices), tokenLifetime: lifetime,
            faults: EmulatorFaults(ratio130: ratio130, ratio100077: ratio100077, latency: addedLatency),
            acceptedLogPath: acceptedLog, maxRetainedMessages: maxRetainedMessages, maxRetainedBytes: retainedBytes)
        for problem in configuration.problems() { printError("emulator: \(problem)") }
        if !configuration.problems().isEmpty { throw ExitCode(exitConfigError) }
        let emulator = try IoTCoreEmulator(configuration: configuration, logger: logger)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: emulator)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let bound: Int
            do {
                bound = try await emulator.waitUntilReady()
            } catch let error as EmulatorError where error.code == .notListening {
                // `bind(descriptor:ptr:bytes:): Address already in use (errno: 98)` is NIO's; say it for people.
                printError("emulator: cannot listen on \(host):\(port): \(SocketFailure.describe(error.underlying ?? error))")
                throw ExitCode(1)
            }
            let scheme = noTLS ? "http" : "https"
            printOut("IoT-Core emulator listening on \(scheme)://\(host):\(bound)\(caOut.map { " (CA certificate: \($0))" } ?? "")\n")
            try await tasks.waitForAll()
        }
    }

    /// Reads the devices file with located errors.
    func loadDevices(_ path: String) throws -> [EmulatorDevice] {
        let diagnostics = DiagnosticCollector()
        var result: [EmulatorDevice] = []
        do {
            let root = try YAMLParser.parse(try FileIO.readFile(path, limit: 4 << 20), file: path)
            var interpolated = root
            var errors: [YAMLError] = []
            Interpolator(environment: processEnvironment()).interpolate(&interpolated, file: path, errors: &errors)
            for error in errors { diagnostics.error(error.message, file: path, at: error.mark) }
            let top = ConfigReader(
                node: interpolated, file: path, options: [OptionSpec("devices", .any, required: true, "the devices")],
                diagnostics: diagnostics)
            top.finish()
            let deviceOptions = [
                OptionSpec("product_sn", .string, required: true, "ProductSN"),
                OptionSpec("device_sn", .string, required: true, "DeviceSN"),
                OptionSpec("secret", .string, required: true, secret: true, "DeviceSecret"),
                OptionSpec("disabled", .bool, default: "false", "answer 100072 to its /auth"),
                OptionSpec("publish_acl", .stringList, "topic filters it may publish to (+ and # wildcards)"),
            ]
            if let list = top.value("devices") {
                if let items = list.sequence {
                    for item in items {
                        let reader = ConfigReader(node: item, file: path, options: deviceOptions, diagnostics: diagnostics)
                        guard item.mapping != nil else {
                            diagnostics.error("each device must be a mapping", file: path, at: item.mark)
                            continue
                        }
                        reader.finish()
                        result.append(
                            EmulatorDevice(
                                productSN: reader.string("product_sn") ?? "", deviceSN: reader.string("device_sn") ?? "",
                                secret: reader.secret("secret") ?? "", disabled: reader.bool("disabled", default: false),
                                publishACL: reader.stringList("publish_acl")))
                    }
                } else {
                    diagnostics.error("'devices' must be a list", file: path, at: list.mark)
                }
            }
        } catch let error as YAMLError {
            diagnostics.error(error.message, file: path, at: error.mark)
        } catch let error as FileIO.Failure {
            diagnostics.error("cannot read \(path): \(error.reason)", file: path, at: ConfigDiagnostic.wholeFile)
        } catch {
            diagnostics.error("\(error)", file: path, at: ConfigDiagnostic.wholeFile)
        }
        for diagnostic in diagnostics.diagnostics { printError(diagnostic.description) }
        if diagnostics.hasErrors { throw ExitCode(exitConfigError) }
        return result
    }
}
