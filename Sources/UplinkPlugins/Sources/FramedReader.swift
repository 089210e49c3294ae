import UplinkCore

/// The read-frame-send loop shared by stream sources (stdin, exec, serial): reads a buffer, frames it into
/// events that share that buffer, and sends them as one chunk.
struct FramedReader {
    let fd: Int32
    let origin: EventOrigin
    var framer: LineFramer
    let readSize: Int

    init(fd: Int32, origin: EventOrigin, framer: LineFramer, readSize: Int = 65536) {
        self.fd = fd
        self.origin = origin
        self.framer = framer
        self.readSize = readSize
    }

    /// Reads until end of input, then sends any unterminated last frame. Cancellation ends it early.
    mutating func run(output: Outbox<RawEvent>, metrics: ComponentMetrics) async throws {
        var offset: Int64 = 0
        var events: [RawEvent] = []
        var truncatedFrames = 0
        while true {
            var buffer = [UInt8](repeating: 0, count: readSize)
            let count = try await AsyncFileDescriptor.read(fd, into: &buffer)
            let now = currentTimeMillis()
            if count == 0 {
                framer.flush { frame in
                    events.append(RawEvent(bytes: frame.bytes, origin: origin, offset: offset + Int64(frame.start), timestamp: now))
                }
                if !events.isEmpty { try await output.send(events) }
                return
            }
            buffer.removeLast(readSize - count)
            let base = offset
            events.reserveCapacity(count / 64 + 1)
            framer.frames(in: buffer) { frame in
                if frame.truncated { truncatedFrames += 1 }
                events.append(
                    RawEvent(bytes: frame.bytes, origin: origin, offset: base + Int64(frame.start), timestamp: now, truncated: frame.truncated))
            }
            offset += Int64(count)
            if !events.isEmpty {
                try await output.send(events)
                events = []
            }
        }
    }
}

/// Framing options shared by stream sources: `delimiter`, `max_line_bytes`.
struct FramingOptions {
    var mode: LineFramer.Mode
    var maxFrameBytes: Int

    static func read(_ config: ConfigReader) -> FramingOptions {
        var mode = LineFramer.Mode.newline
        if let delimiter = config.string("delimiter") {
            let bytes = Array(unescape(delimiter).utf8)
            if bytes.isEmpty {
                config.error("option 'delimiter' must not be empty", at: "delimiter")
            } else if bytes != [0x0A] {
                mode = .delimiter(bytes)
            }
        }
        let maxBytes = config.size("max_line_bytes", default: 1 << 20)
        if maxBytes < 1 { config.error("option 'max_line_bytes' must be at least 1", at: "max_line_bytes") }
        return FramingOptions(mode: mode, maxFrameBytes: max(1, maxBytes))
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
