import DequeModule
import Synchronization

/// What a full channel does with a new chunk.
public enum OverflowPolicy: String, Sendable, CaseIterable {
    /// Suspend the producer until there is room: back-pressure, nothing lost. The default.
    case block
    /// Discard the incoming chunk, counted.
    case dropNewest = "drop_newest"
    /// Discard the oldest buffered chunks to make room, counted.
    case dropOldest = "drop_oldest"
}

/// Thrown to a producer whose consumer is gone (it failed or the pipeline is tearing down).
public struct ChannelClosedError: Error, Sendable, CustomStringConvertible {
    public var description: String { "the downstream component is no longer running" }
}

/// A bounded multi-producer, single-consumer channel of event chunks: the pipeline's edges.
///
/// Capacity counts events, not chunks, so a chunk of 1000 lines weighs what it carries. A chunk is admitted
/// whenever the buffer is below capacity (so a chunk larger than the capacity cannot deadlock), and
/// suspended producers are admitted in arrival order: several producers never reorder one another's chunks.
/// Suspended producers are resumed only once the consumer has drained the buffer to half of both bounds (a low
/// watermark), not at the first free place: a stalled stage then produces a burst of chunks per wake-up instead
/// of one, which behind a slow sink halves the wake-ups along the pipeline. The bounds stay the same.
/// The channel finishes when every registered producer has finished and the buffer is drained.
public final class EventChannel<E: Event>: Sendable {
    public let capacity: Int
    /// Bytes (of event payload) the buffer holds before it counts as full; `Int.max` when only events count.
    public let maxBytes: Int
    public let overflowPolicy: OverflowPolicy

    private struct WaitingProducer {
        var id: Int
        var chunk: EventChunk<E>
        var bytes: Int
        var continuation: UnsafeContinuation<Void, any Error>
    }

    private struct Buffered {
        var chunk: EventChunk<E>
        var bytes: Int
    }

    private struct State {
        var buffer = Deque<Buffered>()
        var bufferedEvents = 0
        var bufferedBytes = 0
        var openProducers = 0
        var receiverClosed = false
        /// The consumer is being replaced: it reads nil while the buffer waits for its successor.
        var consumerDetached = false
        var consumer: UnsafeContinuation<EventChunk<E>?, Never>?
        var waiting = Deque<WaitingProducer>()
        var nextWaiterID = 0
        var droppedEvents = 0
        /// The part of `droppedEvents` discarded by a drop policy (the rest: the consumer was gone).
        var overflowDroppedEvents = 0
    }

    private let state = Mutex(State())

    /// - Parameters:
    ///   - capacity: events buffered before the channel is full.
    ///   - maxBytes: payload bytes buffered before the channel is full, whichever comes first; a board bounds
    ///     its memory with this when events vary in size (a line or a 128 KB batch).
    public init(capacity: Int, maxBytes: Int = .max, overflowPolicy: OverflowPolicy = .block) {
        precondition(capacity > 0 && maxBytes > 0, "a channel needs room for at least one event")
        self.capacity = capacity
        self.maxBytes = maxBytes
        self.overflowPolicy = overflowPolicy
    }

    /// Payload bytes buffered now.
    public var bufferedBytes: Int { state.withLock { $0.bufferedBytes } }

    /// Below both bounds: a chunk is admitted whatever its size, so one larger than the bounds cannot deadlock.
    private func hasRoom(_ state: inout State) -> Bool {
        state.bufferedEvents < capacity && state.bufferedBytes < maxBytes
    }

    /// Drained to the low watermark: waiting producers may be resumed (see the type's comment). An empty buffer
    /// always is, so a waiting producer is never left behind a consumer that has nothing to read.
    private func isDrainedToLowWatermark(_ state: inout State) -> Bool {
        state.bufferedEvents <= capacity / 2 && state.bufferedBytes <= maxBytes / 2
    }

    private func push(_ chunk: EventChunk<E>, bytes: Int, into state: inout State) {
        state.buffer.append(Buffered(chunk: chunk, bytes: bytes))
        state.bufferedEvents += chunk.count
        state.bufferedBytes += bytes
    }

    private func pop(_ state: inout State) -> EventChunk<E>? {
        guard let first = state.buffer.popFirst() else { return nil }
        state.bufferedEvents -= first.chunk.count
        state.bufferedBytes -= first.bytes
        return first.chunk
    }

