public import Logging
public import ServiceLifecycle
public import UplinkCore

/// Logs one line per component per interval (a minute by default) at info level: what it received, sent,
/// dropped and the errors it counted during that interval. Never a line per event: operators see a silent
/// component as a line of zeros, and a busy one costs the same single line.
public final class SummaryLogger: Service, Sendable {
    let interval: Duration
    let components: @Sendable () -> [ComponentStatus]
    let logger: Logger

    /// - Parameters:
    ///   - interval: how often; injectable so tests need not wait a minute.
    ///   - components: read at each tick.
    public init(interval: Duration, logger: Logger, components: @escaping @Sendable () -> [ComponentStatus]) {
        self.interval = interval
        self.logger = logger
        self.components = components
    }

    public func run() async throws {
        guard interval > .zero else { return }
        var previous: [String: ComponentMetrics.Snapshot] = [:]
        for status in components() { previous[status.id] = status.metrics.snapshot }
        // Ends on graceful shutdown or cancellation; a final summary is left to the components' own end logs.
        while !Task.isShuttingDownGracefully {
            do {
                let interval = self.interval
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            if Task.isShuttingDownGracefully || Task.isCancelled { return }
            for status in components() {
                let now = status.metrics.snapshot
                let before = previous[status.id] ?? ComponentMetrics.Snapshot()
                previous[status.id] = now
                logger.info("component summary", metadata: Self.metadata(status, now: now, before: before, interval: interval))
            }
        }
    }

    /// The line's metadata: the interval's deltas, the component's labels, the input buffer's fill.
    static func metadata(
        _ status: ComponentStatus, now: ComponentMetrics.Snapshot, before: ComponentMetrics.Snapshot,
        interval: Duration
    ) -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            "component_id": "\(status.id)", "component_type": "\(status.type)",
            "component_kind": "\(status.role.rawValue)",
            "summary.interval": "\(format(interval))",
            "events.received": "\(now.receivedEvents - before.receivedEvents)",
            "bytes.received": "\(now.receivedBytes - before.receivedBytes)",
            "events.sent": "\(now.sentEvents - before.sentEvents)",
            "bytes.sent": "\(now.sentBytes - before.sentBytes)",
            "events.dropped": "\(now.droppedEvents - before.droppedEvents)",
            "errors": "\(now.errors - before.errors)",
        ]
        if let buffer = status.buffer {
            metadata["buffer.events"] = "\(buffer.events)"
            // Cumulative, so the last line tells the whole story of a full buffer.
            if buffer.droppedFull > 0 { metadata["buffer.dropped_full_total"] = "\(buffer.droppedFull)" }
        }
        if status.metrics.state != .running { metadata["component.state"] = "\(status.metrics.state.name)" }
        return metadata
    }
}

/// `1m`, `30s`, `1.5s`, `250ms`: the way durations are written in the configuration.
func format(_ duration: Duration) -> String {
    let milliseconds = Int64((duration.seconds * 1000).rounded())
    if milliseconds % 60_000 == 0 && milliseconds > 0 { return "\(milliseconds / 60_000)m" }
    if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
    if milliseconds < 1000 { return "\(milliseconds)ms" }
    return "\(Double(milliseconds) / 1000)s"
}
