/// The sending side a producing stage writes to: fans each chunk out to every downstream component.
///
/// Fan-out costs nothing per event: arrays are copy-on-write, so each branch gets the same storage.
public struct Outbox<E: Event>: Sendable {
    let channels: [any EventEdge<E>]
    let metrics: ComponentMetrics

    public init(channels: [any EventEdge<E>], metrics: ComponentMetrics) {
        self.channels = channels
        self.metrics = metrics
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

    func finish() {
        for channel in channels { channel.finishProducer() }
    }
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