    /// Only counted when a byte bound is set: the sum walks the chunk's events.
    private func weigh(_ chunk: EventChunk<E>) -> Int { maxBytes == .max ? 0 : chunk.byteCount }

    /// Registers a producer; the channel stays open until each registered producer calls ``finishProducer()``.
    public func addProducer() {
        state.withLock { $0.openProducers += 1 }
    }

    /// Events buffered now, for fill-level metrics.
    public var bufferedEvents: Int { state.withLock { $0.bufferedEvents } }

    /// Events discarded by a drop policy or because the consumer went away.
    public var droppedEvents: Int { state.withLock { $0.droppedEvents } }

    /// Events discarded by the `drop_newest` / `drop_oldest` policy (a part of ``droppedEvents``).
    public var overflowDroppedEvents: Int { state.withLock { $0.overflowDroppedEvents } }

    private enum Registration { case registered, cancelled, closed, admitted }

    private enum ReceiveAction {
        case chunk(EventChunk<E>, [UnsafeContinuation<Void, any Error>])
        case finished
        case wait
    }

    private enum SendAction {
        case done
        case resumeConsumer(UnsafeContinuation<EventChunk<E>?, Never>)
        case closed
        case suspend
    }

    /// Sends a chunk, suspending while the channel is full (with the `block` policy).
    /// Throws ``ChannelClosedError`` when the consumer is gone and `CancellationError` if cancelled while waiting.
    public func send(_ chunk: EventChunk<E>) async throws {
        if chunk.isEmpty { return }
        let bytes = weigh(chunk)
        // Chunks a drop policy discards; their acknowledgements run outside the lock.
        var discarded: [EventChunk<E>] = []
        defer { for chunk in discarded { chunk.discardedByPolicy() } }
        let action: SendAction = state.withLock { state in
            if state.receiverClosed {
                state.droppedEvents += chunk.count
                return .closed
            }
            if let consumer = state.consumer {
                state.consumer = nil
                return .resumeConsumer(consumer)
            }
            if hasRoom(&state) && state.waiting.isEmpty {
                push(chunk, bytes: bytes, into: &state)
                return .done
            }
            switch overflowPolicy {
            case .block:
                return .suspend
            case .dropNewest:
                state.droppedEvents += chunk.count
                state.overflowDroppedEvents += chunk.count
                discarded.append(chunk)
                return .done
            case .dropOldest:
                while !hasRoom(&state), let oldest = pop(&state) {
                    state.droppedEvents += oldest.count
                    state.overflowDroppedEvents += oldest.count
                    discarded.append(oldest)
                }
                push(chunk, bytes: bytes, into: &state)
                return .done
            }
        }
        switch action {
        case .done: return
        case .resumeConsumer(let consumer): consumer.resume(returning: chunk)
        case .closed: throw ChannelClosedError()
        case .suspend: try await suspendProducer(with: chunk, bytes: bytes)
        }
    }

