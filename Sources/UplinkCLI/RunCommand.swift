import ArgumentParser
import Logging
import ServiceLifecycle
import UnixSignals
import UplinkCore

#if canImport(Glibc)
import Glibc
#endif

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the pipeline described by one or more configuration files.",
        discussion: """
            SIGINT or SIGTERM stops the sources, drains every channel and flushes the sinks, then exits 0 \
            (within the config's shutdown_timeout). At the end of all sources' input (stdin at EOF) the \
            pipeline drains and exits 0. An invalid configuration exits 78.
            """
    )

    @Argument(help: "Configuration files (YAML); their components are merged.")
    var configs: [String]

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        try logging.bootstrap()
        // A closed stdout must be an error the sink reports, not a silent kill.
        signal(SIGPIPE, SIG_IGN)
        let logger = Logger(label: "uplink")
        guard let topology = loadTopology(paths: configs) else { throw ExitCode(exitConfigError) }

        let pipeline: Pipeline
        do {
            pipeline = try Pipeline(topology: topology, logger: logger)
        } catch {
            logger.error("cannot start the pipeline", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: Self.operationsServices(for: pipeline, logger: logger)
                    + [.init(service: pipeline, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        logger.info(
            "pipeline started",
            metadata: [
                "pipeline.components": "\(topology.nodes.count)",
                "pipeline.configs": "\(configs.joined(separator: ","))",
            ])
        do {
            try await group.run()
        } catch {
            logger.error("pipeline stopped with an error", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        logger.info("pipeline stopped")
    }
}
