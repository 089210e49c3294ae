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
            (within the config's shutdown_timeout; the log says what the drain is waiting for). A sink behind \
            a disk buffer does not wait for the cloud: its requests in flight are cancelled and their records \
            stay in the buffer for the next start. A second SIGINT or SIGTERM stops at once (exit 1). At the end of all sources' input (stdin at EOF) the \
            pipeline drains and exits 0. An invalid configuration exits 78. SIGHUP (or a changed file with \
            --watch) reloads the configuration: an invalid one is logged and the running pipeline kept; a \
            valid one replaces it after draining, so nothing in flight is lost.
            """
    )

    @Argument(help: "Configuration files (YAML); their components are merged.")
    var configs: [String]

    @Flag(help: "Reload when a configuration file changes (as on SIGHUP).")
    var watch = false

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        try logging.bootstrap()
        // A closed stdout must be an error the sink reports, not a silent kill.
        signal(SIGPIPE, SIG_IGN)
        let logger = Logger(label: "uplink")
        guard let topology = loadTopology(paths: configs) else { throw ExitCode(exitConfigError) }

        // With `api:`, nothing is read before the listener is bound: a failed bind then costs no input.
        let listening = topology.global.api == nil ? nil : StopSignal()
        let pipeline = ReloadingPipeline(
            configs: configs, initial: topology, watch: watch, logger: logger, startAfter: listening,
            abandoned: Self.exitIfStuck(logger: logger))
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: SecondStopSignal(pipeline: pipeline, logger: logger))]
                    + Self.operationsServices(for: pipeline, logger: logger, onListening: { listening?.fire() })
                    + [.init(service: pipeline, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        defer { logging.flushSuppressed() }
        do {
            try await group.run()
        } catch {
            logger.error("pipeline stopped with an error", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        logger.info("pipeline stopped")
    }
}
