import Synchronization

/// The counters every component reports, under the same names for all (Vector's component spec):
/// events and bytes received and sent, events dropped, and errors. Updated once per chunk, not per event.
public final class ComponentMetrics: Sendable {
    public let receivedEvents = Atomic<Int>(0)
    public let receivedBytes = Atomic<Int>(0)
    public let sentEvents = Atomic<Int>(0)
    public let sentBytes = Atomic<Int>(0)
    public let droppedEvents = Atomic<Int>(0)
    public let errors = Atomic<Int>(0)

    public init() {}

    public func received(events: Int, bytes: Int) {
        receivedEvents.add(events, ordering: .relaxed)
        receivedBytes.add(bytes, ordering: .relaxed)
    }

    public func sent(events: Int, bytes: Int) {
        sentEvents.add(events, ordering: .relaxed)
        sentBytes.add(bytes, ordering: .relaxed)
    }

    public func dropped(_ events: Int) {
        droppedEvents.add(events, ordering: .relaxed)
    }

    public func error(_ count: Int = 1) {
        errors.add(count, ordering: .relaxed)
    }

    /// A consistent-enough snapshot for summaries and the API.
    public var snapshot: Snapshot {
        Snapshot(
            receivedEvents: receivedEvents.load(ordering: .relaxed),
            receivedBytes: receivedBytes.load(ordering: .relaxed),
            sentEvents: sentEvents.load(ordering: .relaxed),
            sentBytes: sentBytes.load(ordering: .relaxed),
            droppedEvents: droppedEvents.load(ordering: .relaxed),
            errors: errors.load(ordering: .relaxed)
        )
    }

    public struct Snapshot: Sendable, Equatable {
        public var receivedEvents: Int
        public var receivedBytes: Int
        public var sentEvents: Int
        public var sentBytes: Int
        public var droppedEvents: Int
        public var errors: Int
    }
}
