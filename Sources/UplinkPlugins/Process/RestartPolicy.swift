/// When to restart a process plugin that crashed or hung, as a value: it neither sleeps nor reads a clock.
///
/// Delays double from `initialBackoff` up to `maximumBackoff`. A plugin that made progress (acknowledged a
/// batch, sent events) since its last start begins again from the first delay; one that fails
/// `maxRestarts + 1` times in a row without progress is given up on, and the component fails, so a plugin
/// that can never work does not loop forever.
public struct RestartPolicy: Sendable, Hashable {
    public let initialBackoff: Duration
    public let maximumBackoff: Duration
    public let maxRestarts: Int
    /// Failures since the last progress.
    public private(set) var consecutiveFailures = 0

    public init(initialBackoff: Duration, maximumBackoff: Duration = .seconds(30), maxRestarts: Int) {
        self.initialBackoff = max(initialBackoff, .zero)
        self.maximumBackoff = max(maximumBackoff, initialBackoff)
        self.maxRestarts = max(0, maxRestarts)
    }

    public enum Decision: Sendable, Hashable {
        case restart(after: Duration)
        case giveUp
    }

    /// Records a crash or a timeout and says what to do.
    public mutating func failed(madeProgress: Bool) -> Decision {
        if madeProgress { consecutiveFailures = 0 }
        consecutiveFailures += 1
        if consecutiveFailures > maxRestarts { return .giveUp }
        var delay = initialBackoff
        for _ in 1..<consecutiveFailures {
            delay = delay * 2
            if delay >= maximumBackoff { return .restart(after: maximumBackoff) }
        }
        return .restart(after: min(delay, maximumBackoff))
    }
}
