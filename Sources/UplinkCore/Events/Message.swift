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
    /// Where the data of the record it was made from starts in its source's stream (``Record/offset``), -1 when
    /// unknown or several records: `batch` cuts the chunk's acknowledgement there (``Acknowledgement/split(at:)``).
    public var offset: Int64 = -1

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

extension Message {
    /// Builds a batch from encoded parts (each a complete JSON document), joined by `framing`.
    /// `parts` records where each part ends, so the batch can be split again without decoding.
    public static func batch(
        topic: String?, framing: BatchFraming, parts encodedParts: [ArraySlice<UInt8>], recordCount: Int? = nil
    ) -> Message {
        var body: [UInt8] = []
        body.reserveCapacity(encodedParts.reduce(2) { $0 + $1.count + 1 })
        var ends: [Int] = []
        ends.reserveCapacity(encodedParts.count)
        if framing == .jsonArray { body.append(UInt8(ascii: "[")) }
        for (index, part) in encodedParts.enumerated() {
            if index > 0 { body.append(framing == .jsonArray ? UInt8(ascii: ",") : 0x0A) }
            body.append(contentsOf: part)
            ends.append(body.count)
        }
        if framing == .jsonArray { body.append(UInt8(ascii: "]")) }
        return Message(
            topic: topic, body: body, framing: framing, parts: ends, recordCount: recordCount ?? encodedParts.count)
    }

    /// The encoded size of a batch of parts with these byte counts, without building it: what a batcher checks
    /// against the 131072-byte cap before adding a part.
    public static func batchSize(partBytes: Int, partCount: Int, framing: BatchFraming) -> Int {
        guard partCount > 0 else { return framing == .jsonArray ? 2 : 0 }
        return partBytes + (partCount - 1) + (framing == .jsonArray ? 2 : 0)
    }

    /// The byte ranges of each part in `body` (empty for a single payload).
    public var partRanges: [Range<Int>] {
        guard let framing, !parts.isEmpty else { return [] }
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(parts.count)
        var start = framing == .jsonArray ? 1 : 0
        for end in parts {
            ranges.append(start..<end)
            start = end + 1
        }
        return ranges
    }

    /// Splits a batch of two or more parts into two halves, each a valid batch of the same framing; nil for a
    /// single payload. Used when the server answers that a body is too large.
    public func splitInHalves() -> (Message, Message)? {
        let ranges = partRanges
        guard let framing, ranges.count >= 2 else { return nil }
        let middle = ranges.count / 2
        let first = ranges[..<middle].map { body[$0] }
        let second = ranges[middle...].map { body[$0] }
        let firstRecords = max(1, recordCount * middle / ranges.count)
        return (
            Message.batch(topic: topic, framing: framing, parts: first, recordCount: firstRecords),
            Message.batch(topic: topic, framing: framing, parts: second, recordCount: max(1, recordCount - firstRecords))
        )
    }
}

extension Message {
    /// Specialised for this type (see ``Event/totalByteCount(of:)``).
    public static func totalByteCount(of events: [Message]) -> Int {
        var total = 0
        for event in events { total &+= event.body.count }
        return total
    }
}
