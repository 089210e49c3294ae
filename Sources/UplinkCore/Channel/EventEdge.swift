/// An edge of the graph: what a producer's ``Outbox`` sends into and a consumer's ``Inbox`` reads from.
///
/// ``EventChannel`` (memory, the default) and ``DiskBuffer`` (append-only segments that survive restarts and
/// power cuts) both are edges, so a sink's `buffer:` setting changes durability without changing any stage.
public protocol EventEdge<Element>: AnyObject, Sendable {
    associatedtype Element: Event

    /// Sends a chunk, suspending while the edge is full under the `block` policy. Consumed, so an edge that hands
    /// it on (``InlineEdge``) keeps the events' array uniquely referenced.
    func send(_ chunk: consuming EventChunk<Element>) async throws
    /// The next chunk; nil once every producer has finished and everything is read.
    func next() async -> EventChunk<Element>?
    /// The next chunk if one is ready now, without suspending; nil when a read would wait, has ended, or the edge
    /// cannot tell (then ``next()`` answers). Spares ``Inbox/next(until:)`` its timer and child tasks while the
    /// consumer is behind its input.
    func nextIfReady() -> EventChunk<Element>?
    /// Registers one producer; the edge ends after each has called ``finishProducer()``.
    func addProducer()
    func finishProducer()
    /// The consumer is gone: release waiting producers and refuse further chunks. Async, so an edge that must
    /// sync first (a disk buffer) suspends its caller instead of blocking a cooperative-pool thread.
    func closeReceiver() async
    /// Ends the input of the consumer reading now, without ending the edge: its pending and later ``next()``
    /// calls return nil (so it flushes and finishes as at the end of its input), while producers keep sending
    /// and the buffer keeps what they send. Used when a reload replaces the consumer.
    func detachConsumer()
    /// Hands the edge to a new consumer after ``detachConsumer()``: ``next()`` delivers chunks again.
    func attachConsumer() async
    /// Whether the consumer was detached and none attached since.
    var isConsumerDetached: Bool { get }
    /// Events waiting to be read, for fill-level metrics.
    var bufferedEvents: Int { get }
    /// Events discarded by a drop policy or because the consumer went away.
    var droppedEvents: Int { get }
}

extension EventEdge {
    /// An edge that keeps no chunks ready in memory (a disk buffer reads them from its thread): ``next()`` answers.
    public func nextIfReady() -> EventChunk<Element>? { nil }
}

extension EventChannel: EventEdge {}
