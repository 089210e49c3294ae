import Logging
import Synchronization
import UplinkCore

/// A component as the API sees it, with counters set by the test.
func component(
    _ id: String, type: String = "json", role: ComponentRole = .transform, buffer: BufferStatus? = nil,
    metrics: ComponentMetrics = ComponentMetrics()
) -> ComponentStatus {
    ComponentStatus(id: id, type: type, role: role, metrics: metrics, buffer: buffer)
}

/// Keeps what is logged, for checking summary lines.
final class CapturedLogs: Sendable {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let entries = Mutex<[Entry]>([])

    var all: [Entry] { entries.withLock { $0 } }

    func append(_ entry: Entry) { entries.withLock { $0.append(entry) } }

    var logger: Logger {
        Logger(label: "test") { _ in Handler(logs: self) }
    }

    struct Handler: LogHandler {
        let logs: CapturedLogs
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var merged = metadata
            if let extra = event.metadata { merged.merge(extra) { _, new in new } }
            logs.append(
                Entry(level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" }))
        }
    }
}
