import FoundationEssentials
internal import CCurl

/// The client's clocks, sleep and randomness, injected so tests run retries and back-offs without waiting.
struct TimeSource: Sendable {
    /// Monotonic time since an arbitrary origin, for back-off deadlines.
    var monotonic: @Sendable () -> Duration
    /// Wall-clock time, for token expiry and the `/auth` Timestamp.
    var wall: @Sendable () -> Date
    /// Sleeps; throws `CancellationError` when the task is cancelled.
    var sleep: @Sendable (Duration) async throws -> Void
    /// Random bits for the back-off jitter.
    var random: @Sendable () -> UInt64
    /// Whether the wall clock is known to be right (``AuthTimestamp/whenSynchronised``).
    var clockSynchronised: @Sendable () -> Bool = { false }

    /// The real clocks.
    static func system() -> TimeSource {
        let origin = ContinuousClock.now
        return TimeSource(
            monotonic: { ContinuousClock.now - origin },
            wall: { Date() },
            sleep: { duration in try await Task.sleep(for: duration, clock: .continuous) },
            random: {
                var generator = SystemRandomNumberGenerator()
                return generator.next()
            },
            clockSynchronised: { systemClockIsSynchronised(now: Date()) }
        )
    }

    /// The kernel's word (adjtimex: no STA_UNSYNC) and a sanity check of the year: a board whose clock stayed
    /// at its build date or 1970 is not synchronised whatever the kernel says.
    static func systemClockIsSynchronised(now: Date) -> Bool {
        // 2025-01-01T00:00:00Z.
        now.timeIntervalSince1970 >= 1_735_689_600 && uplink_clock_is_synchronised() != 0
    }
}

/// A `RandomNumberGenerator` over a closure, so a `Sendable` source can feed ``Backoff``.
struct ClosureRandomNumberGenerator: RandomNumberGenerator {
    let source: @Sendable () -> UInt64

    mutating func next() -> UInt64 {
        source()
    }
}
