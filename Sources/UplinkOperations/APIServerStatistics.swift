import Synchronization
import UplinkCore

/// What the API listener's limits did, exported on `/metrics` next to the components' series:
///
/// | name | type | |
/// |---|---|---|
/// | `uplink_api_connections` | gauge | connections open now |
/// | `uplink_api_connections_closed_total` | counter | with `reason`: `limit_refused` (a new connection while every one was busy), `limit_evicted` (the longest-idle one closed for a new one), `header_timeout`, `idle_timeout` |
/// | `uplink_api_requests_refused_total` | counter | with `reason`: `host` (a `Host` header naming another machine: 421), `taps` (more taps than ``APIServer/maxTaps``: 503) |
public final class APIServerStatistics: Sendable {
    /// Why the listener closed a connection itself.
    public enum CloseReason: String, Sendable, CaseIterable {
        case limitRefused = "limit_refused"
        case limitEvicted = "limit_evicted"
        case headerTimeout = "header_timeout"
        case idleTimeout = "idle_timeout"
    }

    /// Why a request was answered with an error before reaching its route.
    public enum RefusalReason: String, Sendable, CaseIterable {
        case host
        case taps
    }

    let openConnections = Atomic<Int>(0)
    // Limits are hit rarely: a lock per count costs nothing that matters.
    private let closed = Mutex<[CloseReason: Int]>([:])
    private let refused = Mutex<[RefusalReason: Int]>([:])

    public init() {}

    func closed(_ reason: CloseReason) {
        closed.withLock { $0[reason, default: 0] += 1 }
    }

    func refused(_ reason: RefusalReason) {
        refused.withLock { $0[reason, default: 0] += 1 }
    }

    /// Connections the listener closed for `reason`.
    public func closedConnections(_ reason: CloseReason) -> Int {
        closed.withLock { $0[reason] ?? 0 }
    }

    /// Requests refused for `reason`.
    public func refusedRequests(_ reason: RefusalReason) -> Int {
        refused.withLock { $0[reason] ?? 0 }
    }

    /// Connections open now.
    public var connections: Int { openConnections.load(ordering: .relaxed) }

    var samples: [MetricSample] {
        var samples = [
            MetricSample(
                name: "uplink_api_connections", help: "Connections to the API listener open now.",
                value: .gauge(Double(connections)))
        ]
        for reason in CloseReason.allCases {
            samples.append(
                MetricSample(
                    name: "uplink_api_connections_closed_total",
                    help: "Connections the API listener closed itself: a limit or a timeout.",
                    labels: [("reason", reason.rawValue)], value: .counter(Double(closedConnections(reason)))))
        }
        for reason in RefusalReason.allCases {
            samples.append(
                MetricSample(
                    name: "uplink_api_requests_refused_total",
                    help: "API requests refused before their route: a foreign Host header, or too many taps.",
                    labels: [("reason", reason.rawValue)], value: .counter(Double(refusedRequests(reason)))))
        }
        return samples
    }
}
