/// Exponential back-off with full jitter, as a value: it neither sleeps nor reads a clock.
///
/// The n-th call of ``next(using:)`` (counting from 0) answers a delay drawn uniformly from
/// `0 ... min(maximum, initial * 2^n)`. Full jitter spreads the retries of many devices that failed together,
/// so they do not return to the service at the same instant.
public struct Backoff: Sendable, Hashable {
    /// The cap of the first delay.
    public let initial: Duration
    /// The largest cap.
    public let maximum: Duration
    /// How many delays were handed out since the start or the last ``reset()``.
    public private(set) var attempt: Int = 0

    /// Creates a back-off; a negative `initial` or `maximum` counts as zero and `maximum` is at least
    /// `initial`.
    public init(initial: Duration, maximum: Duration) {
        let initial = max(initial, .zero)
        self.initial = initial
        self.maximum = max(maximum, initial)
    }

    /// The back-off of a ``RetryPolicy``.
    public init(policy: RetryPolicy) {
        self.init(initial: policy.initialBackoff, maximum: policy.maxBackoff)
    }

    /// The upper bound of the next delay.
    public var currentCap: Duration {
        let initialNanos = initial.clampedNanoseconds
        let maximumNanos = maximum.clampedNanoseconds
        // initial * 2^attempt, saturated at maximum without overflowing.
        guard attempt < 63, initialNanos <= maximumNanos >> Int64(attempt) else {
            return .nanoseconds(maximumNanos)
        }
        return .nanoseconds(min(initialNanos << Int64(attempt), maximumNanos))
    }

    /// The next delay, drawn with `generator`; a seeded generator makes the sequence reproducible.
    public mutating func next(using generator: inout some RandomNumberGenerator) -> Duration {
        let cap = currentCap.clampedNanoseconds
        attempt += 1
        guard cap > 0 else { return .zero }
        return .nanoseconds(Int64.random(in: 0...cap, using: &generator))
    }

    /// The next delay, drawn with the system's random number generator.
    public mutating func next() -> Duration {
        var generator = SystemRandomNumberGenerator()
        return next(using: &generator)
    }

    /// Starts over after a success.
    public mutating func reset() {
        attempt = 0
    }
}

extension Duration {
    /// Whole nanoseconds, saturated to `0 ... Int64.max`.
    var clampedNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        let (secondNanos, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return .max }
        let (total, overflow2) = secondNanos.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflow2 ? .max : total
    }

    /// Whole milliseconds, saturated to `0 ... Int.max`, for libcurl's `_MS` options.
    var clampedMilliseconds: Int {
        Int(clampedNanoseconds / 1_000_000)
    }

    /// Seconds as a floating-point number, for statistics.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
