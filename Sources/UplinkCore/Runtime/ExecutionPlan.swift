import Logging

/// The live objects of a topology: a channel in front of every transform and sink, an outbox behind every
/// source and transform, and one launch closure per component.
struct ExecutionPlan: Sendable {
    struct Launch: Sendable {
        let id: String
        let body: @Sendable (StopSignal, FailureLog) async -> Void

        func run(stopSignal: StopSignal, failures: FailureLog) async {
            await body(stopSignal, failures)
        }
    }

    var sources: [Launch] = []
    var consumers: [Launch] = []
    var metrics: [String: ComponentMetrics] = [:]
    var inputChannels: [String: any ErasedChannel] = [:]

    init(topology: Topology, logger: Logger) throws {
        for node in topology.nodes { metrics[node.id] = ComponentMetrics() }
        // Channels first: every producer needs its consumers' channels.
        for node in topology.nodes {
            switch node.stage {
            case .source: break
            case .transform(let stage): inputChannels[node.id] = Self.makeChannel(inputOf: stage, node.buffer)
            case .sink(let stage):
                inputChannels[node.id] = try Self.makeChannel(
                    inputOf: stage, node.buffer, directory: topology.global.dataDirectory + "/" + node.id + "/buffer",
                    logger: Self.componentLogger(logger, node))
            }
        }
        for node in topology.nodes {
            for _ in node.inputs { inputChannels[node.id]?.addProducer() }
        }
        for node in topology.nodes {
            let downstream = topology.consumers(of: node.id).compactMap { inputChannels[$0] }
            let context = ComponentContext(
                id: node.id, type: node.type, role: node.role,
                logger: Self.componentLogger(logger, node), metrics: metrics[node.id]!,
                dataDirectory: topology.global.dataDirectory)
            switch node.stage {
            case .source(let stage):
                sources.append(Self.launch(stage, context: context, downstream: downstream))
            case .transform(let stage):
                consumers.append(Self.launch(stage, context: context, input: inputChannels[node.id]!, downstream: downstream))
            case .sink(let stage):
                consumers.append(Self.launch(stage, context: context, input: inputChannels[node.id]!))
            }
        }
    }

    static func componentLogger(_ base: Logger, _ node: Topology.Node) -> Logger {
        var logger = base
        logger[metadataKey: "component_id"] = "\(node.id)"
        logger[metadataKey: "component_type"] = "\(node.type)"
        logger[metadataKey: "component_kind"] = "\(node.role.rawValue)"
        return logger
    }

    private static func makeChannel<T: TransformStage>(inputOf stage: T, _ buffer: BufferConfig) -> any ErasedChannel {
        EventChannel<T.Input>(capacity: buffer.maxEvents, overflowPolicy: buffer.whenFull)
    }

    private static func makeChannel<S: SinkStage>(
        inputOf stage: S, _ buffer: BufferConfig, directory: String, logger: Logger
    ) throws -> any ErasedChannel {
        guard buffer.kind == .disk else {
            return EventChannel<S.Input>(capacity: buffer.maxEvents, overflowPolicy: buffer.whenFull)
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

    /// The topology checked every edge's kind, so these casts hold; a failure here is an engine bug.
    private static func typed<E: Event>(_ channels: [any ErasedChannel], as type: E.Type) -> [any EventEdge<E>] {
        channels.map { channel in
            guard let typed = channel as? any EventEdge<E> else {
                preconditionFailure("edge type mismatch reached the runtime: expected \(E.kind)")
            }
            return typed
        }
    }

    private static func launch<S: SourceStage>(
        _ stage: S, context: ComponentContext, downstream: [any ErasedChannel]
    ) -> Launch {
        let outbox = Outbox(channels: typed(downstream, as: S.Output.self), metrics: context.metrics)
        return Launch(id: context.id) { stopSignal, failures in
            defer { outbox.finish() }
            await supervise(context, stopSignal: stopSignal, failures: failures) {
                try await stage.run(context: context, output: outbox)
            }
        }
    }

    private static func launch<T: TransformStage>(
        _ stage: T, context: ComponentContext, input: any ErasedChannel, downstream: [any ErasedChannel]
    ) -> Launch {
        let channel = typed([input], as: T.Input.self)[0]
        let inbox = Inbox(channel: channel, metrics: context.metrics)
        let outbox = Outbox(channels: typed(downstream, as: T.Output.self), metrics: context.metrics)
        return Launch(id: context.id) { stopSignal, failures in
            defer {
                outbox.finish()
                channel.closeReceiver()
            }
            await supervise(context, stopSignal: stopSignal, failures: failures) {
                try await stage.run(context: context, input: inbox, output: outbox)
            }
        }
    }

    private static func launch<S: SinkStage>(_ stage: S, context: ComponentContext, input: any ErasedChannel) -> Launch {
        let channel = typed([input], as: S.Input.self)[0]
        let inbox = Inbox(channel: channel, metrics: context.metrics)
        return Launch(id: context.id) { stopSignal, failures in
            defer { channel.closeReceiver() }
            await supervise(context, stopSignal: stopSignal, failures: failures) {
                try await stage.run(context: context, input: inbox)
            }
        }
    }

    /// Runs a component body; a failure is logged with the component's id, recorded, and stops the pipeline.
    private static func supervise(
        _ context: ComponentContext, stopSignal: StopSignal, failures: FailureLog,
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
            stopSignal.fire()
        }
    }
}
