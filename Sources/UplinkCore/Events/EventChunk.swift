/// The unit that travels on an edge: several events and the acknowledgements they carry.
///
/// Edges move chunks, not single events (as Vector's sources send ~1000 events at a time), so the hot path
/// pays one hand-over, one lock and one metric update per chunk.
public struct EventChunk<E: Event>: Sendable {
    /// Any change (in place or replaced) forgets the measured byte count. The observer does not read `oldValue`,
    /// so changes still happen in place (no copy of the array).
    public var events: [E] {
        didSet { measuredBytes = -1 }
    }
    public var acknowledgements: Acknowledgements
    /// The events' summed ``Event/byteCount`` once measured, -1 until then: an outbox measures each chunk it sends,
    /// and the inbox downstream, a byte-bounded channel and a sink's metrics read the figure instead of walking
    /// every event again (for records, every field). Each hop used to walk the chunk twice.
    private var measuredBytes = -1

    public init(_ events: [E], acknowledgements: Acknowledgements = .none) {
        self.events = events
        self.acknowledgements = acknowledgements
    }

    public var count: Int { events.count }
    public var isEmpty: Bool { events.isEmpty }

    /// The events' summed payload bytes: the measured figure when there is one, else a walk of the events.
    public var byteCount: Int { measuredBytes >= 0 ? measuredBytes : E.totalByteCount(of: events) }

    /// Measures the byte count once and keeps it with the chunk (until `events` changes); returns it.
    public mutating func measureByteCount() -> Int {
        if measuredBytes < 0 { measuredBytes = E.totalByteCount(of: events) }
        return measuredBytes
    }

    /// Takes the events out, leaving the chunk empty, so that a stage can change them where they are: the array is
    /// then referenced once and copy-on-write copies nothing. The measured byte count stays readable as
    /// ``measuredByteCount`` until ``restore(_:byteCount:)``.
    public mutating func takeEvents() -> [E] {
        let measured = measuredBytes
        var taken: [E] = []
        swap(&taken, &events)
        measuredBytes = measured
        return taken
    }

    /// The byte count measured upstream, nil when the chunk was not measured or changed since.
    public var measuredByteCount: Int? { measuredBytes >= 0 ? measuredBytes : nil }

    /// Puts back events taken out with ``takeEvents()`` (leaving `events` empty), with their byte count when the
    /// caller knows it (the count measured before, less what it removed); nil: measured again when needed.
    public mutating func restore(_ events: inout [E], byteCount: Int?) {
        swap(&self.events, &events)
        measuredBytes = byteCount ?? -1
    }
}

extension EventChunk {
    /// A full edge's `when_full: drop_*` discarded this chunk. That is the final answer the operator configured,
    /// counted, like a dead letter: its sources hear it as such, so a file tail's checkpoint moves past it
    /// instead of stalling for the rest of the run and re-reading everything after it at the next start.
    func discardedByPolicy() {
        acknowledgements.resolve(.delivered)
    }
}