    private func suspendProducer(with chunk: EventChunk<E>, bytes: Int) async throws {
        let id = state.withLock { state -> Int in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                let outcome: Registration = state.withLock { state in
                    if state.receiverClosed {
                        state.droppedEvents += chunk.count
                        return .closed
                    }
                    if Task.isCancelled { return .cancelled }
                    // The consumer may have made room between the first attempt and now.
                    if hasRoom(&state) && state.waiting.isEmpty {
                        push(chunk, bytes: bytes, into: &state)
                        return .admitted
                    }
                    state.waiting.append(WaitingProducer(id: id, chunk: chunk, bytes: bytes, continuation: continuation))
                    return .registered
                }
                switch outcome {
                case .registered: break
                case .admitted: continuation.resume()
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .closed: continuation.resume(throwing: ChannelClosedError())
                }
                // A consumer may be waiting on an empty buffer that we just filled.
                if outcome == .admitted { wakeConsumerIfWaiting() }
            }
        } onCancel: {
            let waiter: WaitingProducer? = state.withLock { state in
                guard let index = state.waiting.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiting.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    private func wakeConsumerIfWaiting() {
        let handOff: (UnsafeContinuation<EventChunk<E>?, Never>, EventChunk<E>)? = state.withLock { state in
            guard let consumer = state.consumer, !state.buffer.isEmpty else { return nil }
            state.consumer = nil
            return (consumer, pop(&state)!)
        }
        if let (consumer, chunk) = handOff { consumer.resume(returning: chunk) }
    }

    /// Marks one producer finished. The last one ends the stream once the buffer is drained.
    public func finishProducer() {
        let consumer: UnsafeContinuation<EventChunk<E>?, Never>? = state.withLock { state in
            state.openProducers -= 1
            guard state.openProducers <= 0, state.buffer.isEmpty, state.waiting.isEmpty else { return nil }
            defer { state.consumer = nil }
            return state.consumer
        }
        consumer?.resume(returning: nil)
    }

    /// Closes the receiving side: buffered and future chunks are discarded (counted) and waiting producers
    /// get ``ChannelClosedError``. Used when the consumer failed, so producers never wait forever.
    public func closeReceiver() {
        let waiters: Deque<WaitingProducer> = state.withLock { state in
            state.receiverClosed = true
            state.droppedEvents += state.bufferedEvents
            for waiter in state.waiting { state.droppedEvents += waiter.chunk.count }
            state.buffer.removeAll()
            state.bufferedEvents = 0
            state.bufferedBytes = 0
            defer { state.waiting.removeAll() }
            return state.waiting
        }
        for waiter in waiters { waiter.continuation.resume(throwing: ChannelClosedError()) }
    }

    /// Receives the next chunk; nil once every producer has finished and the buffer is empty, or when the
    /// consuming task is cancelled.
    public func next() async -> EventChunk<E>? {
        let action: ReceiveAction = state.withLock { state in
            if state.consumerDetached { return .finished }
            if let chunk = pop(&state) {
                return .chunk(chunk, admitWaiting(&state))
            }
            if let waiter = state.waiting.popFirst() {
                // Only reachable with a zero-room buffer; hand the chunk straight over.
                return .chunk(waiter.chunk, [waiter.continuation] + admitWaiting(&state))
            }
            if state.openProducers <= 0 || state.receiverClosed { return .finished }
            return .wait
        }
        switch action {
        case .chunk(let chunk, let admitted):
            for continuation in admitted { continuation.resume() }
            return chunk
        case .finished:
            return nil
        case .wait:
            return await withTaskCancellationHandler {
                await withUnsafeContinuation { (continuation: UnsafeContinuation<EventChunk<E>?, Never>) in
                    let immediate: EventChunk<E>?? = state.withLock { state in
                        if state.consumerDetached { return .some(nil) }
                        if let chunk = pop(&state) { return .some(chunk) }
                        if state.openProducers <= 0 || state.receiverClosed || Task.isCancelled { return .some(nil) }
                        state.consumer = continuation
                        return .none
                    }
                    if let immediate { continuation.resume(returning: immediate) }
                }
            } onCancel: {
                let consumer: UnsafeContinuation<EventChunk<E>?, Never>? = state.withLock { state in
                    defer { state.consumer = nil }
                    return state.consumer
                }
                consumer?.resume(returning: nil)
            }
        }
    }

    /// The next chunk if one is buffered (or a producer waits with one), as ``next()`` would return it, without
    /// suspending; nil when ``next()`` would wait or end.
    public func nextIfReady() -> EventChunk<E>? {
        let ready: (EventChunk<E>, [UnsafeContinuation<Void, any Error>])? = state.withLock { state in
            if state.consumerDetached { return nil }
            if let chunk = pop(&state) { return (chunk, admitWaiting(&state)) }
            if let waiter = state.waiting.popFirst() {
                return (waiter.chunk, [waiter.continuation] + admitWaiting(&state))
            }
            return nil
        }
        guard let (chunk, admitted) = ready else { return nil }
        for continuation in admitted { continuation.resume() }
        return chunk
    }

    public func detachConsumer() {
        let consumer: UnsafeContinuation<EventChunk<E>?, Never>? = state.withLock { state in
            state.consumerDetached = true
            defer { state.consumer = nil }
            return state.consumer
        }
        consumer?.resume(returning: nil)
    }

    public func attachConsumer() {
        state.withLock { $0.consumerDetached = false }
    }

    public var isConsumerDetached: Bool { state.withLock { $0.consumerDetached } }

    /// Once the buffer is drained to the low watermark, moves waiting producers' chunks into it while there is
    /// room; returns whom to resume.
    private func admitWaiting(_ state: inout State) -> [UnsafeContinuation<Void, any Error>] {
        var admitted: [UnsafeContinuation<Void, any Error>] = []
        guard isDrainedToLowWatermark(&state) else { return admitted }
        while hasRoom(&state), let waiter = state.waiting.popFirst() {
            push(waiter.chunk, bytes: waiter.bytes, into: &state)
            admitted.append(waiter.continuation)
        }
        return admitted
    }
}
