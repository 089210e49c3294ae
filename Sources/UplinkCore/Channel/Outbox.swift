/// The sending side a producing stage writes to: fans each chunk out to every downstream component.
///
/// Fan-out costs nothing per event: arrays are copy-on-write, so each branch gets the same storage.
public struct Outbox<E: Event>: Sendable {
    let fanout: Fanout<E>
    let metrics: ComponentMetrics
    /// The named outputs of a stage that has them (``NamedOutputStage``), each with its own fanout and tap.
    let named: [String: NamedOutput<E>]

    /// An outbox over a fanout the runtime may rewire while the stage runs.
    public init(fanout: Fanout<E>, metrics: ComponentMetrics, named: [String: Fanout<E>] = [:]) {
        self.fanout = fanout
        self.metrics = metrics
        self.named = named.reduce(into: [:]) { result, entry in
            result[entry.key] = NamedOutput(fanout: entry.value, tap: metrics.tap(output: entry.key))
        }
    }

    /// An outbox over fixed edges for the default output and for named outputs. It does not register as their
    /// producer: the caller does.
    public init(channels: [any EventEdge<E>], named: [String: [any EventEdge<E>]], metrics: ComponentMetrics) {
        self.init(
            fanout: Fanout(unregistered: channels), metrics: metrics,
            named: named.mapValues { Fanout(unregistered: $0) })
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
    ///
    /// The chunk is consumed: the last edge gets it without a copy, so a fused stage downstream (``InlineEdge``)
    /// owns the events' array alone and changes it where it is.
    public func send(_ chunk: consuming EventChunk<E>) async throws {
        if chunk.isEmpty { return }
        // Measured once here; the consumers' inboxes (and a byte-bounded channel) read the figure from the chunk.
        metrics.sent(events: chunk.count, bytes: chunk.measureByteCount())
        // One relaxed load while nobody taps; copies only while `uplink tap` is attached.
        if metrics.tap.isActive { metrics.tap.offer(chunk) }
        if try await !deliver(chunk, toEach: fanout.edges) { throw ChannelClosedError() }
    }

    /// Sends the chunk into each edge; whether any consumer took it. Each branch answers on its own, so each gets
    /// a share of the chunk's acknowledgements (made before the first send): the events count as delivered only
    /// when every branch delivered them. The last edge gets the chunk itself, without a copy of the events.
    private func deliver(_ chunk: consuming EventChunk<E>, toEach channels: [any EventEdge<E>]) async throws -> Bool {
        guard let last = channels.last else { return false }
        if channels.count == 1 { return try await deliver(chunk, to: last) }
        var shares = chunk.acknowledgements.shared(among: channels.count)
        var delivered = false
        for channel in channels.dropLast() {
            var branch = copy chunk
            branch.acknowledgements = shares.removeLast()
            if try await deliver(branch, to: channel) { delivered = true }
        }
        chunk.acknowledgements = shares.removeLast()
        if try await deliver(chunk, to: last) { delivered = true }
        return delivered
    }

    /// Sends into one edge; false when its consumer is gone (counted).
    private func deliver(_ chunk: consuming EventChunk<E>, to channel: any EventEdge<E>) async throws -> Bool {
        let count = chunk.count
        do {
            try await channel.send(chunk)
            return true
        } catch is ChannelClosedError {
            metrics.dropped(count, reason: .consumerGone)
            return false
        }
    }

    public func send(_ events: [E], acknowledgements: Acknowledgements = .none) async throws {
        try await send(EventChunk(events, acknowledgements: acknowledgements))
    }

    /// Sends a chunk to the named output `name`, suspending while a consumer's channel is full. Returns whether
    /// any component reads that output now: when none does, nothing was sent and the caller decides what the
    /// events' fate is (count them, answer their acknowledgements). Counted in the component's sent events.
    /// Throws ``ChannelClosedError`` when every consumer of the output is gone.
    @discardableResult
    public func send(_ chunk: consuming EventChunk<E>, to name: String) async throws -> Bool {
        guard let output = named[name] else {
            preconditionFailure("output '\(name)' is not one of the stage's declared outputs")
        }
        if chunk.isEmpty { return true }
        let channels = output.fanout.edges
        if output.tap.isActive { output.tap.offer(chunk) }
        if channels.isEmpty { return false }
        metrics.sent(events: chunk.count, bytes: chunk.measureByteCount())
        if try await !deliver(chunk, toEach: channels) { throw ChannelClosedError() }
        return true
    }

    func finish() {
        fanout.finish()
        for output in named.values { output.fanout.finish() }
    }
}

/// One named output of a stage: where its events go, and where `uplink tap <id>.<output>` watches them.
struct NamedOutput<E: Event>: Sendable {
    let fanout: Fanout<E>
    let tap: TapPoint
}

/// A transform whose events leave through named outputs (a `route`'s routes) rather than its default output:
/// downstream components read them as `inputs: [<id>.<output>]`, the topology checks the names, and the stage
/// sends with ``Outbox/send(_:to:)``.
public protocol NamedOutputStage: TransformStage {
    /// The names of its outputs, fixed once built.
    var outputNames: [String] { get }
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
        // The producer's outbox measured the chunk: no walk of the events here.
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
