import ArgumentParser
import IoTCore
import Logging
import UplinkCore
import UplinkPlugins

struct Publish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish one message with an iotcore_http sink's device, like curl for this interface.",
        discussion: "The body comes from --file or standard input ('-'); at most 131072 bytes. Exits 7 when no connection can be made, 28 when nothing answered within --timeout, 22 when IoT-Core refused the credentials or the message."
    )

    @Argument(help: "Configuration files with an iotcore_http sink.")
    var configs: [String]

    @Option(help: "The topic (default: the sink's topic).")
    var topic: String?

    @Option(help: "File with the body, or - for standard input.")
    var file: String = "-"

    @Option(help: "The sink's id, when the configuration has several.")
    var sink: String?

    @Option(help: "Give up after this long (30s, 500ms, or seconds).", transform: parseTimeout)
    var timeout: Duration = .seconds(30)

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        try logging.bootstrap()
        let target = try iotCoreTarget(configs: configs, sink: sink)
        let body: [UInt8]
        do {
            body = try FileIO.readFile(file == "-" ? "/dev/stdin" : file, limit: 16 << 20)
        } catch {
            printError("uplink: cannot read \(file == "-" ? "standard input" : file): \(error.reason)")
            throw ExitCode(1)
        }
        if body.count > IoTCoreClient.maxBodyBytes {
            printError("the body is \(body.count) bytes; IoT-Core accepts at most \(IoTCoreClient.maxBodyBytes)")
            throw ExitCode(1)
        }
        let logger = Logger(label: "uplink.publish")
        let topic = self.topic ?? target.defaultTopic
        let outcome = try await IoTCoreOneShot.run(target, timeout: timeout, logger: logger) { client in
            try await client.publish(topic: topic, body: body)
        }
        switch outcome {
        case .delivered(let messageID):
            printOut("published \(body.count) bytes to \(topic): MessageID \(messageID)\n")
        case .rejected(let retCode, let reason), .tooLarge(let retCode, let reason):
            printError("IoT-Core refused the message (RetCode \(retCode.map(String.init) ?? "none")): \(reason)")
            throw ExitCode(IoTCoreOneShot.refused)
        }
    }
}
