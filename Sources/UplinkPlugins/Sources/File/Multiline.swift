import UplinkCore

/// `multiline` settings: a line matching `start_pattern` begins an event; the lines that follow and do not
/// match are joined to it with `\n` (stack traces, wrapped messages).
struct MultilineOptions: Sendable {
    var startPattern: String
    var timeout: Duration
    var maxLines: Int

    static let specs: [OptionSpec] = [
        OptionSpec("start_pattern", .string, required: true, "regular expression (PCRE2) matching the first line of an event; a line it needs more than 100,000 steps to decide is a continuation line, counted as an error"),
        OptionSpec("timeout", .duration, default: "1s", "an event with no new line for this long is sent as it is"),
        OptionSpec("max_lines", .int, default: "500", "an event is sent when it reaches this many lines"),
    ]

    static func read(_ config: ConfigReader) -> MultilineOptions? {
        guard let nested = config.nested("multiline") else { return nil }
        defer { nested.finish() }
        guard let pattern = nested.string("start_pattern") else { return nil }
        do {
            _ = try BoundedRegex(pattern)
            if BoundedRegex.hasNestedQuantifier(pattern) {
                nested.warning(
                    "'multiline.start_pattern' repeats a group that itself repeats, like (a+)+: on a line that almost matches it backtracks exponentially; such a line is given up after \(BoundedRegex.defaultMaxSteps) steps and taken as a continuation line (counted as an error)",
                    at: "start_pattern")
            }
        } catch {
            nested.error(
                "option 'multiline.start_pattern' is not a valid regular expression: \(error)", at: "start_pattern")
        }
        let timeout = nested.duration("timeout", default: .seconds(1))
        if timeout <= .zero { nested.error("option 'multiline.timeout' must be more than 0", at: "timeout") }
        let maxLines = nested.int("max_lines", default: 500, range: 1...1_000_000)
        return MultilineOptions(startPattern: pattern, timeout: timeout, maxLines: maxLines)
    }
}

/// Joins lines into multi-line events. Pure: the caller says whether each line starts an event.
///
/// A group of one line stays a slice of the read buffer; only real groups are copied into a new array.
struct MultilineAggregator {
    let maxLines: Int
    let maxBytes: Int
    private var lines: [ArraySlice<UInt8>] = []
    private var first: RawEvent? = nil
    private var byteCount = 0
    private var truncated = false

    init(maxLines: Int, maxBytes: Int) {
        self.maxLines = max(1, maxLines)
        self.maxBytes = max(1, maxBytes)
    }

    /// The stream offset of the first line of the event being gathered: where a restart must resume.
    var pendingStart: Int64? { first?.offset }
    var isEmpty: Bool { first == nil }

    /// Adds a line; emits the previous event when this line starts a new one (or the event is full).
    mutating func add(_ line: RawEvent, isStart: Bool, into events: inout [RawEvent]) {
        if first != nil && (isStart || lines.count >= maxLines) { flush(into: &events) }
        if first == nil {
            first = line
            lines = [line.bytes]
            byteCount = line.bytes.count
            truncated = line.truncated
            return
        }
        lines.append(line.bytes)
        byteCount += 1 + line.bytes.count
        truncated = truncated || line.truncated
    }

    /// Emits the event being gathered, if any.
    mutating func flush(into events: inout [RawEvent]) {
        guard var event = first else { return }
        if lines.count > 1 {
            var joined: [UInt8] = []
            joined.reserveCapacity(min(byteCount, maxBytes))
            for (index, line) in lines.enumerated() {
                if index > 0 { joined.append(0x0A) }
                joined.append(contentsOf: line)
                if joined.count >= maxBytes {
                    if index < lines.count - 1 { truncated = true }
                    break
                }
            }
            if joined.count > maxBytes {
                joined.removeLast(joined.count - maxBytes)
                truncated = true
            }
            event.bytes = joined[...]
        }
        event.truncated = truncated
        events.append(event)
        first = nil
        lines = []
        byteCount = 0
        truncated = false
    }
}
