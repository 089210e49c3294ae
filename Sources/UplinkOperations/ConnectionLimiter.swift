import NIOCore
import Synchronization

/// Keeps the API listener within `api.max_connections` open connections, each a file descriptor.
///
/// A new connection beyond the limit closes the connection that has been idle longest (no request in progress:
/// a keep-alive connection, or one whose request head has not arrived yet), so a flood of idle or slow-header
/// connections can never lock `/health` out; only when every connection is busy (a response, a tap stream)
/// is the new one refused. Both are counted (``APIServerStatistics``).
final class ConnectionLimiter: Sendable {
    enum Admission {
        case admitted
        /// Admitted; `evicted` must be closed to make room.
        case admittedEvicting(any Channel)
        case refused
    }

    private struct Entry {
        let channel: any Channel
        /// Requests read and not yet answered.
        var requestsInProgress = 0
        /// Since when no request has been in progress.
        var idleSince: ContinuousClock.Instant
    }

    let maxConnections: Int
    let statistics: APIServerStatistics
    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])

    init(maxConnections: Int, statistics: APIServerStatistics) {
        self.maxConnections = max(1, maxConnections)
        self.statistics = statistics
    }

    /// Decides on a connection just accepted; an admitted one leaves the count when it closes.
    func admit(_ channel: any Channel) -> Admission {
        let now = ContinuousClock.now
        let admission = entries.withLock { entries -> Admission in
            var admission = Admission.admitted
            if entries.count >= maxConnections {
                let idle = entries.filter { $0.value.requestsInProgress == 0 }
                guard let oldest = idle.min(by: { $0.value.idleSince < $1.value.idleSince }) else { return .refused }
                entries.removeValue(forKey: oldest.key)
                admission = .admittedEvicting(oldest.value.channel)
            }
            entries[ObjectIdentifier(channel)] = Entry(channel: channel, idleSince: now)
            statistics.openConnections.store(entries.count, ordering: .relaxed)
            return admission
        }
        switch admission {
        case .admitted:
            break
        case .admittedEvicting(let evicted):
            statistics.closed(.limitEvicted)
            evicted.close(promise: nil)
        case .refused:
            statistics.closed(.limitRefused)
            return .refused
        }
        channel.closeFuture.whenComplete { [self] _ in self.remove(ObjectIdentifier(channel)) }
        return admission
    }

    /// A request's head arrived on `channel`: it is busy until its response ends.
    func requestStarted(on channel: any Channel) {
        entries.withLock { $0[ObjectIdentifier(channel)]?.requestsInProgress += 1 }
    }

    /// A response ended on `channel`.
    func requestEnded(on channel: any Channel) {
        let now = ContinuousClock.now
        entries.withLock { entries in
            guard var entry = entries[ObjectIdentifier(channel)] else { return }
            entry.requestsInProgress = max(0, entry.requestsInProgress - 1)
            if entry.requestsInProgress == 0 { entry.idleSince = now }
            entries[ObjectIdentifier(channel)] = entry
        }
    }

    private func remove(_ id: ObjectIdentifier) {
        entries.withLock { entries in
            entries.removeValue(forKey: id)
            statistics.openConnections.store(entries.count, ordering: .relaxed)
        }
    }
}
