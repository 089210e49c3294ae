/// The sending side a producing stage writes to: fans each chunk out to every downstream component.
///
/// Fan-out costs nothing per event: arrays are copy-on-write, so each branch gets the same storage.
public struct Outbox<E: Event>: Sendable {
    let fanout: Fanout<E>
    let metrics: ComponentMetrics

    /// An outbox over a fanout the runtime may rewire while the stage runs.
    public init(fanout: Fanout<E>, metrics: ComponentMetrics) {
        self.fanout = fanout
        self.metrics = metrics
    }

    /// An outbox over fixed edges. It does not register as their producer: the caller does.
    public init(channels: [any EventEdge<E>], metrics: ComponentMetrics) {
        self.init(fanout: Fanout(unregistered: channels), metrics: metrics)
    }

    public init(channels: [EventChannel<E>], metrics: ComponentMetrics) {
        self.init(channels: channels.map { $0 as any EventEdge<E> }, metrics: metrics)
    }

    /// Sends a chunk downstream, suspending while a downstream channel is full (back-pressure).
    /// Throws ``ChannelClosedError`` only when every downstream component is gone.
    public func send(_ chunk: EventChunk<E>) async throws {
        if chunk.isEmpty { return }
        metrics.sent(events: chunk.count, bytes: chunk.byteCount)
        // One relaxed load while nobody taps; copies only while `uplink tap` is attached.
        if metrics.tap.isActive { metrics.tap.offer(chunk) }
        var delivered = false
        let channels = fanout.edges
        for channel in channels {
            do {
                try await channel.send(chunk)
                delivered = true
            } catch is ChannelClosedError {
                metrics.dropped(chunk.count, reason: .consumerGone)
            }
        }
        if !delivered && !channels.isEmpty { throw ChannelClosedError() }
    }

    public func send(_ events: [E], acknowledgements: Acknowledgements = .none) async throws {
        try await send(EventChunk(events, acknowledgements: acknowledgements))
    }

    func finish() { fanout.finish() }
}

/// The receiving side a consuming stage reads from: the chunks of all its inputs, in arrival order.
public struct Inbox<E: Event>: AsyncSequence, Sendable {
    public typealias Element = EventChunk<E>

    let channel: any EventEdge<E>
    let metrics: ComponentMetrics

    public init(channel: any EventEdge<E>, metrics: ComponentMetrics) {
        self.channel = channel
        self.metrics = metrics
    }

    /// The next chunk, or nil when every input has finished.
    public func next() async -> EventChunk<E>? {
        guard let chunk = await channel.next() else { return nil }
        metrics.received(events: chunk.count, bytes: chunk.byteCount)
        return chunk
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let inbox: Inbox<E>

        public mutating func next() async -> EventChunk<E>? { await inbox.next() }

        public mutating func next(isolation actor: isolated (any Actor)?) async -> EventChunk<E>? {
            await inbox.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(inbox: self) }
}
