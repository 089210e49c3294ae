import Synchronization

/// Lets tasks wait for "something changed" in state kept elsewhere (under its own lock), without lost
/// wake-ups: a waiter reads ``version`` before checking the state, and ``wait(since:)`` returns at once if
/// anything was signalled in between. Waiting is cancellable (it simply returns).
final class ChangeSignal: Sendable {
    private struct State {
        var version = 0
        var waiters: [Int: UnsafeContinuation<Void, Never>] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())

    var version: Int { state.withLock { $0.version } }

    /// Wakes every waiter.
    func signal() {
        let waiters = state.withLock { state -> [UnsafeContinuation<Void, Never>] in
            state.version &+= 1
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once a signal came after `seen` was read, or when the task is cancelled.
    func wait(since seen: Int) async {
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.version != seen || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}
