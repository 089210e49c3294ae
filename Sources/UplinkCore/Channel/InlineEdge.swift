import Synchronization

/// The edge in front of a fused transform (an ``InlineTransform`` with a single producer): ``send(_:)`` runs the
/// consumer's chunk function in the producer's task, then sends the result through the consumer's own
/// ``Outbox``, so there is no channel, no hand-over to another task and no second walk of the chunk in a colder
/// cache. Everything operators see stays the consumer's: its received/sent/dropped counters, its tap points, its
/// failures (reported by its id), its acknowledgements.
///
/// The consumer's instance still has a task: it binds an ``InlineConsumer`` to the edge, waits until the edge
/// releases it (every producer finished, the instance was detached for a reload, the consumer failed or nothing
/// reads its output any more) and no chunk of it is in flight, then finishes as a transform does at the end of its
/// input. Until an instance is bound (at start, or between a reload's detach and the successor's start), a
/// producer's `send` waits: the edge holds nothing, so that is back-pressure, as a full channel would apply.
/// A slow consumer downstream of the fused stage blocks its producer, as it would through a channel.
final class InlineEdge<E: Event>: EventEdge, Sendable {
    typealias Element = E

    private struct State {
        var producers = 0
        var current: InlineConsumer<E>?
        /// Instances no longer sent to, released once no chunk is in flight.
        var retiring: [InlineConsumer<E>] = []
        var inFlight = 0
        var detached = false
        var closed = false
        var dropped = 0
        var waiters: [Int: UnsafeContinuation<Void, Never>] = [:]
        var nextWaiterID = 0

        /// Moves the current instance to `retiring` and returns what may be released and woken now.
        mutating func retireCurrent() {
            if let current { retiring.append(current) }
            current = nil
        }

        mutating func releasable() -> [InlineConsumer<E>] {
            guard inFlight == 0 else { return [] }
            defer { retiring = [] }
            return retiring
        }

        mutating func takeWaiters() -> [UnsafeContinuation<Void, Never>] {
            defer { waiters = [:] }
            return Array(waiters.values)
        }
    }

    private enum Admission {
        case consumer(InlineConsumer<E>)
        case closed
        /// No instance is bound yet; the id keys this producer's continuation.
        case wait(Int)
    }

    private let state = Mutex(State())
    /// The consumer's configured `max_events`, shown as its buffer's capacity (it never holds any).
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    // MARK: The producer's side

    func send(_ chunk: consuming EventChunk<E>) async throws {
        let consumer = try await admit(chunk.count)
        var outcome: (any Error)?
        do {
            try await consumer.deliver(chunk)
        } catch is CancellationError {
            // The producer's task is being torn down: its own end, not the consumer's.
            leave(consumer, failure: nil)
            throw CancellationError()
        } catch {
            outcome = error
        }
        leave(consumer, failure: outcome)
    }

