/// The unit that travels on an edge: several events and the acknowledgements they carry.
///
/// Edges move chunks, not single events (as Vector's sources send ~1000 events at a time), so the hot path
/// pays one hand-over, one lock and one metric update per chunk.
public struct EventChunk<E: Event>: Sendable {
    public var events: [E]
    public var acknowledgements: Acknowledgements

    public init(_ events: [E], acknowledgements: Acknowledgements = .none) {
        self.events = events
        self.acknowledgements = acknowledgements
    }

    public var count: Int { events.count }
    public var isEmpty: Bool { events.isEmpty }

    public var byteCount: Int { E.totalByteCount(of: events) }
}

extension EventChunk {
    /// A full edge's `when_full: drop_*` discarded this chunk. That is the final answer the operator configured,
    /// counted, like a dead letter: its sources hear it as such, so a file tail's checkpoint moves past it
    /// instead of stalling for the rest of the run and re-reading everything after it at the next start.
    func discardedByPolicy() {
        acknowledgements.resolve(.delivered)
    }
}
