/// The events a tap reader receives (see ``TapPoint/attach(limit:bufferEvents:bufferBytes:)``); taking an event
/// frees its bytes in the reader's queue.
public struct TapStream: AsyncSequence, Sendable {
    public typealias Element = TappedEvent

    let base: AsyncStream<TappedEvent>
    let consumed: @Sendable (Int) -> Void

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<TappedEvent>.AsyncIterator
        let consumed: @Sendable (Int) -> Void

        public mutating func next() async -> TappedEvent? {
            guard let event = await base.next() else { return nil }
            consumed(event.text.count)
            return event
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), consumed: consumed)
    }
}
