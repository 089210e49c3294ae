/// Exponential back-off for reconnecting and restarting: `initial`, doubled after every failure up to
/// `maximum`, and back to `initial` once an attempt has stayed healthy for `resetAfter`.
///
/// A pure state machine: it takes what happened and answers how long to wait, so it is tested without sleeping.
struct Backoff: Sendable, Equatable {
    let initial: Duration
    let maximum: Duration
    let resetAfter: Duration
    /// Consecutive failures since the last healthy attempt.
    private(set) var failures = 0

    init(initial: Duration, maximum: Duration, resetAfter: Duration = .seconds(10)) {
        self.initial = max(initial, .milliseconds(1))
        self.maximum = max(maximum, self.initial)
        self.resetAfter = resetAfter
    }

    /// The delay before the next attempt, after an attempt that ended (failed, or ran for `healthyFor`).
    mutating func next(healthyFor: Duration = .zero) -> Duration {
        if healthyFor >= resetAfter { failures = 0 }
        var delay = initial
        for _ in 0..<min(failures, 32) {
            delay = delay * 2
            if delay >= maximum { break }
        }
        failures += 1
        return min(delay, maximum)
    }

    /// An attempt succeeded: the next failure starts again from `initial`.
    mutating func reset() { failures = 0 }
}
