/// The type-independent face of an ``EventChannel``, so the runtime can hold the edges of a graph whose
/// event types are only known at run time.
protocol ErasedChannel: Sendable {
    var bufferedEvents: Int { get }
    var droppedEvents: Int { get }
    /// Fill level and drops, for the API and `/metrics`.
    var status: BufferStatus { get }
    func addProducer()
    func closeReceiver()
}

extension EventChannel: ErasedChannel {
    var status: BufferStatus {
        let dropped = droppedEvents
        let overflow = overflowDroppedEvents
        return BufferStatus(
            kind: .memory, events: bufferedEvents, maxEvents: capacity, droppedFull: overflow,
            droppedConsumerGone: dropped - overflow)
    }
}
