import Synchronization

/// How many publishes may be in flight at once, adapted to the round trip (after Vector's adaptive request
/// concurrency): AIMD on the round-trip time and on the service's "temporarily unavailable" answers.
///
/// Throughput to one endpoint is at most `limit x 128 KB` per round trip, so a fixed small limit that is
/// plenty on a LAN starves a link with 50 ms of round trip. The limit is judged once per window of about one
/// round trip (as many answers as the limit):
/// - a window with a RetCode 130 answer or a timeout multiplies the limit by 0.75 (down to 1); a mean round
///   trip above 2x the baseline (the link or the service is queueing) does too, but not below `initial`;
/// - otherwise, when the window kept the limit busy, the limit grows: doubling until the first decrease (slow
///   start, so a long link fills within a few round trips), by one afterwards;
/// - never above `ceiling`, and never above the most requests that were in flight when the service answered
///   130 (what it accepts), until 50 healthy windows at that cap let it probe higher again.
/// One decrease per round trip: answers to requests sent before a decrease are not judged.
///
/// The baseline is the lowest mean round trip of a healthy window, rising by 1% per healthy window, so a link
/// that became slower for good is followed. Auth requests are not counted.
public final class AdaptiveConcurrency: Sendable {
    /// The most in flight when adaptation is off.
    public let ceiling: Int
    /// The configured start, and the floor of decreases on round-trip time alone.
    public let initial: Int
    public let minimum: Int

    struct State {
        var limit: Int
        var inFlight = 0
        var slowStart = true
        var baseline: Double?
        // The current window.
        var answers = 0
        var latencySum = 0.0
        var overloaded = false
        var busy = false
        /// The in-flight count at the last 130: the limit stays at or below it for a while.
        var accepted: Int?
        var healthyWindowsAtCap = 0
        /// Answers to requests sent before the last decrease, which say nothing about the new limit.
        var stale = 0
    }

    let state: Mutex<State>

    /// - Parameters:
    ///   - initial: the limit to start from (the configured `concurrency`).
    ///   - ceiling: the most it may grow to; equal to `initial` for a fixed limit.
    public init(initial: Int, ceiling: Int, minimum: Int = 1) {
        self.ceiling = max(1, ceiling)
        self.minimum = max(1, min(minimum, self.ceiling))
        self.initial = min(max(initial, self.minimum), self.ceiling)
        self.state = Mutex(State(limit: self.initial))
    }

    /// The current limit.
    public var limit: Int { state.withLock { $0.limit } }

    /// Publishes on the wire now.
    public var inFlight: Int { state.withLock { $0.inFlight } }

    /// Whether the limit can change at all.
    public var isAdaptive: Bool { ceiling > initial }

    /// A publish goes on the wire.
    func begin() {
        state.withLock { state in
            state.inFlight += 1
            if state.inFlight >= state.limit { state.busy = true }
        }
    }

    /// A publish came back: `seconds` of round trip when it was answered, `overloaded` for a 130 or a timeout.
    func end(seconds: Double?, overloaded: Bool) {
        state.withLock { state in
            let inFlightBefore = state.inFlight
            state.inFlight -= 1
            guard ceiling > initial else { return }
            if state.stale > 0 {
                state.stale -= 1
                return
            }
            if overloaded {
                state.overloaded = true
                state.accepted = max(minimum, min(state.accepted ?? Int.max, inFlightBefore - 1))
            }
            if let seconds {
                state.answers += 1
                state.latencySum += seconds
            }
            guard state.answers >= state.limit || (state.overloaded && state.answers > 0) else { return }
            judge(&state)
        }
    }

    private func judge(_ state: inout State) {
        let mean = state.latencySum / Double(max(1, state.answers))
        let queueing = state.baseline.map { mean > 2 * $0 } ?? false
        if state.overloaded || queueing {
            let floor = state.overloaded ? minimum : min(initial, state.limit)
            state.limit = max(floor, Int((Double(state.limit) * 0.75).rounded(.down)))
            state.slowStart = false
            // One decrease per round trip: what is still in flight was sent at the old limit.
            state.stale = state.inFlight
        } else {
            // The lowest round trip seen, allowed to rise by 1% per healthy window (the path itself may have
            // become slower). An average would creep up with every +1 and never see queueing.
            state.baseline = state.baseline.map { min(mean, $0 * 1.01) } ?? mean
            var cap = ceiling
            if let accepted = state.accepted {
                cap = min(cap, accepted)
                // Healthy for a while at what the service accepted: it may accept more now.
                if state.limit >= accepted {
                    state.healthyWindowsAtCap += 1
                    if state.healthyWindowsAtCap >= 50 {
                        state.accepted = nil
                        state.healthyWindowsAtCap = 0
                    }
                }
            }
            if state.busy {
                state.limit = min(cap, state.slowStart ? state.limit * 2 : state.limit + 1)
            }
        }
        state.answers = 0
        state.latencySum = 0
        state.overloaded = false
        state.busy = state.inFlight >= state.limit
    }
}
