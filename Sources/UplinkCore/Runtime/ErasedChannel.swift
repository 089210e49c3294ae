/// The type-independent face of an ``EventChannel``, so the runtime can hold the edges of a graph whose
/// event types are only known at run time.
protocol ErasedChannel: Sendable {
    var bufferedEvents: Int { get }
    var droppedEvents: Int { get }
    func addProducer()
    func closeReceiver()
}

extension EventChannel: ErasedChannel {}
