public import Logging

/// Holds back repeated log lines: per component and message, at most ``burst`` lines in each ``interval``; the
/// rest are counted, and once the interval is over one line says how many were suppressed.
///
/// Messages are constant phrases with the data in metadata, so "the same message from the same component" is
/// the same problem happening again: a dead letter per record, a checkpoint write failing every 200 ms. The
/// first few lines show it; the counts show how often. A pure state machine: time is passed in, nothing is
/// written here (``UplinkLogHandler`` asks it and writes).
public struct LogRateLimiter: Sendable {
    public struct Key: Hashable, Sendable {
        public var component: String
        public var message: String

        public init(component: String, message: String) {
            self.component = component
            self.message = message
        }
    }

    /// Lines held back for one key in one interval, to be reported in one line.
    public struct Suppressed: Equatable, Sendable {
        public var key: Key
        public var level: Logger.Level
        public var count: Int
    }

    /// Lines per key and interval written before the rest are held back.
    public static let defaultBurst = 5
    /// How long a key's count runs before it starts again.
    public static let defaultInterval = Duration.seconds(30)
    /// Keys tracked at once; beyond, the oldest interval is closed early (and reported).
    public static let maxKeys = 256

    private struct Window {
        var start: ContinuousClock.Instant
        var written: Int
        var suppressed: Int
        var level: Logger.Level
    }

    public let burst: Int
    public let interval: Duration
    private var windows: [Key: Window] = [:]

    public init(burst: Int = defaultBurst, interval: Duration = defaultInterval) {
        self.burst = max(1, burst)
        self.interval = interval
    }

    /// Whether a line for `key` at `level` is written now, and what held-back lines are due for reporting first
    /// (of this key or any other whose interval is over).
    public mutating func admit(
        _ key: Key, level: Logger.Level, at now: ContinuousClock.Instant
    ) -> (write: Bool, due: [Suppressed]) {
        var due = expire(at: now)
        if var window = windows[key] {
            if window.written < burst {
                window.written += 1
                windows[key] = window
                return (true, due)
            }
            window.suppressed += 1
            window.level = max(window.level, level)
            windows[key] = window
            return (false, due)
        }
        if windows.count >= Self.maxKeys, let oldest = windows.min(by: { $0.value.start < $1.value.start }) {
            windows.removeValue(forKey: oldest.key)
            if oldest.value.suppressed > 0 {
                due.append(Suppressed(key: oldest.key, level: oldest.value.level, count: oldest.value.suppressed))
            }
        }
        windows[key] = Window(start: now, written: 1, suppressed: 0, level: level)
        return (true, due)
    }

    /// Closes every interval that is over at `now` and returns what they held back.
    public mutating func expire(at now: ContinuousClock.Instant) -> [Suppressed] {
        var due: [Suppressed] = []
        for (key, window) in windows where now - window.start >= interval {
            windows.removeValue(forKey: key)
            if window.suppressed > 0 { due.append(Suppressed(key: key, level: window.level, count: window.suppressed)) }
        }
        return due.sorted { ($0.key.component, $0.key.message) < ($1.key.component, $1.key.message) }
    }

    /// Closes every interval, over or not (at exit), and returns what they held back.
    public mutating func drain() -> [Suppressed] {
        defer { windows.removeAll() }
        return windows.compactMap { key, window in
            window.suppressed > 0 ? Suppressed(key: key, level: window.level, count: window.suppressed) : nil
        }.sorted { ($0.key.component, $0.key.message) < ($1.key.component, $1.key.message) }
    }
}
