import Logging
import ServiceLifecycle

/// Runs a ``Topology``: one task per component under structured concurrency, joined by bounded channels.
///
/// Shutdown drains in order: sources are cancelled, their outboxes finish, every transform and sink ends when
/// its input ends, so everything already read is processed. If draining takes longer than
/// `shutdown_timeout`, the remaining work is cancelled. A component that fails is logged with its id, its
/// input is closed (so producers never wait for it forever), and the whole pipeline stops and reports it.
public final class Pipeline: Service, Sendable {
    public let topology: Topology
    let logger: Logger
    let stopSignal = StopSignal()
    let plan: ExecutionPlan

    /// Creates the pipeline's edges; throws when a disk buffer cannot be opened.
    public init(topology: Topology, logger: Logger) throws {
        self.topology = topology
        self.logger = logger
        self.plan = try ExecutionPlan(topology: topology, logger: logger)
    }

    /// Metrics of every component by id.
    public var metrics: [String: ComponentMetrics] { plan.metrics }

    /// Events waiting in a component's input channel (nil for sources).
    public func bufferedEvents(of id: String) -> Int? { plan.inputChannels[id]?.bufferedEvents }

    /// Events a component's input channel discarded under a drop policy.
    public func droppedEvents(of id: String) -> Int? { plan.inputChannels[id]?.droppedEvents }

    /// Asks the pipeline to stop: sources stop, everything in flight drains. Safe to call from anywhere.
    public func stop() { stopSignal.fire() }

    public func run() async throws {
        let plan = self.plan
        let failures = FailureLog()
        let stopSignal = self.stopSignal
        let logger = self.logger
        let deadline = topology.global.shutdownTimeout

        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { outer in
                outer.addTask {
                    await Self.runComponents(plan, stopSignal: stopSignal, failures: failures, logger: logger)
                }
                outer.addTask {
                    await stopSignal.wait()
                    try Task.checkCancellation()
                    try await Task.sleep(for: deadline)
                    throw PipelineError.shutdownDeadlineExceeded(deadline)
                }
                // Whichever ends first: the components (a normal end) or the shutdown watchdog.
                do {
                    try await outer.next()
                } catch {
                    logger.error(
                        "shutdown deadline exceeded; cancelling what is still in flight",
                        metadata: ["shutdown.timeout": "\(deadline)"])
                    outer.cancelAll()
                    while (try? await outer.next()) != nil {}
                    throw error
                }
                outer.cancelAll()
            }
        } onGracefulShutdown: {
            stopSignal.fire()
        }

        let failed = failures.all
        if !failed.isEmpty { throw PipelineError.componentsFailed(failed) }
    }

    private static func runComponents(
        _ plan: ExecutionPlan, stopSignal: StopSignal, failures: FailureLog, logger: Logger
    ) async {
        await withTaskGroup(of: Void.self) { group in
            // Sources run in their own group so that stopping them all is one cancelAll.
            group.addTask {
                await withTaskGroup(of: Bool.self) { sources in
                    for launch in plan.sources {
                        sources.addTask {
                            await launch.run(stopSignal: stopSignal, failures: failures)
                            return false
                        }
                    }
                    sources.addTask {
                        await stopSignal.wait()
                        return true
                    }
                    var finished = 0
                    while let isStopSignal = await sources.next() {
                        if isStopSignal {
                            if finished < plan.sources.count {
                                logger.info("stopping sources", metadata: ["pipeline.sources": "\(plan.sources.count - finished)"])
                            }
                            sources.cancelAll()
                        } else {
                            finished += 1
                            // Every source ended by itself (stdin at EOF): this is a drain like any other, so the
                            // shutdown deadline applies and a sink that can never deliver cannot hang the process.
                            if finished == plan.sources.count {
                                stopSignal.fire()
                                sources.cancelAll()
                            }
                        }
                    }
                }
            }
            for launch in plan.consumers {
                group.addTask { await launch.run(stopSignal: stopSignal, failures: failures) }
            }
            await group.waitForAll()
        }
    }
}

/// Why a pipeline ended with an error.
public enum PipelineError: Error, Sendable, CustomStringConvertible {
    case componentsFailed([(String, String)])
    case shutdownDeadlineExceeded(Duration)

    public var description: String {
        switch self {
        case .componentsFailed(let failures):
            return failures.map { "component '\($0.0)' failed: \($0.1)" }.joined(separator: "; ")
        case .shutdownDeadlineExceeded(let deadline):
            return "the pipeline did not drain within shutdown_timeout (\(deadline))"
        }
    }
}
