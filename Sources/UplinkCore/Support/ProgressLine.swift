#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// A one-line progress report for long one-off work (a backlog read from the beginning, a dead-letter replay,
/// a large publish): `label: 120.0MiB / 1.2GiB (10%), 45.2MiB/s, ETA 24s`, redrawn in place with `\r`.
///
/// It prints only when its output (stderr by default) is a terminal, so logs and pipes stay clean; at most
/// every 200 ms; and log lines written through ``UplinkLogHandler`` clear it first and redraw it after, so the
/// two never mix on one line. One line is shown at a time: a second one started while another is active stays
/// quiet.
///
/// ```swift
/// let progress = ProgressLine(label: "replaying dead letters", total: letters.count, unit: .events)
/// for (index, letter) in letters.enumerated() {
///     try await replay(letter)
///     progress.update(done: index + 1)
/// }
/// progress.finish()
/// ```
public final class ProgressLine: Sendable {
    /// What is counted, for formatting.
    public enum Unit: Sendable {
        case bytes, events
    }

    public let label: String
    public let unit: Unit
    /// Whether anything is printed: the output is a terminal and no other line was active.
    public var isEnabled: Bool { state.withLock { $0.enabled } }
    private let fd: Int32
    private let started: ContinuousClock.Instant
    private let state: Mutex<State>

    private struct State {
        var enabled = false
        var total: Int?
        var done = 0
        var lastDraw: ContinuousClock.Instant?
        var finished = false
        var text = ""
    }

    /// The line logs must step around, if any.
    private static let active = Mutex<ProgressLine?>(nil)

    /// - Parameters:
    ///   - total: the amount of work when known (nil: no percentage and no ETA).
    ///   - fd: where to print; 2 (stderr) by default.
    ///   - forceEnabled: print even when `fd` is not a terminal (tests).
    public init(label: String, total: Int?, unit: Unit, fd: Int32 = 2, forceEnabled: Bool = false) {
        self.label = label
        self.unit = unit
        self.fd = fd
        self.started = .now
        self.state = Mutex(State(total: total))
        guard forceEnabled || isatty(fd) == 1 else { return }
        let claimed = Self.active.withLock { active in
            guard active == nil else { return false }
            active = self
            return true
        }
        state.withLock { $0.enabled = claimed }
    }

    /// Records progress; redraws when enabled and the last draw is 200 ms old.
    public func update(done: Int, total: Int? = nil) {
        guard isEnabled else { return }
        let now = ContinuousClock.now
        let text: String? = state.withLock { state in
            guard !state.finished else { return nil }
            state.done = done
            if let total { state.total = total }
            if let last = state.lastDraw, now - last < .milliseconds(200) { return nil }
            state.lastDraw = now
            state.text = Self.format(
                label: label, done: done, total: state.total, elapsed: now - started, unit: unit)
            return state.text
        }
        if let text { write("\r\u{1B}[K" + text) }
    }

    /// Draws the final state and ends the line. Idempotent.
    public func finish() {
        guard isEnabled else { return }
        let text: String? = state.withLock { state in
            guard !state.finished else { return nil }
            state.finished = true
            return Self.format(label: label, done: state.done, total: state.total, elapsed: .now - started, unit: unit)
        }
        guard let text else { return }
        write("\r\u{1B}[K" + text + "\n")
        Self.active.withLock { if $0 === self { $0 = nil } }
    }

    /// Runs `body` (which writes a log line to the same terminal) with the active line cleared, then redraws it.
    public static func stepAside(_ body: () -> Void) {
        guard let line = active.withLock({ $0 }) else {
            body()
            return
        }
        let text = line.state.withLock { $0.finished ? "" : $0.text }
        if text.isEmpty {
            body()
            return
        }
        line.write("\r\u{1B}[K")
        body()
        line.write(text)
    }

    private func write(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { FileIO.writeAll(fd, $0) }
    }

    /// `label: done / total (pct), rate/s, ETA 1m05s`; without a total: `label: done, rate/s`.
    public static func format(label: String, done: Int, total: Int?, elapsed: Duration, unit: Unit) -> String {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = seconds > 0 ? Double(done) / seconds : 0
        var text = "\(label): \(amount(done, unit))"
        if let total, total > 0 {
            let percent = min(100, Int((Double(done) / Double(total) * 100).rounded(.down)))
            text += " / \(amount(total, unit)) (\(percent)%)"
        }
        text += ", \(amount(Int(rate.rounded()), unit))/s"
        if let total, total > done, rate > 0 {
            text += ", ETA \(duration(Double(total - done) / rate))"
        }
        return text
    }

    static func amount(_ value: Int, _ unit: Unit) -> String {
        switch unit {
        case .events:
            return String(value)
        case .bytes:
            let units: [(Double, String)] = [(1_073_741_824, "GiB"), (1_048_576, "MiB"), (1024, "KiB")]
            for (size, name) in units where Double(value) >= size {
                return String(Double(Int(Double(value) / size * 10)) / 10) + name
            }
            return "\(value)B"
        }
    }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded(.up))
        if total >= 3600 { return "\(total / 3600)h\(pad(total % 3600 / 60))m" }
        if total >= 60 { return "\(total / 60)m\(pad(total % 60))s" }
        return "\(total)s"
    }

    private static func pad(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
}
