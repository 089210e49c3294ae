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
    /// Accepted messages, oldest first; trimmed in chunks so accepting stays cheap once a cap is reached.
    var accepted: [AcceptedMessage] = []
    /// The body bytes of `accepted`.
    var acceptedBytes = 0
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

    /// Records a newly accepted message and trims the oldest beyond the caps.
    mutating func retain(_ message: AcceptedMessage, within caps: RetentionCaps) {
        self.accepted.append(message)
        self.acceptedBytes += message.body.count
        // Trimming copies the array, so it waits until the overshoot is worth it (an eighth of a cap); readers
        // see only what is within the caps (``retainedSuffix(within:)``).
        let extraMessages = self.accepted.count - caps.messages
        let extraBytes = self.acceptedBytes - caps.bytes
        guard extraMessages >= max(1, caps.messages / 8) || extraBytes >= max(1, caps.bytes / 8) else { return }
        let keep = retainedSuffix(within: caps)
        self.accepted.removeFirst(self.accepted.count - keep)
        self.acceptedBytes = self.accepted.reduce(0) { $0 + $1.body.count }
    }

    /// How many of the newest accepted messages fit in the caps. The newest one is kept whatever its size when
    /// any bytes are allowed, so a message larger than the byte cap is still inspectable.
    func retainedSuffix(within caps: RetentionCaps) -> Int {
        var count = 0
        var bytes = 0
        for message in self.accepted.reversed() {
            guard count < caps.messages else { break }
            if bytes + message.body.count > caps.bytes && (count > 0 || caps.bytes == 0) { break }
            count += 1
            bytes += message.body.count
        }
        return count
    }
}

/// How much of the accepted traffic the emulator keeps in memory for inspection.
struct RetentionCaps: Sendable {
    var messages: Int
    var bytes: Int
}
