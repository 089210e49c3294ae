#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
public import Logging
import Synchronization

/// The agent's log output on stderr: `text` for people, `json` (one object per line) for log shippers.
///
/// Metadata values are printed as given; components must never put secrets in them (the IoT-Core client
/// wraps its secret in a type that prints `<redacted>`). Every control character in a message, a key or a
/// value is escaped (``LogText``), so data can never forge or hide a line. Lines at info and above repeat at
/// most ``LogRateLimiter/defaultBurst`` times per component and message in
/// ``LogRateLimiter/defaultInterval``; then one line says how many were suppressed (``LogRateLimiter``).
public struct UplinkLogHandler: LogHandler {
    public enum Format: String, Sendable, CaseIterable {
        case text, json
    }

    /// Where finished lines go, and the rate limiter's state: one per process (``shared``), or a test's own.
    public final class Output: Sendable {
        /// Standard error, with the process-wide rate limiter.
        public static let shared = Output { line in
            // A progress line on the terminal is cleared first and redrawn after, so they never share a line.
            ProgressLine.stepAside { _ = line.withUnsafeBytes { FileIO.writeAll(2, $0) } }
        }

        let write: @Sendable ([UInt8]) -> Void
        let now: @Sendable () -> ContinuousClock.Instant
        let state: Mutex<LogRateLimiter>

        /// - Parameters:
        ///   - rateLimiter: its burst and interval.
        ///   - now: the clock the limiter's intervals run on.
        ///   - write: called with each whole line (newline included), one at a time.
        public init(
            rateLimiter: LogRateLimiter = LogRateLimiter(),
            now: @escaping @Sendable () -> ContinuousClock.Instant = { .now },
            write: @escaping @Sendable ([UInt8]) -> Void
        ) {
            self.write = write
            self.now = now
            self.state = Mutex(rateLimiter)
        }

        /// Writes a line for every count the limiter still holds (at exit, so no suppression goes unreported).
        public func flushSuppressed(format: Format) {
            state.withLock { limiter in
                for suppressed in limiter.drain() { write(UplinkLogHandler.line(for: suppressed, format: format)) }
            }
        }
    }

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let format: Format
    let output: Output

    public init(label: String, level: Logger.Level, format: Format, output: Output = .shared) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.output = output
    }

    /// Installs the handler for every logger in the process.
    public static func bootstrap(level: Logger.Level, format: Format) {
        LoggingSystem.bootstrap { label in UplinkLogHandler(label: label, level: level, format: format) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let component = merged.removeValue(forKey: "component_id").map { "\($0)" }
        let message = "\(event.message)"
        let line = Self.line(
            time: Self.timestamp(), level: event.level, component: component, message: message, metadata: merged,
            format: format)
        let format = self.format
        let output = self.output
        output.state.withLock { limiter in
            // Trace and debug are asked for explicitly, and are written in full.
            var write = true
            var due: [LogRateLimiter.Suppressed] = []
            if event.level >= .info {
                (write, due) = limiter.admit(
                    LogRateLimiter.Key(component: component ?? label, message: message), level: event.level,
                    at: output.now())
            } else {
                due = limiter.expire(at: output.now())
            }
            for suppressed in due { output.write(Self.line(for: suppressed, format: format)) }
            if write { output.write(line) }
        }
    }

    /// The line reporting what the limiter held back, at the level of the lines it stands for.
    static func line(for suppressed: LogRateLimiter.Suppressed, format: Format) -> [UInt8] {
        line(
            time: timestamp(), level: suppressed.level, component: suppressed.key.component,
            message: "suppressed \(suppressed.count) similar messages",
            metadata: ["log.suppressed": "\(suppressed.count)", "log.message": "\(suppressed.key.message)"],
            format: format)
    }

    static func line(
        time: String, level: Logger.Level, component: String?, message: String, metadata: Logger.Metadata,
        format: Format
    ) -> [UInt8] {
        var line: [UInt8] = []
        line.reserveCapacity(256)
        switch format {
        case .text:
            line.append(contentsOf: time.utf8)
            line.append(contentsOf: " \(level.rawValue.uppercased()) ".utf8)
            if let component {
                line.append(UInt8(ascii: "["))
                LogText.appendEscaped(component, to: &line)
                line.append(contentsOf: "] ".utf8)
            }
            LogText.appendEscaped(message, to: &line)
            for key in metadata.keys.sorted() {
                line.append(UInt8(ascii: " "))
                LogText.appendEscaped(key, to: &line)
                line.append(UInt8(ascii: "="))
                let value = "\(metadata[key]!)"
                if LogText.needsQuotes(value) {
                    LogText.appendQuoted(value, to: &line)
                } else {
                    line.append(contentsOf: value.utf8)
                }
            }
        case .json:
            line.append(contentsOf: "{\"timestamp\":".utf8)
            LogText.appendQuoted(time, to: &line)
            line.append(contentsOf: ",\"level\":".utf8)
            LogText.appendQuoted(level.rawValue, to: &line)
            line.append(contentsOf: ",\"message\":".utf8)
            LogText.appendQuoted(message, to: &line)
            var metadata = metadata
            if let component { metadata["component_id"] = .string(component) }
            for key in metadata.keys.sorted() {
                line.append(UInt8(ascii: ","))
                LogText.appendQuoted(key, to: &line)
                line.append(UInt8(ascii: ":"))
                LogText.appendQuoted("\(metadata[key]!)", to: &line)
            }
            line.append(UInt8(ascii: "}"))
        }
        line.append(0x0A)
        return line
    }

    /// RFC 3339 UTC with milliseconds, without Foundation.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let millis = Int32(now.tv_nsec / 1_000_000)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(millis, 3))Z"
    }
}

/// Wall-clock milliseconds since the Unix epoch, as events carry them.
public func currentTimeMillis() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec / 1_000_000)
}
