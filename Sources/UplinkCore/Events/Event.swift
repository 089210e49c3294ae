/// The kinds of event that travel on the pipeline's edges. Each stage declares the kind it accepts and the
/// kind it produces; the topology checks every edge before anything runs.
public enum EventKind: String, Sendable, CaseIterable, Hashable, CustomStringConvertible {
    /// Framed bytes from a source: a line, a serial frame. Not necessarily UTF-8.
    case raw
    /// A structured record: ordered fields with typed values.
    case record
    /// A payload addressed to a topic, ready for a sink (possibly a batch of several records).
    case message

    public var description: String {
        switch self {
        case .raw: return "raw (framed bytes)"
        case .record: return "record (structured fields)"
        case .message: return "message (topic + payload)"
        }
    }

    /// The Swift type carrying this kind, so generic stages (stdout, file) can be specialised at build time.
    public var eventType: any Event.Type {
        switch self {
        case .raw: return RawEvent.self
        case .record: return Record.self
        case .message: return Message.self
        }
    }
}

/// A value that travels on an edge.
public protocol Event: Sendable {
    static var kind: EventKind { get }

    /// The event's size in bytes as counted by metrics (payload bytes, not in-memory size).
    var byteCount: Int { get }

    /// Appends a one-line text form (no trailing newline) for line-oriented sinks such as `stdout` and `file`.
    func appendText(to buffer: inout [UInt8])

    /// The summed ``byteCount`` of `events`. A requirement (not only an extension) so that generic code — the
    /// outboxes and inboxes count every chunk — makes one witness call per chunk and runs a loop specialised
    /// for the concrete type, instead of copying each event out and calling a witness per event.
    static func totalByteCount(of events: [Self]) -> Int
}

extension Event {
    public static func totalByteCount(of events: [Self]) -> Int {
        var total = 0
        for event in events { total &+= event.byteCount }
        return total
    }
}
