/// The type-independent face of an edge (``EventChannel`` or ``DiskBuffer``), so the runtime can hold the
/// edges of a graph whose event types are only known at run time.
protocol ErasedChannel: AnyObject, Sendable {
    var bufferedEvents: Int { get }
    var droppedEvents: Int { get }
    /// Fill level and drops, for the API and `/metrics`.
    var status: BufferStatus { get }
    func addProducer()
    func finishProducer()
    /// Async: a disk buffer's last sync and ledger write run on its own thread while the caller suspends.
    func closeReceiver() async
    func detachConsumer()
    func attachConsumer() async
    var isConsumerDetached: Bool { get }
    /// Counts the edge's own failures (a disk buffer's failed syncs) in its consumer's metrics.
    func reportFailures(to metrics: ComponentMetrics)
    /// Whether the edge runs its consumer in the producer's task (``InlineEdge``) rather than buffering for it.
    var isInline: Bool { get }
}

extension ErasedChannel {
    func reportFailures(to metrics: ComponentMetrics) {}
    var isInline: Bool { false }
}

extension EventChannel: ErasedChannel {
    var status: BufferStatus {
        let dropped = droppedEvents
        let overflow = overflowDroppedEvents
        let bounded = maxBytes != .max
        return BufferStatus(
            kind: .memory, events: bufferedEvents, maxEvents: capacity, bytes: bounded ? bufferedBytes : nil,
            maxBytes: bounded ? maxBytes : nil, droppedFull: overflow, droppedConsumerGone: dropped - overflow)
    }
}

/// The type-independent face of a ``Fanout``: the runtime rewires producers without knowing their event type.
protocol ErasedFanout: Sendable {
    /// Sends into `edges` from now on. The topology checked every edge's kind, so the casts hold.
    func replace(withErased edges: [any ErasedChannel])
    func finish()
}

extension Fanout: ErasedFanout {
    func replace(withErased edges: [any ErasedChannel]) {
        replace(with: edges.map { edge in
            guard let typed = edge as? any EventEdge<E> else {
                preconditionFailure("edge type mismatch reached the runtime: expected \(E.kind)")
            }
            return typed
        })
    }
}
