/// Faults the emulator injects, to exercise a client's retry paths. Mutable at runtime with
/// ``IoTCoreEmulator/setFaults(_:)`` or `POST /_emulator/faults`.
///
/// - `ratio130`: probability (0...1) that a publish is answered with RetCode 130 (service unavailable). Default 0.
/// - `ratio100077`: probability (0...1) that a publish is answered with RetCode 100077 (publish failed). Default 0.
/// - `authRatio130`: probability (0...1) that an authentication is answered with RetCode 130. Default 0.
/// - `latency`: delay added before each `/auth` and `/topic` answer. Default zero.
/// - `refuseConnectionsUntil`: while the clock is before this instant, new TCP connections are closed right
///   after accept, so clients see a connection failure. Default `nil` (accept).
///
/// Faults are drawn before a message is accepted, so a faulted publish is never recorded.
public struct EmulatorFaults: Sendable, Hashable {
    /// Probability that a publish is answered with RetCode 130.
    public var ratio130: Double
    /// Probability that a publish is answered with RetCode 100077.
    public var ratio100077: Double
    /// Probability that an authentication is answered with RetCode 130.
    public var authRatio130: Double
    /// Delay before each protocol answer.
    public var latency: Duration
    /// New connections are closed right after accept until this instant.
    public var refuseConnectionsUntil: ContinuousClock.Instant?

    /// Creates a fault set; the defaults inject nothing.
    public init(
        ratio130: Double = 0,
        ratio100077: Double = 0,
        authRatio130: Double = 0,
        latency: Duration = .zero,
        refuseConnectionsUntil: ContinuousClock.Instant? = nil
    ) {
        self.ratio130 = ratio130
        self.ratio100077 = ratio100077
        self.authRatio130 = authRatio130
        self.latency = latency
        self.refuseConnectionsUntil = refuseConnectionsUntil
    }

    /// Refuses new connections for `duration` from now.
    public mutating func refuseConnections(for duration: Duration) {
        self.refuseConnectionsUntil = ContinuousClock.now.advanced(by: duration)
    }

    /// Whether a connection accepted at `instant` must be refused.
    func refusesConnection(at instant: ContinuousClock.Instant) -> Bool {
        guard let until = self.refuseConnectionsUntil else { return false }
        return instant < until
    }
}
