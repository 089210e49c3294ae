import ServiceLifecycle

/// The mutable state of a running emulator, kept behind one lock in ``EmulatorCore``.
struct EmulatorState: Sendable {
    /// Where the emulator is in its life.
    enum Lifecycle: Sendable {
        case idle
        case starting
        case listening(port: Int)
        case stopped(EmulatorError)
    }

    var lifecycle: Lifecycle = .idle
    /// The group running the HTTP application, so `shutdownGracefully()` can reach it.
    var serviceGroup: ServiceGroup?
    /// `shutdownGracefully()` was called; a `run()` that has not started serving yet returns at once.
    var shutdownRequested = false
    /// Callers of `waitUntilReady()`, by a waiter id so cancellation can find its own.
    var readinessWaiters: [Int: CheckedContinuation<Int, any Error>] = [:]
    var nextWaiterID = 0

    var faults: EmulatorFaults
    var statistics = EmulatorStatistics()
    /// Protocol requests being answered now; its high-water mark is `statistics.maxConcurrentRequests`.
    var requestsInProgress = 0
    /// Accepted messages, oldest first; trimmed in chunks so accepting stays cheap once the cap is reached.
    var accepted: [AcceptedMessage] = []
    var nextMessageID: UInt64 = 1
    /// The precise expiry of each issued token, by `jti`. Whole-second `exp` claims cannot express the short
    /// lifetimes tests use. A token whose id is missing here was pruned, hence expired.
    var tokenDeadlines: [String: ContinuousClock.Instant] = [:]

    init(faults: EmulatorFaults) {
        self.faults = faults
    }

    /// Resumes every `waitUntilReady()` caller with `result`.
    mutating func resumeWaiters(with result: Result<Int, any Error>) {
        let waiters = self.readinessWaiters.values
        self.readinessWaiters = [:]
        for waiter in waiters { waiter.resume(with: result) }
    }

    /// Drops expired token deadlines, so a long demo does not accumulate them.
    mutating func pruneTokens(now: ContinuousClock.Instant) {
        self.tokenDeadlines = self.tokenDeadlines.filter { $0.value > now }
    }

    /// Keeps at most `limit` accepted messages, trimming only when the overshoot is worth the copy.
    mutating func trimAccepted(limit: Int) {
        let overshoot = self.accepted.count - limit
        if overshoot > 0 && (overshoot >= max(1, limit / 8) || limit == 0) {
            self.accepted.removeFirst(overshoot)
        }
    }
}
