import Logging
import ServiceLifecycle
import Synchronization

/// Runs a ``Topology``: one task per component under structured concurrency, joined by bounded edges.
///
/// Shutdown drains in order: sources are cancelled, their outboxes finish, every transform and sink ends when
/// its input ends, so everything already read is processed. A sink behind a disk buffer does not wait for the
/// cloud: once its producers have written everything into the buffer, its requests in flight are cancelled and
/// their records stay in the buffer for the next start. While draining, the log says every few seconds which
/// component is still working on how many events. If draining takes longer than `shutdown_timeout`, or
/// ``stopNow()`` is called (a second signal), the remaining work is cancelled and `abandoned` is called, so
/// the caller can end the process if a component does not even stop when cancelled. A component that fails
/// is logged with its id, its input is closed (so producers never wait for it forever), and the whole
/// pipeline stops and reports it.
///
/// A running pipeline can be given a new topology (``reconfigure(to:)``): unchanged components keep running,
/// changed ones are drained and replaced in place, and the edges are rewired, so nothing in flight is lost.
public final class Pipeline: Service, Sendable {
    let logger: Logger
    let stopSignal = StopSignal()
    /// Fired when a stop is asked for (SIGINT/SIGTERM, ``stop()``, ``stopNow()``), not when every source ended
    /// by itself: only then does a disk-buffered sink stop without waiting for the cloud. At the end of input
    /// (stdin at EOF) what was read is still delivered, within `shutdown_timeout`.
    let stopRequested = StopSignal()
    /// Fired by ``stopNow()``: stop without draining.
    let immediateStop = StopSignal()
    /// Called once when the pipeline gives up draining (deadline or ``stopNow()``) and cancels what is left,
    /// with a way to ask which components have still not ended.
    let abandoned: @Sendable (_ unfinished: @escaping @Sendable () -> [String]) -> Void
    let failures = FailureLog()
    let live: Mutex<LiveState>
    /// Instances to start, in the order they are handed over; finished once the last instance has ended.
    let launches: AsyncStream<LiveComponent>
    /// Serialises reconfigurations.
    let reconfiguring = Mutex(false)

    struct LiveState {
        var topology: Topology
        /// The current instance of every component by id (a replaced one's successor once it is swapped in).
        var components: [String: LiveComponent]
        /// Instances whose task has not ended, old ones draining during a reload included.
        var running = 0
        var runningSources = 0
        /// Reconfigurations in progress: while one is, the pipeline does not end for lack of sources.
        var holds = 0
        var ended = false
        var launcher: AsyncStream<LiveComponent>.Continuation
    }

    /// Creates the pipeline's edges and instances; throws when a disk buffer cannot be opened.
    ///
    /// - Parameter abandoned: called once if draining is given up (see the type's description).
    public init(
        topology: Topology, logger: Logger,
        abandoned: @escaping @Sendable (_ unfinished: @escaping @Sendable () -> [String]) -> Void = { _ in }
    ) throws {
        self.logger = logger
        self.abandoned = abandoned
        let (launches, launcher) = AsyncStream<LiveComponent>.makeStream()
        self.launches = launches
        var inputs: [String: any ErasedChannel] = [:]
        for node in topology.nodes {
            inputs[node.id] = try LiveComponent.makeInput(for: node, in: topology, logger: logger)
        }
        var components: [String: LiveComponent] = [:]
        for node in topology.nodes {
            components[node.id] = LiveComponent.make(node, input: inputs[node.id], global: topology.global, logger: logger)
        }
        for node in topology.nodes { components[node.id]!.wire(in: topology, inputs: inputs) }
        live = Mutex(LiveState(topology: topology, components: components, launcher: launcher))
        for node in topology.nodes { launch(components[node.id]!) }
    }

    /// The topology running now (the latest one applied by ``reconfigure(to:)``).
    public var topology: Topology { live.withLock { $0.topology } }

    /// Metrics of every component by id.
    public var metrics: [String: ComponentMetrics] { live.withLock { $0.components.mapValues(\.metrics) } }

    /// Events waiting in a component's input edge (nil for sources).
    public func bufferedEvents(of id: String) -> Int? { live.withLock { $0.components[id]?.input?.bufferedEvents } }

    /// Events a component's input edge discarded under a drop policy.
    public func droppedEvents(of id: String) -> Int? { live.withLock { $0.components[id]?.input?.droppedEvents } }

