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
/// wraps its secret in a type that prints `<redacted>`).
public struct UplinkLogHandler: LogHandler {
    public enum Format: String, Sendable, CaseIterable {
        case text, json
    }

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let format: Format

    private static let writeLock = Mutex(())

    public init(label: String, level: Logger.Level, format: Format) {
        self.label = label
        self.logLevel = level
        self.format = format
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
        var line: [UInt8] = []
        line.reserveCapacity(256)
        let time = Self.timestamp()
        switch format {
        case .text:
            line.append(contentsOf: time.utf8)
            line.append(contentsOf: " \(event.level.rawValue.uppercased()) ".utf8)
            if let id = merged.removeValue(forKey: "component_id") {
                line.append(contentsOf: "[\(id)] ".utf8)
            }
            line.append(contentsOf: "\(event.message)".utf8)
            for key in merged.keys.sorted() {
                line.append(contentsOf: " \(key)=".utf8)
                let value = "\(merged[key]!)"
                if value.contains(" ") || value.isEmpty {
                    JSONWriter.appendString(value, to: &line)
                } else {
                    line.append(contentsOf: value.utf8)
                }
            }
        case .json:
            line.append(contentsOf: "{\"timestamp\":".utf8)
            JSONWriter.appendString(time, to: &line)
            line.append(contentsOf: ",\"level\":".utf8)
            JSONWriter.appendString(event.level.rawValue, to: &line)
            line.append(contentsOf: ",\"message\":".utf8)
            JSONWriter.appendString("\(event.message)", to: &line)
            for key in merged.keys.sorted() {
                line.append(UInt8(ascii: ","))
                JSONWriter.appendString(key, to: &line)
                line.append(UInt8(ascii: ":"))
                JSONWriter.appendString("\(merged[key]!)", to: &line)
            }
            line.append(UInt8(ascii: "}"))
        }
        line.append(0x0A)
        Self.writeLock.withLock { _ in
            // A progress line on the terminal is cleared first and redrawn after, so they never share a line.
            ProgressLine.stepAside { _ = line.withUnsafeBytes { FileIO.writeAll(2, $0) } }
        }
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
