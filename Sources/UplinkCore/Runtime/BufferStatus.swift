/// The state of a transform's or sink's input buffer (a memory channel or a disk buffer), for the API.
public struct BufferStatus: Sendable, Equatable {
    public var kind: BufferConfig.Kind
    /// Events waiting to be read.
    public var events: Int
    /// The capacity in events (memory buffers).
    public var maxEvents: Int?
    /// Bytes on disk (disk buffers), or payload bytes held (memory buffers with `max_size`).
    public var bytes: Int?
    /// The capacity in bytes (disk buffers, and memory buffers with `max_size`).
    public var maxBytes: Int?
    /// Events discarded because the buffer was full (`when_full: drop_newest | drop_oldest`).
    public var droppedFull: Int
    /// Events discarded because the consumer had stopped.
    public var droppedConsumerGone: Int
    /// Records found damaged (torn or corrupted) and skipped (disk buffers).
    public var damagedRecords: Int

    public init(
        kind: BufferConfig.Kind, events: Int, maxEvents: Int? = nil, bytes: Int? = nil, maxBytes: Int? = nil,
        droppedFull: Int = 0, droppedConsumerGone: Int = 0, damagedRecords: Int = 0
    ) {
        self.kind = kind
        self.events = events
        self.maxEvents = maxEvents
        self.bytes = bytes
        self.maxBytes = maxBytes
        self.droppedFull = droppedFull
        self.droppedConsumerGone = droppedConsumerGone
        self.damagedRecords = damagedRecords
    }

    /// How full the buffer is, from 0 to 1.
    public var fillRatio: Double {
        if let maxEvents, maxEvents > 0 { return min(1, Double(events) / Double(maxEvents)) }
        if let bytes, let maxBytes, maxBytes > 0 { return min(1, Double(bytes) / Double(maxBytes)) }
        return 0
    }
}
