import Logging
import Synchronization

/// What a reconfiguration did, by component id.
public struct ReloadSummary: Sendable, Equatable, CustomStringConvertible {
    /// Same configuration: kept running, at most rewired to new inputs or outputs.
    public var kept: [String] = []
    /// Changed configuration: drained and replaced by a new instance reading the same input edge.
    public var replaced: [String] = []
    public var added: [String] = []
    /// No longer configured: stopped (sources) or drained to the end of their input (transforms, sinks).
    public var removed: [String] = []

    public var description: String {
        "kept \(kept.count), replaced \(replaced.count) \(replaced), added \(added.count) \(added), "
            + "removed \(removed.count) \(removed)"
    }
}

/// What ``Pipeline/reconfigure(to:)`` did.
public enum ReconfigureOutcome: Sendable {
    /// The new topology runs now.
    case applied(ReloadSummary)
    /// The change cannot be applied to the running pipeline (why given); nothing was changed. Drain the pipeline
    /// and start a new one instead.
    case restartRequired(String)
}

extension Pipeline {
    /// Applies a new topology to the running pipeline without stopping what did not change.
    ///
    /// A component is kept when its fingerprint (type and options, not inputs) and input kind are the same; a
    /// kept one only has its fanout rewired. A changed one is replaced: the old instance finishes as if its
    /// input had ended (a source is stopped), so it flushes, delivers and checkpoints, and only then does the
    /// new instance start, so state such as a tail checkpoint, an output file or a disk buffer is never open
    /// twice. The successor reads the same edge, which producers keep filling meanwhile (back-pressure, nothing
    /// lost); when the buffer settings or the kind of events change, it gets a new memory edge and the old
    /// instance first drains the old one. An old instance that does not finish within `shutdown_timeout` (a
    /// sink that cannot reach its endpoint, which is often what the reload fixes) is cancelled, as at
    /// shutdown: a disk buffer then hands what it had in flight to the successor again; from a memory buffer
    /// it is reported undelivered to its source, whose checkpoint stays before it for the next start.
    ///
    /// Changes of the global settings or plugins, a component's role, or a disk buffer's settings or event
    /// kind need a restart: the outcome says so and nothing is touched. Throws (changing nothing) when a new
    /// disk buffer cannot be opened.
    public func reconfigure(to new: Topology) async throws -> ReconfigureOutcome {
        let busy = reconfiguring.withLock { busy in
            defer { busy = true }
            return busy
        }
        if busy { return .restartRequired("another reload is in progress") }
        defer { reconfiguring.withLock { $0 = false } }

        let (old, current, running) = live.withLock { ($0.topology, $0.components, !$0.ended) }
        guard running, !stopSignal.isFired else { return .restartRequired("the pipeline is stopping") }
        guard old.globalFingerprint == new.globalFingerprint else {
            return .restartRequired("global settings or plugins changed")
        }

        var summary = ReloadSummary()
        /// Replaced consumers that need an edge of their own: their input kind or memory buffer changed.
        var freshEdges: Set<String> = []
        for node in new.nodes {
            guard let previous = old.node(node.id) else {
                summary.added.append(node.id)
                continue
            }
            guard previous.role == node.role else {
                return .restartRequired("'\(node.id)' changed from a \(previous.role.rawValue) to a \(node.role.rawValue)")
            }
            // A fused stage (``InlineEdge``) that no longer qualifies (a second input, a `buffer:` of its own) is
            // replaced by an instance reading a channel.
            let unfused = current[node.id]?.input?.isInline == true && !LiveComponent.fuses(node, in: new)
            if previous.fingerprint == node.fingerprint && previous.inputKind == node.inputKind && !unfused {
                summary.kept.append(node.id)
                continue
            }
            summary.replaced.append(node.id)
            if unfused {
                freshEdges.insert(node.id)
            } else if node.role != .source && (previous.buffer != node.buffer || previous.inputKind != node.inputKind) {
                // The old edge drains into the old instance while a new one fills; two disk buffers in one
                // directory cannot be open at once, so a disk buffer involved means a restart.
                guard previous.buffer.kind == .memory && node.buffer.kind == .memory else {
                    return .restartRequired("'\(node.id)' changed its disk buffer or what it buffers")
                }
                freshEdges.insert(node.id)
            }
        }
        summary.removed = old.nodes.map(\.id).filter { new.node($0) == nil }

        // Everything that can fail comes first, so a failure leaves the running pipeline untouched.
        var inputs: [String: any ErasedChannel] = [:]
        for id in summary.added + freshEdges.sorted() {
            inputs[id] = try LiveComponent.makeInput(for: new.node(id)!, in: new, logger: logger)
        }
        for id in summary.kept + summary.replaced where !freshEdges.contains(id) { inputs[id] = current[id]!.input }

        var next: [String: LiveComponent] = [:]
        var successors: [LiveComponent] = []
        for node in new.nodes {
            if summary.kept.contains(node.id) {
                next[node.id] = current[node.id]!
            } else {
                let instance = LiveComponent.make(node, input: inputs[node.id], global: new.global, logger: logger)
                next[node.id] = instance
                successors.append(instance)
            }
        }

        live.withLock { $0.holds += 1 }
        defer {
            live.withLock { $0.holds -= 1 }
            settle()
        }

        // Rewire. Every edge that stays is held open while fanouts let go of it and others take it, so a consumer
        // whose producers change never sees its input end in between.
        let staying = new.nodes.compactMap { inputs[$0.id] }
        for edge in staying { edge.addProducer() }
        for node in new.nodes { next[node.id]!.wire(in: new, inputs: inputs) }
        // Removed transforms and sinks drain to the end of their input: once rewired, only removed or replaced
        // producers still feed them, and those finish below.
        for edge in staying { edge.finishProducer() }

        live.withLock { state in
            state.topology = new
            state.components = next
        }
        let added = Set(summary.added)
        for node in new.nodes.reversed() where added.contains(node.id) { launch(next[node.id]!) }
        for id in summary.removed where current[id]!.isSource { current[id]!.stop.fire() }
        logger.notice("reloading in place", metadata: ["reload": "\(summary)"])

        let deadline = new.global.shutdownTimeout
        await withTaskGroup(of: Void.self) { group in
            for id in summary.replaced {
                let retiring = current[id]!
                let successor = next[id]!
                group.addTask { await self.swap(retiring, for: successor, deadline: deadline) }
            }
        }
        return .applied(summary)
    }

    /// Lets `retiring` finish (a source is stopped, a consumer reads the end of its input, or of its old edge
    /// once its producers have moved to the successor's), then starts `successor`.
    private func swap(_ retiring: LiveComponent, for successor: LiveComponent, deadline: Duration) async {
        let sameEdge = retiring.input != nil && retiring.input === successor.input
        if retiring.isSource {
            retiring.stop.fire()
        } else if sameEdge {
            retiring.input?.detachConsumer()
        }
        let finishedInTime = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await retiring.finished.wait()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: deadline)
                return false
            }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
        if !finishedInTime {
            logger.warning(
                "the replaced instance did not drain within shutdown_timeout; cancelling what it still has in flight",
                metadata: ["component_id": "\(retiring.id)", "shutdown.timeout": "\(deadline)"])
            retiring.stop.fire()
            await retiring.finished.wait()
        }
        if sameEdge { await successor.input?.attachConsumer() }
        launch(successor)
    }
}
