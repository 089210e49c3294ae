import UplinkCore

/// The batching state of `batch`, without I/O or clocks: payloads go in with the time, and what to send or
/// dead-letter comes out as actions, so every rule is tested without sleeping (as async-http-client tests its
/// state machines).
///
/// One batch is open per topic. Its size is always measured on the body exactly as it will be sent, closing
/// bytes included, so a batch never exceeds `maxBytes`:
/// - custom topics join records as a JSON array (`[a,b]`) or as newline-delimited JSON (`a\nb`), and `parts`
///   holds each record's end offset so a sink can split the batch again;
/// - thing-model property posts (`/$system/…/tmodel/property/post`) merge into one `Property` object under the
///   first post's RequestID; when an identifier repeats (or the thing model's 100 would be passed), a new message
///   starts, so no sample is lost or overwritten;
/// - other system topics (events: one per message; shadow updates: versioned) pass through one per message.
///
/// A batch is sent when the next record would not fit, at `maxEvents` records, or `timeout` after its first
/// record. A record too large to be sent even alone is rejected with the reason. Each batch carries the
/// acknowledgements of every input chunk that contributed to it.
struct BatchAccumulator {
    struct Limits: Sendable, Equatable {
        var maxBytes: Int
        var maxEvents: Int
        var timeout: Duration
        /// How records on custom topics are joined.
        var encoding: BatchFraming
    }

    /// The input chunk a payload came from: a batch holds each contributing chunk's acknowledgements once.
    struct Source {
        var id: Int
        var acknowledgements: Acknowledgements
    }

    enum Action {
        /// Send this message with these acknowledgements.
        case emit(Message, Acknowledgements)
        /// This payload can never be sent: dead-letter it.
        case reject(topic: String?, payload: [UInt8], reason: String)
    }

    private struct Batch {
        enum Shape { case jsonArray, ndjson, property }

        var topic: String?
        var shape: Shape
        /// The body without its closing bytes.
        var body: [UInt8]
        var parts: [Int] = []
        var count = 0
        var acknowledgements = Acknowledgements()
        var lastSourceID = -1
        var deadline: Duration
        /// Property identifiers already in the message.
        var identifiers: Set<String> = []

        /// `]` of an array, `}}` closing `Property` and the envelope.
        var closingCount: Int {
            switch shape {
            case .jsonArray: return 1
            case .ndjson: return 0
            case .property: return 2
            }
        }

        /// The size of the encoded body with one more part of `partCount` bytes.
        func size(adding partCount: Int) -> Int {
            body.count + (count > 0 ? 1 : 0) + partCount + closingCount
        }

        mutating func append(_ part: some Collection<UInt8>, from source: Source) {
            if count > 0 { body.append(shape == .ndjson ? 0x0A : UInt8(ascii: ",")) }
            body.append(contentsOf: part)
            if shape != .property { parts.append(body.count) }
            count += 1
            if source.id != lastSourceID {
                acknowledgements.merge(source.acknowledgements)
                lastSourceID = source.id
            }
        }

        func finished() -> Message {
            var body = self.body
            switch shape {
            case .jsonArray: body.append(UInt8(ascii: "]"))
            case .ndjson: break
            case .property: body.append(contentsOf: "}}".utf8)
            }
            let framing: BatchFraming? = shape == .jsonArray ? .jsonArray : shape == .ndjson ? .ndjson : nil
            return Message(topic: topic, body: body, framing: framing, parts: parts, recordCount: count)
        }
    }

    let limits: Limits
    private var open: [Batch] = []

    init(limits: Limits) {
        self.limits = limits
    }

    /// When the oldest open batch is due.
    var nextDeadline: Duration? { open.lazy.map(\.deadline).min() }

    var isEmpty: Bool { open.isEmpty }

    /// Adds a message; false when it was rejected.
    @discardableResult
    mutating func add(_ message: Message, from source: Source, now: Duration, into actions: inout [Action]) -> Bool {
        guard let topic = message.topic, topic.hasPrefix("/$system/") else {
            return addPart(message.body, topic: message.topic, from: source, now: now, into: &actions)
        }
        if topic.hasSuffix("/tmodel/property/post"), let post = Self.propertyPost(message) {
            return addProperties(post, original: message.body, topic: topic, from: source, now: now, into: &actions)
        }
        guard message.body.count <= limits.maxBytes else {
            actions.append(.reject(topic: topic, payload: message.body, reason: Self.tooLarge(message.body.count, limits)))
            return false
        }
        actions.append(.emit(message, source.acknowledgements))
        return true
    }

    /// Adds one encoded record to the batch of a custom topic; false when it was rejected.
    @discardableResult
    mutating func addPart(
        _ part: some Collection<UInt8>, topic: String?, from source: Source, now: Duration, into actions: inout [Action]
    ) -> Bool {
        let alone = part.count + (limits.encoding == .jsonArray ? 2 : 0)
        guard alone <= limits.maxBytes else {
            actions.append(.reject(topic: topic, payload: Array(part), reason: Self.tooLarge(alone, limits)))
            return false
        }
        var index = open.firstIndex { $0.topic == topic }
        if let current = index, open[current].size(adding: part.count) > limits.maxBytes {
            flush(at: current, into: &actions)
            index = nil
        }
        let target = index ?? startBatch(
            topic: topic, shape: limits.encoding == .jsonArray ? .jsonArray : .ndjson,
            body: limits.encoding == .jsonArray ? [UInt8(ascii: "[")] : [], now: now)
        open[target].append(part, from: source)
        if open[target].count >= limits.maxEvents { flush(at: target, into: &actions) }
        return true
    }

