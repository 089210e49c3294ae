import ArgumentParser
import IoTCore
import Logging
import UplinkCore
import UplinkPlugins

struct DeadLetters: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead-letters",
        abstract: "Work with dead-letter files.",
        subcommands: [Replay.self]
    )

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-send what a dead-letter file holds, once the cause is fixed (an ACL, a topic, a size).",
            discussion: """
                Each line's payload is published to its topic with the device of the configuration's \
                iotcore_http sink. What is delivered leaves the file; what is refused again stays in it (the \
                file is replaced atomically), so the command can be run again after the next fix. Exit 0 when \
                everything was delivered, 1 when some lines remain.
                """
        )

        @Argument(help: "The dead-letter file (JSON lines).")
        var file: String

        @Option(name: .customLong("config"), help: "Configuration file(s) with the iotcore_http sink to use.")
        var configs: [String]

        @Option(help: "The sink's id, when the configuration has several.")
        var sink: String?

        @OptionGroup var logging: LoggingOptions

        func run() async throws {
            try logging.bootstrap()
            guard !configs.isEmpty else { throw ValidationError("give the pipeline's configuration with --config") }
            let target = try iotCoreTarget(configs: configs, sink: sink)
            let bytes: [UInt8]
            do {
                bytes = try FileIO.readFile(file, limit: 1 << 30)
            } catch {
                printError("uplink: cannot read \(file): \(error.reason)")
                throw ExitCode(1)
            }
            let lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: true)
            let logger = Logger(label: "uplink.dead-letters")
            var remaining: [ArraySlice<UInt8>] = []
            var delivered = 0
            var malformed = 0
            var refused: [String: Int] = [:]
            // done/total, rate and ETA on a terminal; quiet when stderr is not one.
            let progress = ProgressLine(label: "replaying dead letters", total: lines.count, unit: .events)
            defer { progress.finish() }
            try await target.withClient(logger: logger) { client in
                for (index, line) in lines.enumerated() {
                    progress.update(done: index)
                    guard case .object(let fields)? = try? JSONReader.parse(line),
                        case .string(let encoded)? = fields["payload_base64"], let payload = Base64.decode(encoded)
                    else {
                        malformed += 1
                        remaining.append(line)
                        continue
                    }
                    var topic = target.defaultTopic
                    if case .string(let own)? = fields["topic"] { topic = own }
                    switch try await client.publish(topic: topic, body: payload) {
                    case .delivered:
                        delivered += 1
                    case .rejected(let retCode, let reason), .tooLarge(let retCode, let reason):
                        refused["\(retCode.map(String.init) ?? "local"): \(reason)", default: 0] += 1
                        remaining.append(line)
                    }
                }
            }
            var rewritten: [UInt8] = []
            for line in remaining {
                rewritten.append(contentsOf: line)
                rewritten.append(0x0A)
            }
            try FileIO.writeFileAtomically(file, rewritten, mode: 0o600)
            printOut("replayed \(lines.count) dead letters: \(delivered) delivered, \(remaining.count) remain in \(file)\n")
            for (reason, count) in refused.sorted(by: { $0.key < $1.key }) {
                printOut("  \(count) refused again (RetCode \(reason))\n")
            }
            if malformed > 0 { printOut("  \(malformed) lines are not dead letters and were left as they are\n") }
            if !remaining.isEmpty { throw ExitCode(1) }
        }
    }
}
