import Logging

/// One running instance of a component: its stage, the edge it reads and the fanout it sends into.
///
/// The edge in front of a transform or sink belongs to the component's id, not to the instance: when a reload
/// replaces the instance, the successor reads the same edge, so nothing buffered there is lost and producers
/// never notice. The fanout belongs to the instance and is rewired by the runtime.
final class LiveComponent: Sendable {
    let node: Topology.Node
    let metrics: ComponentMetrics
    /// The edge in front of a transform or sink; nil for sources.
    let input: (any ErasedChannel)?
    /// Where a source or transform sends; nil for sinks.
    let output: (any ErasedFanout)?
    /// The named outputs of a transform that has them (``NamedOutputStage``), by name.
    let namedOutputs: [String: any ErasedFanout]
    /// Sources: stop reading. Transforms and sinks: abandon what is in flight (a drain past its deadline).
    let stop = StopSignal()
    /// Fires once the instance's task has ended.
    let finished = StopSignal()
    private let body: @Sendable (FailureLog, StopSignal) async -> Void

    var id: String { node.id }
    var isSource: Bool { node.role == .source }

    private init(
        node: Topology.Node, metrics: ComponentMetrics, input: (any ErasedChannel)?, output: (any ErasedFanout)?,
        namedOutputs: [String: any ErasedFanout] = [:],
        body: @escaping @Sendable (FailureLog, StopSignal) async -> Void
    ) {
        self.node = node
        self.metrics = metrics
        self.input = input
        self.output = output
        self.namedOutputs = namedOutputs
        self.body = body
    }

    /// Points the default output and every named output at the input edges of their consumers in `topology`.
    func wire(in topology: Topology, inputs: [String: any ErasedChannel]) {
        output?.replace(withErased: topology.consumers(of: id).compactMap { inputs[$0] })
        for (name, fanout) in namedOutputs {
            fanout.replace(withErased: topology.consumers(of: id, output: name).compactMap { inputs[$0] })
        }
    }

