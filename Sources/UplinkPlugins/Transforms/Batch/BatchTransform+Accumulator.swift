#if canImport(Glibc)
import Glibc
#endif
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
///
/// A chunk whose records fill one batch and go on in the next has its acknowledgement cut where the next batch
/// begins (``Acknowledgement/split(at:)``, at that record's ``Record/offset``), when the chunk allows it
/// (``Source/cuttable``): the batch sent holds the part before, the records after hold the rest, so the source
/// learns that the first part was delivered even while the rest is in flight. One cut per batch boundary,
/// nothing per record; messages (from `thing_model`, `shadow`) are cut the same way at ``Message/offset``, a
/// message passed through alone from the next one. Otherwise (tokens that cannot be cut, records or messages
/// without increasing offsets) each batch holds its own share of the chunk's token (``Acknowledgement/share()``):
/// each batch is delivered (or lost at a stop) on its own, so the chunk counts as delivered only once all are.
/// A batch always takes a share, never the chunk's token itself, and a cut cuts the share the sent batch holds.
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
        /// The chunk holds one token that can be cut, and its records' (or messages') offsets increase: every
        /// record before a cut lies before its offset, every record after it at or after it.
        var cuttable = false
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
        /// Its share of the token of the chunk `lastSourceID` (the first, when the chunk holds several).
        var share: Acknowledgement?
        var deadline: Duration
        /// Property identifiers already in the message (strings; at most the thing model's 100, so a linear
        /// search: identifiers of consecutive posts share storage and compare in O(1)).
        var identifiers: [Value] = []
        /// A property batch holding one post keeps that post's complete body instead of a copy in `body`: sent
        /// alone (the next post repeats an identifier, as consecutive readings of one sensor do), it goes out as
        /// it came in. The copy is made only when a second post merges in.
        var single: [UInt8]?

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
            let current = single.map { $0.count - closingCount } ?? body.count
            return current + (count > 0 ? 1 : 0) + partCount + closingCount
        }

        /// Starts a property batch with its first post, kept whole (see `single`).
        mutating func begin(with post: [UInt8], from source: Source) {
            single = post
            count = 1
            take(source)
        }

        mutating func append(_ part: some Collection<UInt8>, from source: Source) {
            take(source)
            append(part)
        }

        /// Holds a share of `source`'s acknowledgements, once per run of parts from it.
        mutating func take(_ source: Source) {
            if source.id != lastSourceID {
                let shared = source.acknowledgements.shared()
                acknowledgements.merge(shared)
                share = shared.tokens.first
                lastSourceID = source.id
            }
        }

        /// Appends a part to the body (the caller holds its source's acknowledgements with ``take(_:)``).
        mutating func append(_ part: some Collection<UInt8>) {
            if let first = single {
                // A second post merges in: now the body is needed, without the first post's closing `}}`.
                single = nil
                body.reserveCapacity(first.count + 1 + part.count)
                body.append(contentsOf: first[..<(first.count - closingCount)])
            }
            if count > 0 { body.append(shape == .ndjson ? 0x0A : UInt8(ascii: ",")) }
            body.append(contentsOf: part)
            if shape != .property { parts.append(body.count) }
            count += 1
        }

        /// The message, its body moved out (not copied). A body much smaller than the room reserved for it (a
        /// batch sent by its timeout) is copied to its size, so a message waiting downstream holds what it needs.
        mutating func finish() -> Message {
            if let single {
                self.single = nil
                return Message(topic: topic, body: single, recordCount: count)
            }
            var body = self.body
            self.body = []
            switch shape {
            case .jsonArray: body.append(UInt8(ascii: "]"))
            case .ndjson: break
            case .property:
                body.append(UInt8(ascii: "}"))
                body.append(UInt8(ascii: "}"))
            }
            if body.capacity > 4096 && body.count < body.capacity / 2 { body = Array(body) }
            let framing: BatchFraming? = shape == .jsonArray ? .jsonArray : shape == .ndjson ? .ndjson : nil
            return Message(topic: topic, body: body, framing: framing, parts: parts, recordCount: count)
        }
    }

    let limits: Limits
    private var open: [Batch] = []
    /// The current chunk's token once cut: the part the batches taking its next records hold instead of the
    /// chunk's own token. Dropped at the end of the chunk (``finishChunk()``), so the parts finish with their
    /// batches.
    /// (Two plain fields, not an optional tuple: checked for every record, they cost no reference counting.)
    private var remainderSourceID = -1
    private var remainder = Acknowledgements()
    /// A batch sent at `maxEvents` in the middle of a cuttable chunk, holding a share of the chunk's current token:
    /// the share is cut where the chunk's next record begins (its offset is known only then), before the actions
    /// are sent.
    private var pendingCut: (sourceID: Int, action: Int, token: Acknowledgement)?
    /// The share of the current chunk's acknowledgements that its last message passed through alone holds: the
    /// next one, sent right after it in the same chunk, holds the same share (a sink shares it again per message).
    private var passThrough: (sourceID: Int, acknowledgements: Acknowledgements)?

    init(limits: Limits) {
        self.limits = limits
    }

    /// When the oldest open batch is due.
    var nextDeadline: Duration? { open.lazy.map(\.deadline).min() }

    var isEmpty: Bool { open.isEmpty }

    /// Adds a message; false when it was rejected.
    @discardableResult
    mutating func add(_ message: Message, from chunk: Source, now: Duration, into actions: inout [Action]) -> Bool {
        guard let topic = message.topic, topic.hasPrefix("/$system/") else {
            return addPart(message.body, topic: message.topic, from: chunk, offset: message.offset, now: now, into: &actions)
        }
        cutPending(at: message.offset, from: chunk, in: &actions)
        if topic.hasSuffix("/tmodel/property/post"), let post = Self.propertyPost(message) {
            return addProperties(
                post, original: message.body, topic: topic, from: chunk, offset: message.offset, now: now,
                into: &actions)
        }
        guard message.body.count <= limits.maxBytes else {
            actions.append(.reject(topic: topic, payload: message.body, reason: Self.tooLarge(message.body.count, limits)))
            return false
        }
        // Passed through alone: a batch of its own, cut from the chunk's next message.
        let (acknowledgements, reused) = passThroughShare(of: chunk, after: actions.last)
        actions.append(.emit(message, acknowledgements))
        // A share two messages hold is never cut (one of them would hold a token that no longer answers).
        if chunk.cuttable, !reused, let token = acknowledgements.tokens.first {
            pendingCut = (chunk.id, actions.count - 1, token)
        }
        return true
    }

    /// A share of the chunk's acknowledgements for a message passed through alone: the share of the message
    /// before it when that one is the last action and still holds it (it was not cut from this one), so both go
    /// downstream in one chunk; else a new one.
    private mutating func passThroughShare(of chunk: Source, after last: Action?) -> (Acknowledgements, reused: Bool) {
        if let previous = passThrough, previous.sourceID == chunk.id,
            case .emit(_, let held)? = last, held.tokens.elementsEqual(previous.acknowledgements.tokens, by: ===)
        {
            return (held, true)
        }
        let shared = current(chunk).acknowledgements.shared()
        passThrough = (chunk.id, shared)
        return (shared, false)
    }

    /// Adds one encoded record to the batch of a custom topic; false when it was rejected.
    /// `offset` is the record's ``Record/offset`` (where its source chunk's token is cut when a batch ends before
    /// it), -1 when unknown.
    @discardableResult
    mutating func addPart(
        _ part: some Collection<UInt8>, topic: String?, from chunk: Source, offset: Int64 = -1, now: Duration,
        into actions: inout [Action]
    ) -> Bool {
        cutPending(at: offset, from: chunk, in: &actions)
        let alone = part.count + (limits.encoding == .jsonArray ? 2 : 0)
        guard alone <= limits.maxBytes else {
            actions.append(.reject(topic: topic, payload: Array(part), reason: Self.tooLarge(alone, limits)))
            return false
        }
        var index = open.firstIndex { $0.topic == topic }
        if let current = index, open[current].size(adding: part.count) > limits.maxBytes {
            let share = flush(at: current, into: &actions, shareOf: chunk)
            if chunk.cuttable, offset >= 0, let share {
                cutSent(action: actions.count - 1, holding: share, at: offset, from: chunk, in: &actions)
            }
            index = nil
        }
        let target: Int
        if let index {
            target = index
        } else {
            // Batches of records fill up: their body gets its final size at once instead of growing by copies.
            var body: [UInt8] = []
            body.reserveCapacity(limits.maxBytes)
            if limits.encoding == .jsonArray { body.append(UInt8(ascii: "[")) }
            target = startBatch(topic: topic, shape: limits.encoding == .jsonArray ? .jsonArray : .ndjson, body: body, now: now)
        }
        // The chunk (or what is left of its token) is looked up once per batch it goes into, not per record.
        if open[target].lastSourceID != chunk.id { open[target].take(current(chunk)) }
        open[target].append(part)
        if open[target].count >= limits.maxEvents {
            let share = flush(at: target, into: &actions, shareOf: chunk)
            if chunk.cuttable, let share { pendingCut = (chunk.id, actions.count - 1, share) }
        }
        return true
    }

    /// A batch of the chunk was sent at its record cap: it ends before the record at `offset`.
    private mutating func cutPending(at offset: Int64, from chunk: Source, in actions: inout [Action]) {
        guard let pending = pendingCut, pending.sourceID == chunk.id, offset >= 0 else { return }
        pendingCut = nil
        cutSent(action: pending.action, holding: pending.token, at: offset, from: chunk, in: &actions)
    }

    /// The chunk as its next records must carry it: with the part of its token not yet given to a sent batch.
    private func current(_ chunk: Source) -> Source {
        guard remainderSourceID == chunk.id else { return chunk }
        return Source(id: chunk.id, acknowledgements: remainder, cuttable: chunk.cuttable)
    }

    /// The batch emitted as `actions[action]` holds `token` (its share of the chunk's current token) and ends before
    /// the record at `offset`: it takes the part of `token` before `offset`, and the chunk's next records the part
    /// from it. Nothing changes when the batch does not hold that token, the token cannot be cut there, or a batch
    /// still open (another topic's) holds records of the chunk: a part would then be reported while that batch's
    /// records in it are not delivered, so each batch keeps a share of the whole token instead.
    private mutating func cutSent(
        action: Int, holding token: Acknowledgement, at offset: Int64, from chunk: Source, in actions: inout [Action]
    ) {
        guard actions.indices.contains(action), case .emit(let message, var acknowledgements) = actions[action],
            acknowledgements.tokens.contains(where: { $0 === token }),
            !open.contains(where: { $0.lastSourceID == chunk.id }), let (before, after) = token.split(at: offset)
        else { return }
        acknowledgements.replace(token, with: before)
        actions[action] = .emit(message, acknowledgements)
        remainderSourceID = chunk.id
        remainder = Acknowledgements([after])
    }

    /// The current chunk's records are all added: its token's parts are held by the batches alone.
    mutating func finishChunk() {
        remainderSourceID = -1
        remainder = Acknowledgements()
        pendingCut = nil
        passThrough = nil
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

    /// A property post: its RequestID, the identifiers of its properties (strings), its header
    /// (`{"RequestID":"…","Property":{`) and its encoded entries (`"id":{…},"id2":{…}`), to be copied into a
    /// merged post as they are.
    private struct PropertyPost {
        var identifiers: [Value]
        var header: ArraySlice<UInt8>
        var entries: ArraySlice<UInt8>
        /// The message's body is exactly `header`, `entries` and `}}` (read from the metadata, not re-encoded).
        var isOriginal = false
    }

    /// Reads a property post from the metadata `thing_model` attaches (no parsing, no allocation), or else by
    /// parsing the body. Nil for anything that is not a property post, which is then sent as it is.
    private static func propertyPost(_ message: Message) -> PropertyPost? {
        let body = message.body
        if case .string(let requestID)? = message.metadata[ThingModelTransform.Metadata.requestID],
            case .array(let names)? = message.metadata[ThingModelTransform.Metadata.properties], !names.isEmpty,
            case .int(let start)? = message.metadata[ThingModelTransform.Metadata.entriesStart],
            start > 0, start <= body.count - 2, body[(body.count - 2)...].elementsEqual("}}".utf8),
            // Only metadata that matches the body is trusted: a mismatch falls back to parsing.
            hasPropertyHeader(body, requestID: requestID, length: Int(start)),
            names.allSatisfy({ if case .string = $0 { true } else { false } })
        {
            return PropertyPost(
                identifiers: names, header: body[..<Int(start)], entries: body[Int(start)..<(body.count - 2)],
                isOriginal: true)
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
            identifiers: properties.map { .string($0.name) }, header: propertyHeader(requestID)[...],
            entries: entries[...])
    }

    private static let headerOpening = Array(#"{"RequestID":"#.utf8)
    private static let headerClosing = Array(#","Property":{"#.utf8)

    /// Whether `body` begins with exactly the header of `requestID` and that header is `length` bytes long.
    private static func hasPropertyHeader(_ body: [UInt8], requestID: String, length: Int) -> Bool {
        let opening = Self.headerOpening
        let closing = Self.headerClosing
        var id = requestID
        return id.withUTF8 { idBytes in
            // A RequestID that needs escaping is left to the general check.
            guard let idBase = idBytes.baseAddress, !idBytes.isEmpty,
                JSONWriter.nextSpecialByte(idBase, count: idBytes.count, from: 0) == idBytes.count
            else {
                let header = propertyHeader(requestID)
                return header.count == length && length <= body.count && body[..<length].elementsEqual(header)
            }
            guard length == opening.count + idBytes.count + 2 + closing.count, length <= body.count else { return false }
            return body.withUnsafeBufferPointer { bytes in
                let base = bytes.baseAddress!
                var index = opening.count
                guard memcmp(base, opening, opening.count) == 0, bytes[index] == UInt8(ascii: "\"") else { return false }
                index += 1
                guard memcmp(base + index, idBase, idBytes.count) == 0 else { return false }
                index += idBytes.count
                guard bytes[index] == UInt8(ascii: "\"") else { return false }
                index += 1
                return memcmp(base + index, closing, closing.count) == 0
            }
        }
    }

    private mutating func addProperties(
        _ post: PropertyPost, original: [UInt8], topic: String, from chunk: Source, offset: Int64, now: Duration,
        into actions: inout [Action]
    ) -> Bool {
        let alone = post.header.count + post.entries.count + 2
        guard alone <= limits.maxBytes else {
            actions.append(.reject(topic: topic, payload: original, reason: Self.tooLarge(alone, limits)))
            return false
        }
        var index = open.firstIndex { $0.topic == topic }
        if let current = index {
            let repeats = post.identifiers.contains { open[current].identifiers.contains($0) }
            let tooMany = open[current].identifiers.count + post.identifiers.count > ThingModelTransform.maxProperties
            if repeats || tooMany || open[current].size(adding: post.entries.count) > limits.maxBytes {
                let share = flush(at: current, into: &actions, shareOf: chunk)
                if chunk.cuttable, offset >= 0, let share {
                    cutSent(action: actions.count - 1, holding: share, at: offset, from: chunk, in: &actions)
                }
                index = nil
            }
        }
        let source = current(chunk)
        let target: Int
        if let index {
            target = index
            open[target].append(post.entries, from: source)
            open[target].identifiers.append(contentsOf: post.identifiers)
        } else if post.isOriginal {
            // The original is exactly this post: keep it whole until another one merges in.
            target = startBatch(topic: topic, shape: .property, body: [], now: now)
            open[target].begin(with: original, from: source)
            open[target].identifiers = post.identifiers
        } else {
            var body: [UInt8] = []
            body.reserveCapacity(alone)
            body.append(contentsOf: post.header)
            target = startBatch(topic: topic, shape: .property, body: body, now: now)
            open[target].append(post.entries, from: source)
            open[target].identifiers.append(contentsOf: post.identifiers)
        }
        if open[target].count >= limits.maxEvents {
            let share = flush(at: target, into: &actions, shareOf: chunk)
            if chunk.cuttable, let share { pendingCut = (chunk.id, actions.count - 1, share) }
        }
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
        var batch = open.remove(at: index)
        actions.append(.emit(batch.finish(), batch.acknowledgements))
    }

    /// Sends the batch at `index`; returns its share of `chunk`'s token when it holds records of that chunk.
    private mutating func flush(at index: Int, into actions: inout [Action], shareOf chunk: Source) -> Acknowledgement? {
        let share = open[index].lastSourceID == chunk.id ? open[index].share : nil
        flush(at: index, into: &actions)
        return share
    }

    private static func tooLarge(_ size: Int, _ limits: Limits) -> String {
        "the record is \(size) bytes encoded on its own, over max_bytes (\(limits.maxBytes)): it can never be sent"
    }
}