    /// The instance to deliver to, waiting while none is bound; counts the chunk in flight.
    private func admit(_ count: Int) async throws -> InlineConsumer<E> {
        while true {
            try Task.checkCancellation()
            // One lock per chunk: a waiter's id is drawn only when there is no instance to deliver to.
            let admission = state.withLock { state -> Admission in
                if state.closed {
                    state.dropped += count
                    return .closed
                }
                guard let current = state.current else {
                    state.nextWaiterID += 1
                    return .wait(state.nextWaiterID)
                }
                state.inFlight += 1
                return .consumer(current)
            }
            switch admission {
            case .consumer(let consumer): return consumer
            case .closed: throw ChannelClosedError()
            case .wait(let id):
                await withTaskCancellationHandler {
                    await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                        let resumeNow = state.withLock { state -> Bool in
                            if state.closed || state.current != nil || Task.isCancelled { return true }
                            state.waiters[id] = continuation
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
                    waiter?.resume()
                }
            }
        }
    }

    /// A chunk is done. A consumer that failed (or whose output nobody reads any more) is gone: it keeps its
    /// error for its task to report, and later chunks are refused, as a closed channel refuses them.
    private func leave(_ consumer: InlineConsumer<E>, failure: (any Error)?) {
        if let failure { consumer.end(with: failure) }
        let released = state.withLock { state -> [InlineConsumer<E>] in
            state.inFlight -= 1
            if failure != nil && state.current === consumer {
                state.closed = true
                state.retireCurrent()
            }
            return state.releasable()
        }
        for consumer in released { consumer.released.fire() }
    }

    func addProducer() {
        state.withLock { $0.producers += 1 }
    }

    func finishProducer() {
        let released = state.withLock { state -> [InlineConsumer<E>] in
            state.producers -= 1
            if state.producers <= 0 { state.retireCurrent() }
            return state.releasable()
        }
        for consumer in released { consumer.released.fire() }
    }

    // MARK: The consumer's side

    /// Sends to `consumer` from now on and returns once the edge has released it (see the type's description),
    /// or when the calling task is cancelled.
    func serve(_ consumer: InlineConsumer<E>) async {
        let (released, waiters) = state.withLock { state -> ([InlineConsumer<E>], [UnsafeContinuation<Void, Never>]) in
            if state.closed || state.producers <= 0 || state.detached {
                // Nothing will ever be sent to it: the input has ended already, or a reload detached the instance
                // before its task got here (its successor binds after ``attachConsumer()``).
                state.retiring.append(consumer)
                return (state.releasable(), [])
            }
            state.current = consumer
            return ([], state.takeWaiters())
        }
        for consumer in released { consumer.released.fire() }
        for waiter in waiters { waiter.resume() }
        await consumer.released.wait()
    }

    /// Never called: a fused consumer reads nothing, chunks are handed to it in ``send(_:)``.
    func next() async -> EventChunk<E>? {
        preconditionFailure("a fused stage's edge is not read")
    }

    func closeReceiver() {
        let (released, waiters) = state.withLock { state -> ([InlineConsumer<E>], [UnsafeContinuation<Void, Never>]) in
            state.closed = true
            state.retireCurrent()
            return (state.releasable(), state.takeWaiters())
        }
        for consumer in released { consumer.released.fire() }
        for waiter in waiters { waiter.resume() }
    }

    /// The instance being replaced finishes once its chunk in flight (if any) is done; producers wait for the
    /// successor's ``serve(_:)``.
    func detachConsumer() {
        let released = state.withLock { state -> [InlineConsumer<E>] in
            state.detached = true
            state.retireCurrent()
            return state.releasable()
        }
        for consumer in released { consumer.released.fire() }
    }

    func attachConsumer() {
        state.withLock { $0.detached = false }
    }

    var isConsumerDetached: Bool { state.withLock { $0.detached } }
    var bufferedEvents: Int { 0 }
    var droppedEvents: Int { state.withLock { $0.dropped } }
}

extension InlineEdge: ErasedChannel {
    var status: BufferStatus {
        BufferStatus(kind: .memory, events: 0, maxEvents: capacity, droppedConsumerGone: droppedEvents)
    }

    var isInline: Bool { true }
}

/// One instance of a fused stage as its ``InlineEdge`` sees it: what to do with a chunk, and how it ended.
final class InlineConsumer<E: Event>: Sendable {
    /// Runs the stage's processor on a chunk and sends what it produces through the stage's outbox.
    let deliver: @Sendable (consuming EventChunk<E>) async throws -> Void
    private let finishProcessor: @Sendable () -> Void
    /// Fires once the edge sends nothing more to this instance and no chunk of it is in flight.
    let released = StopSignal()
    private let failure = Mutex<(any Error)?>(nil)

    /// Builds the stage's processor (a throw is the stage's failure to start) over `outbox`.
    init<T: InlineTransform>(_ stage: T, context: ComponentContext, outbox: Outbox<T.Output>) throws
    where T.Input == E {
        let processor = Mutex(ProcessorSlot(processor: try stage.makeProcessor(context: context)))
        let metrics = context.metrics
        deliver = { chunk in
            // Counted as the stage's input, as its inbox would (the producer's outbox measured the bytes).
            metrics.received(events: chunk.count, bytes: chunk.byteCount)
            // Moved into the processor, so the events' array has one owner and is changed where it is.
            var pending: EventChunk<E>? = consume chunk
            let produced = try processor.withLock { slot -> EventChunk<T.Output>? in
                guard !slot.finished else { throw ChannelClosedError() }
                return try slot.processor.process(pending.take()!)
            }
            // Moved on for the same reason (a fused stage after this one).
            guard let produced else { return }
            try await outbox.send(consume produced)
        }
        finishProcessor = {
            processor.withLock { slot in
                guard !slot.finished else { return }
                slot.finished = true
                slot.processor.finish()
            }
        }
    }

    /// The processor's state and whether it was finished (a chunk arriving after that is refused).
    private struct ProcessorSlot<P: ChunkProcessor> {
        let processor: P
        var finished = false
    }

    /// Keeps why the instance ended early, for its task to report (the first reason wins).
    func end(with error: any Error) {
        failure.withLock { if $0 == nil { $0 = error } }
    }

    /// Why it ended early: nil when its input simply ended or it was detached.
    var outcome: (any Error)? { failure.withLock { $0 } }

    func finish() { finishProcessor() }
}
