import ArgumentParser
import IoTCore
import Logging
import UplinkCore
import UplinkPlugins

#if canImport(Glibc)
import Glibc
#endif

/// Picks the `iotcore_http` sink a one-shot command uses.
func iotCoreTarget(configs: [String], sink: String?) throws -> IoTCoreTarget {
    guard let topology = loadTopology(paths: configs) else { throw ExitCode(exitConfigError) }
    let targets = IoTCoreTarget.all(in: topology)
    if let sink {
        guard let target = targets.first(where: { $0.sinkID == sink }) else {
            printError("no iotcore_http sink with id '\(sink)' (found: \(targets.map(\.sinkID).joined(separator: ", ")))")
            throw ExitCode(exitConfigError)
        }
        return target
    }
    guard let first = targets.first else {
        printError("the configuration has no iotcore_http sink")
        throw ExitCode(exitConfigError)
    }
    if targets.count > 1 { printError("several iotcore_http sinks; using '\(first.sinkID)' (choose with --sink)") }
    return first
}

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

struct Publish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish one message with an iotcore_http sink's device, like curl for this interface.",
        discussion: "The body comes from --file or standard input ('-'); at most 131072 bytes."
    )

    @Argument(help: "Configuration files with an iotcore_http sink.")
    var configs: [String]

    @Option(help: "The topic (default: the sink's topic).")
    var topic: String?

    @Option(help: "File with the body, or - for standard input.")
    var file: String = "-"

    @Option(help: "The sink's id, when the configuration has several.")
    var sink: String?

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        try logging.bootstrap()
        let target = try iotCoreTarget(configs: configs, sink: sink)
        let body: [UInt8]
        do {
            body = try FileIO.readFile(file == "-" ? "/dev/stdin" : file, limit: 16 << 20)
        } catch {
            printError("\(error)")
            throw ExitCode(1)
        }
        if body.count > IoTCoreClient.maxBodyBytes {
            printError("the body is \(body.count) bytes; IoT-Core accepts at most \(IoTCoreClient.maxBodyBytes)")
            throw ExitCode(1)
        }
        let logger = Logger(label: "uplink.publish")
        let topic = self.topic ?? target.defaultTopic
        do {
            let outcome = try await target.withClient(logger: logger) { client in
                try await client.publish(topic: topic, body: body)
            }
            switch outcome {
            case .delivered(let messageID):
                printOut("published \(body.count) bytes to \(topic): MessageID \(messageID)\n")
            case .rejected(let retCode, let reason), .tooLarge(let retCode, let reason):
                printError("refused (RetCode \(retCode.map(String.init) ?? "none")): \(reason)")
                throw ExitCode(1)
            }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            printError("publish failed: \(error)")
            throw ExitCode(1)
        }
    }
}
