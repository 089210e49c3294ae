import Synchronization

/// One event copied out of the pipeline for a reader attached with ``TapPoint/attach(limit:bufferEvents:)``.
public struct TappedEvent: Sendable {
    public var kind: EventKind
    /// The message's topic; nil for other kinds and for messages on the sink's default topic.
    public var topic: String?
    /// The event's one-line text form (as the `stdout` sink prints it).
    public var text: [UInt8]

    public init(kind: EventKind, topic: String?, text: [UInt8]) {
        self.kind = kind
        self.topic = topic
        self.text = text
    }
}

/// Where readers attach to watch the events leaving one component (`uplink tap`), without disturbing it.
///
/// ``Outbox/send(_:)`` checks ``isActive`` (one relaxed atomic load) per chunk; only while a reader is attached
/// does it copy events' text, at most ``maxEventsPerChunk`` per chunk, into each reader's bounded buffer. A
/// full buffer drops the copy (counted in ``droppedCopies``): the pipeline is never slowed by a slow reader.
public final class TapPoint: Sendable {
    /// Events copied per chunk and reader at most: a tap is a sample, not a firehose.
    public static let maxEventsPerChunk = 64

    private struct Reader {
        var continuation: AsyncStream<TappedEvent>.Continuation
        /// Events still to deliver before the reader is finished; nil for no limit.
        var remaining: Int?
    }

    private let readerCount = Atomic<Int>(0)
    private let readers = Mutex<[Int: Reader]>([:])
    private let nextID = Atomic<Int>(0)
    private let dropped = Atomic<Int>(0)

    public init() {}

    /// Whether any reader is attached.
    @inline(__always)
    public var isActive: Bool { readerCount.load(ordering: .relaxed) > 0 }

    /// Copies that were discarded because a reader's buffer was full.
    public var droppedCopies: Int { dropped.load(ordering: .relaxed) }

    /// Attaches a reader. The stream ends after `limit` events (nil: never), or when ``detachAll()`` is called;
    /// ending the iteration (or cancelling its task) detaches it.
    /// - Parameter bufferEvents: events held for a slow reader before further copies are dropped.
    public func attach(limit: Int?, bufferEvents: Int = 256) -> AsyncStream<TappedEvent> {
        let id = nextID.add(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream.makeStream(
            of: TappedEvent.self, bufferingPolicy: .bufferingOldest(max(1, bufferEvents)))
        if let limit, limit <= 0 {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in self?.detach(id) }
        readers.withLock { $0[id] = Reader(continuation: continuation, remaining: limit) }
        readerCount.add(1, ordering: .relaxed)
        return stream
    }

    /// Ends every reader's stream (the API server calls this when it shuts down).
    public func detachAll() {
        let all = readers.withLock { readers -> [Reader] in
            defer { readers.removeAll() }
            return Array(readers.values)
        }
        if !all.isEmpty { readerCount.subtract(all.count, ordering: .relaxed) }
        for reader in all { reader.continuation.finish() }
    }

    private func detach(_ id: Int) {
        let removed = readers.withLock { $0.removeValue(forKey: id) }
        if removed != nil { readerCount.subtract(1, ordering: .relaxed) }
    }

    /// Copies up to ``maxEventsPerChunk`` events of `chunk` to every attached reader.
    func offer<E: Event>(_ chunk: EventChunk<E>) {
        var finished: [AsyncStream<TappedEvent>.Continuation] = []
        readers.withLock { readers in
            for (id, var reader) in readers {
                var budget = min(chunk.count, Self.maxEventsPerChunk)
                if let remaining = reader.remaining { budget = min(budget, remaining) }
                for event in chunk.events.prefix(budget) {
                    switch reader.continuation.yield(Self.copy(event)) {
                    case .enqueued:
                        if let remaining = reader.remaining { reader.remaining = remaining - 1 }
                    case .dropped:
                        dropped.add(1, ordering: .relaxed)
                    case .terminated:
                        break
                    @unknown default:
                        break
                    }
                }
                if reader.remaining == 0 {
                    readers.removeValue(forKey: id)
                    finished.append(reader.continuation)
                } else {
                    readers[id] = reader
                }
            }
        }
        if !finished.isEmpty { readerCount.subtract(finished.count, ordering: .relaxed) }
        for continuation in finished { continuation.finish() }
    }

    private static func copy<E: Event>(_ event: E) -> TappedEvent {
        var text: [UInt8] = []
        event.appendText(to: &text)
        return TappedEvent(kind: E.kind, topic: (event as? Message)?.topic, text: text)
    }
}
