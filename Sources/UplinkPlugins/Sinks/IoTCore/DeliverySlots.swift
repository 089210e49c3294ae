import Synchronization

/// A bounded number of places, taken in the order they were asked for: the `iotcore_http` sink's requests
/// on the wire (at most the client's adaptive limit) and its ordered messages waiting for their turn.
///
/// The bound is read at every take and release, so a limit that grows lets waiters in at the next release and
/// one that shrinks takes effect as places are given back. ``abort()`` fails every waiter and every later
/// take: the sink calls it when a delivery fails, so nothing stays blocked on places that will not come back.
final class DeliverySlots: Sendable {
    /// The sink is stopping after a failed delivery; that delivery's own error is the one to report.
    struct Aborted: Error {}

    private struct State {
        var used = 0
        var aborted = false
        var waiters: [CheckedContinuation<Void, any Error>] = []
    }

    private let state = Mutex(State())
    private let bound: @Sendable () -> Int

    init(bound: @escaping @Sendable () -> Int) {
        self.bound = bound
    }

    /// Places taken now.
    var used: Int { state.withLock { $0.used } }

    /// Takes a place, waiting (first come, first served) while all are taken. Not cancellable: every place is
    /// given back on every path, and a failure ends the wait through ``abort()``.
    ///
    /// - Throws: ``Aborted`` after ``abort()``.
    func take() async throws {
        let limit = bound()
        // Most takes find a free place: no suspension then.
        let taken = try state.withLock { state throws(Aborted) -> Bool in
            if state.aborted { throw Aborted() }
            guard state.waiters.isEmpty, state.used < limit else { return false }
            state.used += 1
            return true
        }
        if taken { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let limit = bound()
            let outcome: Result<Void, any Error>? = state.withLock { state in
                if state.aborted { return .failure(Aborted()) }
                if state.waiters.isEmpty, state.used < limit {
                    state.used += 1
                    return .success(())
                }
                state.waiters.append(continuation)
                return nil
            }
            if let outcome { continuation.resume(with: outcome) }
        }
    }

    /// Gives a place back and lets in as many waiters as the bound allows now.
    func release() {
        let limit = bound()
        let admitted = state.withLock { state in
            state.used -= 1
            var admitted: [CheckedContinuation<Void, any Error>] = []
            while state.used < limit, !state.waiters.isEmpty {
                state.used += 1
                admitted.append(state.waiters.removeFirst())
            }
            return admitted
        }
        for waiter in admitted { waiter.resume() }
    }

    /// Fails every waiter and every later ``take()`` with ``Aborted``.
    func abort() {
        let waiters = state.withLock { state in
            state.aborted = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(throwing: Aborted()) }
    }
}
