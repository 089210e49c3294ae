import Logging
import Synchronization

extension Pipeline {
    /// How often a drain in progress logs what it is waiting for.
    static let drainReportInterval: Duration = .seconds(2)

    /// Runs once the stop signal fired: every ``drainReportInterval`` logs the components still draining, and
    /// throws when `shutdown_timeout` has passed or ``stopNow()`` was called. Cancelled when the drain ends.
    func watchDrain() async throws {
        let deadline = topology.global.shutdownTimeout
        let end = ContinuousClock.now + deadline
        while true {
            let now = ContinuousClock.now
            if now >= end { throw PipelineError.shutdownDeadlineExceeded(deadline) }
            let stoppedAtOnce = await firstOf(sleeping: min(Self.drainReportInterval, end - now), or: immediateStop)
            try Task.checkCancellation()
            if stoppedAtOnce { throw PipelineError.stoppedAtOnce }
            if ContinuousClock.now < end { reportDrain(remaining: end - ContinuousClock.now) }
        }
    }

    /// Sleeps for `duration` unless `signal` fires first; returns true when it did.
    private func firstOf(sleeping duration: Duration, or signal: StopSignal) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                try? await Task.sleep(for: duration)
                return false
            }
            group.addTask {
                await signal.wait()
                return !Task.isCancelled
            }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
    }

    /// One line per component that has not ended: what it still holds (events waiting in its input, events
    /// taken but not yet passed on or delivered).
    func reportDrain(remaining: Duration) {
        let components = live.withLock { state in
            state.topology.nodes.compactMap { state.components[$0.id] }.filter { !$0.finished.isFired }
        }
        for component in components {
            let counters = component.metrics.snapshot
            var metadata: Logger.Metadata = [
                "component_id": "\(component.id)", "component_type": "\(component.node.type)",
                "shutdown.remaining": "\(remaining)",
            ]
            if let input = component.input {
                metadata["drain.waiting_events"] = "\(input.bufferedEvents)"
                let inFlight = counters.receivedEvents - counters.sentEvents - counters.droppedEvents
                if component.node.role == .sink { metadata["drain.in_flight_events"] = "\(max(0, inFlight))" }
            }
            logger.notice(
                component.isSource ? "still stopping: waiting for a source to stop" : "still draining: waiting for a component",
                metadata: metadata)
        }
    }

    /// A sink behind a disk buffer does not wait for the cloud when a stop is asked for: once every producer has finished
    /// (everything read is in the buffer), its requests in flight are cancelled; the buffer keeps their
    /// records, unacknowledged, for the next start.
    func cancelDiskBufferedSinks() async {
        let plans = live.withLock { state -> [(sink: LiveComponent, producers: [LiveComponent])] in
            state.components.values.filter { $0.node.role == .sink && $0.input?.status.kind == .disk }.map { sink in
                let producers = state.topology.nodes.filter { state.topology.consumers(of: $0.id).contains(sink.id) }
                    .compactMap { state.components[$0.id] }
                return (sink, producers)
            }
        }
        await withDiscardingTaskGroup { group in
            for (sink, producers) in plans {
                group.addTask {
                    for producer in producers { await producer.finished.wait() }
                    guard !Task.isCancelled, !sink.finished.isFired else { return }
                    self.logger.info(
                        "cancelling the requests in flight; the disk buffer keeps their records for the next start",
                        metadata: [
                            "component_id": "\(sink.id)", "buffer.events": "\(sink.input?.bufferedEvents ?? 0)",
                        ])
                    sink.stop.fire()
                }
            }
        }
    }

    /// The ids of the components whose task has not ended.
    func unfinishedComponents() -> [String] {
        live.withLock { state in
            state.topology.nodes.compactMap { state.components[$0.id] }.filter { !$0.finished.isFired }.map(\.id)
        }
    }
}