    /// Asks the pipeline to stop: sources stop, everything in flight drains. Safe to call from anywhere.
    public func stop() {
        stopRequested.fire()
        stopSignal.fire()
    }

    /// Stops at once: nothing more is delivered, what a disk buffer holds stays there (a second SIGINT/SIGTERM).
    public func stopNow() {
        stopRequested.fire()
        stopSignal.fire()
        immediateStop.fire()
    }

    public func run() async throws {
        let stopSignal = self.stopSignal

        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { outer in
                outer.addTask { await self.runComponents() }
                outer.addTask {
                    await stopSignal.wait()
                    try Task.checkCancellation()
                    try await self.watchDrain()
                }
                // Whichever ends first: the components (a normal end) or the drain's watchdog.
                do {
                    try await outer.next()
                } catch let error as PipelineError {
                    logger.error(
                        error.isDeadline
                            ? "shutdown deadline exceeded; cancelling what is still in flight"
                            : "stopping at once; cancelling what is still in flight (a disk buffer keeps it)",
                        metadata: ["shutdown.timeout": "\(topology.global.shutdownTimeout)"])
                    outer.cancelAll()
                    abandoned { [self] in unfinishedComponents() }
                    while (try? await outer.next()) != nil {}
                    throw error
                }
                outer.cancelAll()
            }
        } onGracefulShutdown: { [stopRequested] in
            stopRequested.fire()
            stopSignal.fire()
        }

        let failed = failures.all
        if !failed.isEmpty { throw PipelineError.componentsFailed(failed) }
    }

    private func runComponents() async {
        await withDiscardingTaskGroup { group in
            // Stopping the pipeline stops its sources; the rest drains behind them.
            group.addTask {
                await self.stopSignal.wait()
                let sources = self.live.withLock { $0.components.values.filter(\.isSource) }
                if !sources.isEmpty {
                    self.logger.info("stopping sources", metadata: ["pipeline.sources": "\(sources.count)"])
                }
                for source in sources { source.stop.fire() }
            }
            group.addTask {
                await self.stopRequested.wait()
                await self.cancelDiskBufferedSinks()
            }
            for await component in launches {
                group.addTask {
                    await component.run(failures: self.failures, pipelineStop: self.stopSignal)
                    self.ended(component)
                }
            }
            group.cancelAll()
        }
    }

    /// Counts an instance as running and hands it to the task group.
    func launch(_ component: LiveComponent) {
        live.withLock { state in
            state.running += 1
            if component.isSource { state.runningSources += 1 }
            state.launcher.yield(component)
        }
        // A source launched after the stop was fired must stop too (the stop forwarder already ran).
        if component.isSource && stopSignal.isFired { component.stop.fire() }
    }

    private func ended(_ component: LiveComponent) {
        live.withLock { state in
            state.running -= 1
            if component.isSource { state.runningSources -= 1 }
        }
        settle()
    }

    /// Ends the pipeline when nothing runs, and drains it once every source has ended by itself (stdin at EOF):
    /// that is a drain like any other, so the shutdown deadline applies and a sink that can never deliver cannot
    /// hang the process. Neither happens while a reconfiguration is swapping instances.
    func settle() {
        let allSourcesEnded = live.withLock { state -> Bool in
            guard state.holds == 0 else { return false }
            if state.running == 0 && !state.ended {
                state.ended = true
                state.launcher.finish()
            }
            return state.runningSources == 0
        }
        if allSourcesEnded { stopSignal.fire() }
    }
}

/// Why a pipeline ended with an error.
public enum PipelineError: Error, Sendable, CustomStringConvertible {
    case componentsFailed([(String, String)])
    case shutdownDeadlineExceeded(Duration)
    case stoppedAtOnce

    var isDeadline: Bool {
        if case .shutdownDeadlineExceeded = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .componentsFailed(let failures):
            return failures.map { "component '\($0.0)' failed: \($0.1)" }.joined(separator: "; ")
        case .shutdownDeadlineExceeded(let deadline):
            return "the pipeline did not drain within shutdown_timeout (\(deadline))"
        case .stoppedAtOnce:
            return "stopped at once by a second signal; what was in flight was not delivered (a disk buffer keeps it)"
        }
    }
}
