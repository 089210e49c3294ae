import Synchronization

/// Which messages of an `iotcore_http` sink must reach the cloud in the order they came (`ordering:`).
///
/// Shadow updates (`/$system/<ProductSN>/<DeviceSN>/shadow/upstream`) always keep their order, whatever this
/// says: they carry `"Version": -1`, so the cloud keeps the last one it receives and an overtaken update would
/// leave the shadow on a stale value. Everything else is sent `concurrency` at a time by default, which is
/// what makes a single topic fast behind a long round trip; `per_topic` trades that for order on every topic
/// (one request per topic on the wire at a time).
enum DeliveryOrdering: String, CaseIterable, Sendable {
    case none
    case perTopic = "per_topic"

    /// The lane `topic`'s messages keep their place in, or nil when a message may overtake others.
    func lane(for topic: String) -> String? {
        if self == .perTopic || Self.isShadowUpdate(topic) { return topic }
        return nil
    }

    static func isShadowUpdate(_ topic: String) -> Bool {
        topic.hasPrefix("/$system/") && topic.hasSuffix("/shadow/upstream")
    }
}

/// The turns of ordered lanes: a message on a lane starts only when the one before it on that lane has its
/// final answer (delivered, dead-lettered, or split and both halves answered), so a retried or split batch
/// keeps its place. Holds one entry per lane with a message sending or waiting, so at most twice the limit.
final class DeliveryLanes: Sendable {
    private let tails = Mutex<[String: Turn]>([:])

    /// Takes the next place on `lane`: the turn to wait for (nil when the lane is free) and this message's own.
    func enqueue(on lane: String) -> (previous: Turn?, mine: Turn) {
        let mine = Turn()
        let previous = tails.withLock { tails in
            defer { tails[lane] = mine }
            return tails[lane]
        }
        return (previous, mine)
    }

    /// Ends `turn`; the next message on the lane may start when `delivered`, and gives up otherwise.
    func finish(_ turn: Turn, on lane: String, delivered: Bool) {
        tails.withLock { tails in
            if tails[lane] === turn { tails[lane] = nil }
        }
        turn.complete(delivered: delivered)
    }

    /// One message's place on a lane, completed exactly once.
    final class Turn: Sendable {
        private struct State {
            var result: Bool?
            var waiters: [CheckedContinuation<Bool, Never>] = []
        }

        private let state = Mutex(State())

        /// Waits until the message before has its final answer; false when it failed (it is not delivered, so
        /// this one must not go first). Not cancellable on purpose: the turn before always completes (its task
        /// completes it on every path, cancellation included).
        func wait() async -> Bool {
            await withCheckedContinuation { continuation in
                let ready: Bool? = state.withLock { state in
                    if let result = state.result { return result }
                    state.waiters.append(continuation)
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }

        func complete(delivered: Bool) {
            let waiters = state.withLock { state in
                precondition(state.result == nil, "a delivery turn completed twice")
                state.result = delivered
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume(returning: delivered) }
        }
    }
}
