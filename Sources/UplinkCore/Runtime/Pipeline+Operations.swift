import Synchronization

/// One component of a running pipeline as operators see it: identity, counters, input buffer, life cycle.
public struct ComponentStatus: Sendable {
    public var id: String
    public var type: String
    public var role: ComponentRole
    /// The live counters (read them with ``ComponentMetrics/snapshot``).
    public var metrics: ComponentMetrics
    /// The component's input buffer now; nil for sources.
    public var buffer: BufferStatus?
    /// Its named outputs (a `route`'s), which `uplink tap <id>.<output>` watches one by one.
    public var outputNames: [String]
    /// Whether it runs in its producer's task (a fused stage: no buffer of its own, see ``InlineTransform``).
    public var fused: Bool

    public init(
        id: String, type: String, role: ComponentRole, metrics: ComponentMetrics, buffer: BufferStatus?,
        outputNames: [String] = [], fused: Bool = false
    ) {
        self.id = id
        self.type = type
        self.role = role
        self.metrics = metrics
        self.buffer = buffer
        self.outputNames = outputNames
        self.fused = fused
    }
}

extension Pipeline {
    /// Every component in topological order (sources first), with its input buffer's state now.
    public var componentStatuses: [ComponentStatus] {
        let (nodes, components) = live.withLock { ($0.topology.nodes, $0.components) }
        return nodes.compactMap { node in
            guard let component = components[node.id] else { return nil }
            return ComponentStatus(
                id: node.id, type: node.type, role: node.role, metrics: component.metrics,
                buffer: component.input?.status, outputNames: node.outputNames,
                fused: component.input?.isInline ?? false)
        }
    }

    /// Every component has been started and the pipeline is not stopping: `/ready`.
    public var isReady: Bool {
        !stopSignal.isFired && metrics.values.allSatisfy { $0.state != .pending }
    }

    /// Whether the pipeline was asked to stop (a signal, the end of every source, or a failure) and is draining.
    public var isStopping: Bool { stopSignal.isFired }
}