    /// Runs the stage until it ends, or until ``stop`` fires (which cancels it).
    func run(failures: FailureLog, pipelineStop: StopSignal) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.body(failures, pipelineStop) }
            group.addTask { await self.stop.wait() }
            await group.next()
            group.cancelAll()
        }
        finished.fire()
    }

    // MARK: Building

    /// The edge in front of a transform or sink: an ``InlineEdge`` for a transform that ``fuses(_:in:)``, a memory
    /// channel, or for a sink with `buffer.type: disk` a disk buffer in `<data_dir>/<id>/buffer`. Nil for sources.
    static func makeInput(for node: Topology.Node, in topology: Topology, logger: Logger) throws -> (any ErasedChannel)? {
        let global = topology.global
        switch node.stage {
        case .source: return nil
        case .transform(let stage):
            if fuses(node, in: topology), let inline = stage as? any InlineTransform {
                return inlineEdge(inputOf: inline, node.buffer)
            }
            return memoryChannel(inputOf: stage, node.buffer)
        case .sink(let stage):
            return try sinkChannel(
                inputOf: stage, node.buffer, directory: global.dataDirectory + "/" + node.id + "/buffer",
                logger: componentLogger(logger, node))
        }
    }

    /// A new instance of `node` reading `input` (from ``makeInput(for:in:logger:)``, or the edge of the
    /// instance it replaces). Its fanout starts empty: the runtime wires it.
    static func make(
        _ node: Topology.Node, input: (any ErasedChannel)?, global: GlobalConfig, logger: Logger
    ) -> LiveComponent {
        let metrics = ComponentMetrics()
        let context = ComponentContext(
            id: node.id, type: node.type, role: node.role, logger: componentLogger(logger, node), metrics: metrics,
            dataDirectory: global.dataDirectory)
        switch node.stage {
        case .source(let stage):
            return source(stage, node: node, context: context)
        case .transform(let stage):
            return transform(stage, node: node, context: context, input: input!)
        case .sink(let stage):
            return sink(stage, node: node, context: context, input: input!)
        }
    }

    static func componentLogger(_ base: Logger, _ node: Topology.Node) -> Logger {
        var logger = base
        logger[metadataKey: "component_id"] = "\(node.id)"
        logger[metadataKey: "component_type"] = "\(node.type)"
        logger[metadataKey: "component_kind"] = "\(node.role.rawValue)"
        return logger
    }

    /// Whether `node` runs in its producer's task (``InlineEdge``): a transform whose work is a synchronous
    /// function of each chunk (``InlineTransform``), reading exactly one input, which is a transform's (a source
    /// keeps its own task, so reading and parsing overlap), with no `buffer:` settings of its own (a drop policy
    /// or a size bound needs a buffer).
    static func fuses(_ node: Topology.Node, in topology: Topology) -> Bool {
        guard case .transform(let stage) = node.stage, stage is any InlineTransform, node.buffer == BufferConfig(),
            node.inputReferences.count == 1, let producer = topology.node(node.inputReferences[0].id)
        else { return false }
        return producer.role == .transform
    }

    private static func inlineEdge<T: InlineTransform>(inputOf stage: T, _ buffer: BufferConfig) -> any ErasedChannel {
        InlineEdge<T.Input>(capacity: buffer.maxEvents)
    }

    private static func memoryChannel<T: TransformStage>(inputOf stage: T, _ buffer: BufferConfig) -> any ErasedChannel {
        EventChannel<T.Input>(capacity: buffer.maxEvents, maxBytes: buffer.memoryMaxBytes ?? .max, overflowPolicy: buffer.whenFull)
    }

    private static func sinkChannel<S: SinkStage>(
        inputOf stage: S, _ buffer: BufferConfig, directory: String, logger: Logger
    ) throws -> any ErasedChannel {
        guard buffer.kind == .disk else {
            return EventChannel<S.Input>(
                capacity: buffer.maxEvents, maxBytes: buffer.memoryMaxBytes ?? .max, overflowPolicy: buffer.whenFull)
        }
        guard let persistable = S.Input.self as? any PersistableEvent.Type else {
            throw PluginBuildError("events of kind \(S.Input.kind) cannot be buffered on disk")
        }
        func open<P: PersistableEvent>(_: P.Type) throws -> any ErasedChannel {
            try DiskBuffer<P>(
                configuration: DiskBuffer<P>.Configuration(
                    directory: directory, maxBytes: buffer.maxBytes, whenFull: buffer.whenFull,
                    fsyncInterval: buffer.fsyncInterval),
                logger: logger)
        }
        return try open(persistable)
    }

    /// The topology checked every edge's kind, so this cast holds; a failure here is an engine bug.
    private static func typed<E: Event>(_ channel: any ErasedChannel, as type: E.Type) -> any EventEdge<E> {
        guard let typed = channel as? any EventEdge<E> else {
            preconditionFailure("edge type mismatch reached the runtime: expected \(E.kind)")
        }
        return typed
    }

    private static func source<S: SourceStage>(_ stage: S, node: Topology.Node, context: ComponentContext) -> LiveComponent {
        let fanout = Fanout<S.Output>()
        let outbox = Outbox(fanout: fanout, metrics: context.metrics)
        return LiveComponent(node: node, metrics: context.metrics, input: nil, output: fanout) { failures, pipelineStop in
            defer { fanout.finish() }
            await supervise(context, pipelineStop: pipelineStop, failures: failures) {
                try await stage.run(context: context, output: outbox)
            }
        }
    }

    private static func transform<T: TransformStage>(
        _ stage: T, node: Topology.Node, context: ComponentContext, input: any ErasedChannel
    ) -> LiveComponent {
        if let edge = input as? InlineEdge<T.Input>, let inline = stage as? any InlineTransform {
            return fused(inline, node: node, context: context, edge: edge)
        }
        let channel = typed(input, as: T.Input.self)
        let inbox = Inbox(channel: channel, metrics: context.metrics)
        let fanout = Fanout<T.Output>()
        var named: [String: Fanout<T.Output>] = [:]
        for name in (stage as? any NamedOutputStage)?.outputNames ?? [] { named[name] = Fanout<T.Output>() }
        let outbox = Outbox(fanout: fanout, metrics: context.metrics, named: named)
        return LiveComponent(
            node: node, metrics: context.metrics, input: input, output: fanout, namedOutputs: named
        ) { failures, pipelineStop in
            await supervise(context, pipelineStop: pipelineStop, failures: failures) {
                try await stage.run(context: context, input: inbox, output: outbox)
            }
            outbox.finish()
            // A replaced instance leaves its edge, and what is buffered there, to its successor.
            if !channel.isConsumerDetached { await channel.closeReceiver() }
        }
    }

    /// A transform run by its ``InlineEdge`` in the producer's task. Its own task binds it to the edge and waits
    /// until the edge releases it, then finishes as any transform does at the end of its input: the processor's
    /// totals, then its outbox (so what reads it ends in order). A failure while processing is its own.
    private static func fused<T: InlineTransform>(
        _ stage: T, node: Topology.Node, context: ComponentContext, edge: some ErasedChannel
    ) -> LiveComponent {
        guard let edge = edge as? InlineEdge<T.Input> else {
            preconditionFailure("edge type mismatch reached the runtime: expected \(T.Input.kind)")
        }
        let fanout = Fanout<T.Output>()
        let outbox = Outbox(fanout: fanout, metrics: context.metrics)
        return LiveComponent(node: node, metrics: context.metrics, input: edge, output: fanout) { failures, pipelineStop in
            defer {
                outbox.finish()
                if !edge.isConsumerDetached { edge.closeReceiver() }
            }
            await supervise(context, pipelineStop: pipelineStop, failures: failures) {
                let consumer = try InlineConsumer(stage, context: context, outbox: outbox)
                defer { consumer.finish() }
                await edge.serve(consumer)
                try Task.checkCancellation()
                if let failure = consumer.outcome { throw failure }
            }
        }
    }

    private static func sink<S: SinkStage>(
        _ stage: S, node: Topology.Node, context: ComponentContext, input: any ErasedChannel
    ) -> LiveComponent {
        let channel = typed(input, as: S.Input.self)
        let inbox = Inbox(channel: channel, metrics: context.metrics)
        input.reportFailures(to: context.metrics)
        return LiveComponent(node: node, metrics: context.metrics, input: input, output: nil) { failures, pipelineStop in
            await supervise(context, pipelineStop: pipelineStop, failures: failures) {
                try await stage.run(context: context, input: inbox)
            }
            if !channel.isConsumerDetached { await channel.closeReceiver() }
        }
    }

    /// Runs a component body; a failure is logged with the component's id, recorded, and stops the pipeline.
    private static func supervise(
        _ context: ComponentContext, pipelineStop: StopSignal, failures: FailureLog,
        body: () async throws -> Void
    ) async {
        context.metrics.setState(.running)
        do {
            try await body()
            context.metrics.setState(.finished)
            context.logger.debug("component finished")
        } catch is CancellationError {
            context.metrics.setState(.finished)
            context.logger.debug("component stopped")
        } catch is ChannelClosedError {
            context.metrics.setState(.finished)
            context.logger.debug("component stopped: no running downstream component")
        } catch {
            context.metrics.setState(.failed)
            context.metrics.error()
            context.logger.error("component failed", metadata: ["error": "\(error)"])
            failures.record(context.id, error)
            pipelineStop.fire()
        }
    }
}
