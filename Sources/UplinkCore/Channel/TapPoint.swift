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
/// does it copy events' text, at most ``maxEventsPerChunk`` per chunk, into each reader's queue. A queue is
/// bounded in events and in bytes (``defaultQueueBytes``): a reader that does not keep up (an API client that
/// stops reading, so its socket stops being writable) loses its own copies, counted in ``droppedCopies``, and
/// never grows the agent's memory nor slows the pipeline.
public final class TapPoint: Sendable {
    /// Events copied per chunk and reader at most: a tap is a sample, not a firehose.
    public static let maxEventsPerChunk = 64
    /// Bytes of event text a reader's queue holds at most, unless ``attach(limit:bufferEvents:bufferBytes:)``
    /// says otherwise.
    public static let defaultQueueBytes = 256 * 1024

    private struct Reader {
        var continuation: AsyncStream<TappedEvent>.Continuation
        /// Events still to deliver before the reader is finished; nil for no limit.
        var remaining: Int?
        /// Text bytes enqueued and not yet taken by the reader.
        var queuedBytes = 0
        let maxBytes: Int
    }

    private let readerCount = Atomic<Int>(0)
    private let readers = Mutex<[Int: Reader]>([:])
    private let nextID = Atomic<Int>(0)
    private let dropped = Atomic<Int>(0)
    private let queued = Atomic<Int>(0)

    public init() {}

    /// Whether any reader is attached.
    @inline(__always)
    public var isActive: Bool { readerCount.load(ordering: .relaxed) > 0 }

    /// Readers attached now.
    public var attachedReaders: Int { readerCount.load(ordering: .relaxed) }

    /// Copies that were discarded because a reader's queue was full.
    public var droppedCopies: Int { dropped.load(ordering: .relaxed) }

    /// Text bytes held in all readers' queues right now.
    public var queuedBytes: Int { queued.load(ordering: .relaxed) }

    /// Attaches a reader. The stream ends after `limit` events (nil: never), or when ``detachAll()`` is called;
    /// ending the iteration (or cancelling its task) detaches it.
    /// - Parameters:
    ///   - bufferEvents: events held for a slow reader before further copies are dropped.
    ///   - bufferBytes: bytes of text held for a slow reader before further copies are dropped.
    public func attach(
        limit: Int?, bufferEvents: Int = 256, bufferBytes: Int = TapPoint.defaultQueueBytes
    ) -> TapStream {
        let id = nextID.add(1, ordering: .relaxed).newValue
        let (stream, continuation) = AsyncStream.makeStream(
            of: TappedEvent.self, bufferingPolicy: .bufferingOldest(max(1, bufferEvents)))
        if let limit, limit <= 0 {
            continuation.finish()
            return TapStream(base: stream, consumed: { _ in })
        }
        continuation.onTermination = { [weak self] _ in self?.detach(id) }
        readers.withLock {
            $0[id] = Reader(continuation: continuation, remaining: limit, maxBytes: max(1, bufferBytes))
        }
        readerCount.add(1, ordering: .relaxed)
        return TapStream(base: stream, consumed: { [weak self] bytes in self?.consumed(bytes, by: id) })
    }

    /// Ends every reader's stream (the API server calls this when it shuts down).
    public func detachAll() {
        let all = readers.withLock { readers -> [Reader] in
            defer { readers.removeAll() }
            return Array(readers.values)
        }
        if !all.isEmpty { readerCount.subtract(all.count, ordering: .relaxed) }
        for reader in all {
            queued.subtract(reader.queuedBytes, ordering: .relaxed)
            reader.continuation.finish()
        }
    }

    private func detach(_ id: Int) {
        let removed = readers.withLock { $0.removeValue(forKey: id) }
        if let removed {
            readerCount.subtract(1, ordering: .relaxed)
            queued.subtract(removed.queuedBytes, ordering: .relaxed)
        }
    }

    /// The reader took an event of `bytes` bytes off its queue.
    private func consumed(_ bytes: Int, by id: Int) {
        let found = readers.withLock { readers -> Bool in
            guard var reader = readers[id] else { return false }
            reader.queuedBytes -= bytes
            readers[id] = reader
            return true
        }
        if found { queued.subtract(bytes, ordering: .relaxed) }
    }

    /// Copies up to ``maxEventsPerChunk`` events of `chunk` to every attached reader.
    func offer<E: Event>(_ chunk: EventChunk<E>) {
        var finished: [AsyncStream<TappedEvent>.Continuation] = []
        var finishedBytes = 0
        readers.withLock { readers in
            for (id, var reader) in readers {
                var budget = min(chunk.count, Self.maxEventsPerChunk)
                if let remaining = reader.remaining { budget = min(budget, remaining) }
                for event in chunk.events.prefix(budget) {
                    let copy = Self.copy(event)
                    guard reader.queuedBytes + copy.text.count <= reader.maxBytes else {
                        dropped.add(1, ordering: .relaxed)
                        continue
                    }
                    switch reader.continuation.yield(copy) {
                    case .enqueued:
                        reader.queuedBytes += copy.text.count
                        queued.add(copy.text.count, ordering: .relaxed)
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
                    finishedBytes += reader.queuedBytes
                } else {
                    readers[id] = reader
                }
            }
        }
        if !finished.isEmpty {
            readerCount.subtract(finished.count, ordering: .relaxed)
            queued.subtract(finishedBytes, ordering: .relaxed)
        }
        for continuation in finished { continuation.finish() }
    }

    private static func copy<E: Event>(_ event: E) -> TappedEvent {
        var text: [UInt8] = []
        event.appendText(to: &text)
        return TappedEvent(kind: E.kind, topic: (event as? Message)?.topic, text: text)
    }
}
