extension Inbox {
    /// What ``next(until:)`` found.
    public enum Poll: Sendable {
        /// The next chunk.
        case chunk(EventChunk<E>)
        /// Every input has finished (or the consuming task was cancelled): flush and return.
        case ended
        /// The deadline passed with no chunk; the input is still open.
        case timedOut
    }

    /// The next chunk, or ``Poll/timedOut`` once `deadline` passes first, so a batching stage can flush while its
    /// input is idle.
    ///
    /// A chunk that is ready is returned at once, whatever the deadline (the caller checks its deadline between
    /// reads). Otherwise, structured: a child task waits for the chunk while another sleeps until the deadline.
    /// When the timer wins, the waiting read is cancelled, and a chunk handed over at that very moment is still
    /// returned, never lost. (The two child tasks and the timer cost more than the read: a batching stage behind
    /// its input, as behind a slow sink, skips them.)
    public func next(until deadline: ContinuousClock.Instant) async -> Poll {
        if let chunk = channel.nextIfReady() {
            metrics.received(events: chunk.count, bytes: chunk.byteCount)
            return .chunk(chunk)
        }
        return await withTaskGroup(of: Poll?.self) { group in
            group.addTask {
                guard let chunk = await self.next() else { return .ended }
                return .chunk(chunk)
            }
            group.addTask {
                do {
                    try await Task.sleep(until: deadline, clock: .continuous)
                    return .timedOut
                } catch {
                    return nil
                }
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            let second = await group.next() ?? nil
            switch (first, second) {
            case (.chunk(let chunk), _), (_, .chunk(let chunk)):
                return .chunk(chunk)
            case (.timedOut, _):
                // The read ended because we cancelled it: the input may well be open. A later read tells.
                return .timedOut
            default:
                // The read ended first (input finished), or the timer was cancelled from outside.
                return .ended
            }
        }
    }
}
