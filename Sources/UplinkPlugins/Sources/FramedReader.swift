import Logging
import UplinkCore

/// Frames the bytes of one stream into raw events that share the buffer they were read into, keeping the
/// stream offset, and counting frames cut at the maximum length.
struct EventFramer {
    let origin: EventOrigin
    var framer: LineFramer
    /// Stream offset of the next byte given to ``frame(_:)``.
    var offset: Int64
    /// Frames cut at the maximum frame length (each piece of a split frame counts).
    private(set) var truncatedFrames = 0

    init(origin: EventOrigin, framer: LineFramer, offset: Int64 = 0) {
        self.origin = origin
        self.framer = framer
        self.offset = offset
    }

    /// Frames the next bytes of the stream, appending complete frames to `events`.
    mutating func frame(_ buffer: [UInt8], timestamp: Int64, into events: inout [RawEvent]) {
        let base = offset
        let origin = self.origin
        var truncated = 0
        events.reserveCapacity(events.count + buffer.count / 64 + 1)
        framer.frames(in: buffer) { frame in
            if frame.truncated { truncated += 1 }
            events.append(
                RawEvent(
                    bytes: frame.bytes, origin: origin, offset: base + Int64(frame.start), timestamp: timestamp,
                    truncated: frame.truncated))
        }
        truncatedFrames += truncated
        offset += Int64(buffer.count)
    }

    /// Emits the unterminated last frame, if any (end of stream, or a partial line that waited too long).
    mutating func flush(timestamp: Int64, into events: inout [RawEvent]) {
        let end = offset
        let origin = self.origin
        framer.flush { frame in
            events.append(
                RawEvent(
                    bytes: frame.bytes, origin: origin, offset: end + Int64(frame.start), timestamp: timestamp,
                    truncated: frame.truncated))
        }
    }

    /// The stream offset up to which every byte belongs to an emitted frame (or to a discarded tail): where a
    /// reader must resume so that nothing is lost or repeated.
    var completeOffset: Int64 {
        offset - Int64(framer.pendingByteCount)
    }

    var hasPendingBytes: Bool { framer.pendingByteCount > 0 }
}

/// The read-frame-send loop shared by stream sources (stdin, exec, serial): reads a buffer, frames it into
/// events that share that buffer, and sends them as one chunk.
struct FramedReader {
    let fd: Int32
    var framer: EventFramer
    let readSize: Int

    init(fd: Int32, origin: EventOrigin, framer: LineFramer, readSize: Int = 65536) {
        self.fd = fd
        self.framer = EventFramer(origin: origin, framer: framer)
        self.readSize = readSize
    }

    var origin: EventOrigin { framer.origin }

    /// One read: the complete frames it finished (possibly none), and whether the input has ended (then the
    /// unterminated last frame is included). Throws on read errors and on cancellation.
    mutating func next() async throws -> (events: [RawEvent], ended: Bool) {
        // The read fills the storage: no zero-filling (UInt8 is trivial; every byte kept is one the read wrote).
        var buffer = [UInt8](unsafeUninitializedCapacity: readSize) { _, initialized in initialized = readSize }
        let count = try await AsyncFileDescriptor.read(fd, into: &buffer)
        let now = currentTimeMillis()
        var events: [RawEvent] = []
        if count == 0 {
            framer.flush(timestamp: now, into: &events)
            return (events, true)
        }
        buffer.removeLast(readSize - count)
        framer.frame(buffer, timestamp: now, into: &events)
        return (events, false)
    }

    /// Reads until end of input, then sends any unterminated last frame. Cancellation ends it early.
    mutating func run(output: Outbox<RawEvent>, metrics: ComponentMetrics) async throws {
        while true {
            let (events, ended) = try await next()
            if !events.isEmpty { try await output.send(events) }
            if ended { return }
        }
    }
}

/// Framing options shared by the sources: `delimiter`, the maximum frame length, `long_lines`.
struct FramingOptions {
    var mode: LineFramer.Mode
    var maxFrameBytes: Int
    var longFrames: LineFramer.LongFramePolicy

    /// The option specs, for a source's table. `maxName` is `max_line_bytes` for line sources and
    /// `max_frame_bytes` for the serial source.
    static func specs(
        maxName: String = "max_line_bytes", maxDefault: String = "1MiB", policyName: String = "long_lines"
    ) -> [OptionSpec] {
        [
            OptionSpec(
                "delimiter", .string, default: "\\n",
                "frame delimiter (\\n, \\r\\n, \\0 or any string); the default splits lines and drops a trailing \\r"),
            OptionSpec(maxName, .size, default: maxDefault, "longer frames are cut, flagged as truncated and counted"),
            OptionSpec(
                policyName, .enumeration(LineFramer.LongFramePolicy.allCases.map(\.rawValue)), default: "truncate",
                "truncate: keep the first \(maxName) and discard the rest; split: emit every piece, each flagged"),
        ]
    }

    static func read(
        _ config: ConfigReader, maxName: String = "max_line_bytes", maxDefault: Int = 1 << 20,
        policyName: String = "long_lines"
    ) -> FramingOptions {
        var mode = LineFramer.Mode.newline
        if let delimiter = config.string("delimiter") {
            let bytes = Array(unescape(delimiter).utf8)
            if bytes.isEmpty {
                config.error("option 'delimiter' must not be empty", at: "delimiter")
            } else if bytes != [0x0A] {
                mode = .delimiter(bytes)
            }
        }
        let maxBytes = config.size(maxName, default: maxDefault)
        if maxBytes < 1 { config.error("option '\(maxName)' must be at least 1", at: maxName) }
        let longFrames = config.enumeration(policyName, default: LineFramer.LongFramePolicy.truncate)
        return FramingOptions(mode: mode, maxFrameBytes: max(1, maxBytes), longFrames: longFrames)
    }

    func makeFramer() -> LineFramer {
        LineFramer(mode: mode, maxFrameBytes: maxFrameBytes, longFrames: longFrames)
    }

    /// Lets operators write `\n`, `\r\n`, `\t`, `\0` in a single-quoted YAML string.
    static func unescape(_ text: String) -> String {
        var result = ""
        var escaping = false
        for character in text {
            if escaping {
                switch character {
                case "n": result.append("\n")
                case "r": result.append("\r")
                case "t": result.append("\t")
                case "0": result.append("\0")
                default: result.append(character)
                }
                escaping = false
            } else if character == "\\" {
                escaping = true
            } else {
                result.append(character)
            }
        }
        if escaping { result.append("\\") }
        return result
    }
}

/// Logs, once per component and then as a summary, that frames were cut: never once per frame.
struct TruncationReporter {
    private var reported = 0

    mutating func report(total: Int, limit: Int, logger: Logger, final: Bool = false) {
        guard total > reported else { return }
        if reported == 0 || final {
            logger.warning(
                "frames longer than the maximum were cut",
                metadata: ["frames.truncated": "\(total)", "frames.max_bytes": "\(limit)"])
            reported = total
        }
    }
}
