/// Framed bytes from a source, with where and when they were read.
///
/// `bytes` is a slice of the buffer the source read into: all the lines of one read share that buffer, so
/// framing allocates nothing per line.
public struct RawEvent: Event {
    public static var kind: EventKind { .raw }

    public var bytes: ArraySlice<UInt8>
    public var origin: EventOrigin
    /// Byte offset of the frame's start in its file or stream, when the source knows it.
    public var offset: Int64
    /// Milliseconds since the Unix epoch when the frame was read.
    public var timestamp: Int64
    /// Set when the frame was cut at the source's maximum frame length.
    public var truncated: Bool

    public init(
        bytes: ArraySlice<UInt8>,
        origin: EventOrigin,
        offset: Int64 = -1,
        timestamp: Int64,
        truncated: Bool = false
    ) {
        self.bytes = bytes
        self.origin = origin
        self.offset = offset
        self.timestamp = timestamp
        self.truncated = truncated
    }

    public var byteCount: Int { bytes.count }

    public func appendText(to buffer: inout [UInt8]) {
        buffer.append(contentsOf: bytes)
    }
}

extension RawEvent {
    /// Specialised for this type (see ``Event/totalByteCount(of:)``).
    public static func totalByteCount(of events: [RawEvent]) -> Int {
        var total = 0
        for event in events { total &+= event.bytes.count }
        return total
    }
}