    /// Sends every batch whose timeout has passed.
    mutating func flushExpired(now: Duration, into actions: inout [Action]) {
        var index = 0
        while index < open.count {
            if open[index].deadline <= now { flush(at: index, into: &actions) } else { index += 1 }
        }
    }

    /// Sends every open batch (end of input).
    mutating func flushAll(into actions: inout [Action]) {
        while !open.isEmpty { flush(at: 0, into: &actions) }
    }

    // MARK: Thing-model property posts

    /// A property post: its RequestID, the identifiers of its properties, and its encoded entries
    /// (`"id":{…},"id2":{…}`), to be copied into a merged post as they are.
    private struct PropertyPost {
        var requestID: String
        var identifiers: [String]
        var header: [UInt8]
        var entries: ArraySlice<UInt8>
    }

    /// Reads a property post from the metadata `thing_model` attaches (no parsing), or else by parsing the body.
    /// Nil for anything that is not a property post, which is then sent as it is.
    private static func propertyPost(_ message: Message) -> PropertyPost? {
        let body = message.body
        if case .string(let requestID)? = message.metadata[ThingModelTransform.Metadata.requestID],
            case .array(let names)? = message.metadata[ThingModelTransform.Metadata.properties], !names.isEmpty,
            case .int(let start)? = message.metadata[ThingModelTransform.Metadata.entriesStart],
            start > 0, start <= body.count - 2, body[(body.count - 2)...].elementsEqual("}}".utf8)
        {
            let header = propertyHeader(requestID)
            // Only metadata that matches the body is trusted: a mismatch falls back to parsing.
            if header.count == Int(start), body[..<header.count].elementsEqual(header) {
                let identifiers = names.compactMap { name -> String? in
                    if case .string(let text) = name { return text } else { return nil }
                }
                if identifiers.count == names.count {
                    return PropertyPost(
                        requestID: requestID, identifiers: identifiers, header: header,
                        entries: body[Int(start)..<(body.count - 2)])
                }
            }
        }
        guard case .object(let envelope)? = try? JSONReader.parse(body), envelope.count == 2,
            case .string(let requestID)? = envelope["RequestID"], case .object(let properties)? = envelope["Property"],
            !properties.isEmpty
        else { return nil }
        var entries: [UInt8] = []
        for property in properties {
            if !entries.isEmpty { entries.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(property.name, to: &entries)
            entries.append(UInt8(ascii: ":"))
            property.value.appendJSON(to: &entries)
        }
        return PropertyPost(
            requestID: requestID, identifiers: properties.map(\.name), header: propertyHeader(requestID),
            entries: entries[...])
    }

    private mutating func addProperties(
        _ post: PropertyPost, original: [UInt8], topic: String, from source: Source, now: Duration,
        into actions: inout [Action]
    ) -> Bool {
        let alone = post.header.count + post.entries.count + 2
        guard alone <= limits.maxBytes else {
            actions.append(.reject(topic: topic, payload: original, reason: Self.tooLarge(alone, limits)))
            return false
        }
        var index = open.firstIndex { $0.topic == topic }
        if let current = index {
            let batch = open[current]
            let repeats = post.identifiers.contains { batch.identifiers.contains($0) }
            let tooMany = batch.identifiers.count + post.identifiers.count > ThingModelTransform.maxProperties
            if repeats || tooMany || batch.size(adding: post.entries.count) > limits.maxBytes {
                flush(at: current, into: &actions)
                index = nil
            }
        }
        let target = index ?? startBatch(topic: topic, shape: .property, body: post.header, now: now)
        open[target].append(post.entries, from: source)
        open[target].identifiers.formUnion(post.identifiers)
        if open[target].count >= limits.maxEvents { flush(at: target, into: &actions) }
        return true
    }

    /// `{"RequestID":"…","Property":{`: a merged post keeps the RequestID of its first record, which is unique.
    private static func propertyHeader(_ requestID: String) -> [UInt8] {
        var header = Array(#"{"RequestID":"#.utf8)
        JSONWriter.appendString(requestID, to: &header)
        header.append(contentsOf: #","Property":{"#.utf8)
        return header
    }

    // MARK: Batches

    private mutating func startBatch(topic: String?, shape: Batch.Shape, body: [UInt8], now: Duration) -> Int {
        open.append(Batch(topic: topic, shape: shape, body: body, deadline: now + limits.timeout))
        return open.count - 1
    }

    private mutating func flush(at index: Int, into actions: inout [Action]) {
        let batch = open.remove(at: index)
        actions.append(.emit(batch.finished(), batch.acknowledgements))
    }

    private static func tooLarge(_ size: Int, _ limits: Limits) -> String {
        "the record is \(size) bytes encoded on its own, over max_bytes (\(limits.maxBytes)): it can never be sent"
    }
}
