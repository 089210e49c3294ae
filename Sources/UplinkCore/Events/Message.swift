/// A payload addressed to a topic: what a sink publishes.
///
/// A batch is a message whose body holds several encoded records; `parts` remembers where each one ends so a
/// sink can split a batch the server rejected as too large without decoding it.
public struct Message: Event {
    public static var kind: EventKind { .message }

    /// The topic; nil means the sink's default topic.
    public var topic: String?
    public var body: [UInt8]
    /// How the parts of a batch are joined; nil for a single payload.
    public var framing: BatchFraming?
    /// End offsets of each part in `body` (exclusive, ascending); empty for a single payload.
    public var parts: [Int]
    /// How many records this message carries, for metrics.
    public var recordCount: Int
    /// Facts about the body for downstream stages, so they need not parse it again; empty by default. Names are
    /// prefixed by the producer: `thing_model` describes a property post (`thing_model.request_id`, …) so that
    /// `batch` merges posts by copying bytes. Not sent anywhere.
    public var metadata: Fields

    public init(
        topic: String?, body: [UInt8], framing: BatchFraming? = nil, parts: [Int] = [], recordCount: Int = 1,
        metadata: Fields = Fields()
    ) {
        self.topic = topic
        self.body = body
        self.framing = framing
        self.parts = parts
        self.recordCount = recordCount
        self.metadata = metadata
    }

    public var byteCount: Int { body.count }

    public func appendText(to buffer: inout [UInt8]) {
        buffer.append(contentsOf: body)
    }
}

/// How a batch joins its parts. Both keep every part a valid JSON document on its own.
public enum BatchFraming: String, Sendable, CaseIterable {
    /// `[a,b,c]`
    case jsonArray = "json_array"
    /// `a\nb\nc`
    case ndjson
}
