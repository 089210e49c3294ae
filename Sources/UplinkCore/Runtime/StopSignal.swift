import Synchronization

/// A one-shot signal that any number of tasks can wait for; waiting is cancellable.
public final class StopSignal: Sendable {
    private struct State {
        var fired = false
        var waiters: [Int: UnsafeContinuation<Void, Never>] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())

    public init() {}

    public var isFired: Bool { state.withLock { $0.fired } }

    public func fire() {
        let waiters = state.withLock { state -> [UnsafeContinuation<Void, Never>] in
            if state.fired { return [] }
            state.fired = true
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns when the signal fires or the waiting task is cancelled.
    public func wait() async {
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.fired || Task.isCancelled { return true }
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

/// Component failures collected while a pipeline runs.
final class FailureLog: Sendable {
    private let entries = Mutex<[(String, String)]>([])

    func record(_ id: String, _ error: any Error) {
        entries.withLock { $0.append((id, String(describing: error))) }
    }

    var all: [(String, String)] { entries.withLock { $0 } }
}
