import UplinkCore

/// `batch`: groups records or messages per topic into payloads no larger than IoT-Core's 128 KB request body.
///
/// A batch is sent when the next record would take it past `max_bytes` (measured on the body exactly as it
/// will be sent), at `max_events` records, or `timeout` after its first record, and whatever is open is sent when
/// the input ends. Custom topics join records as a JSON array or newline-delimited JSON (`encoding`); thing-model
/// property posts merge into one `Property` object (a repeated identifier starts a new message); thing-model
/// events and shadow updates pass through one per message. A record that alone is over `max_bytes` goes to the
/// dead-letter file with the reason. Every batch carries the acknowledgements of all the records in it; where a
/// source chunk's records go on from one batch into the next, its acknowledgement is cut there, so each batch
/// acknowledges only its own part of the chunk (``BatchAccumulator``).
///
/// Records (from `json`) become messages on `topic`, or on the sink's default topic when it is not set.
public struct BatchTransform<Input: Event>: TransformStage {
    public typealias Output = Message

    /// IoT-Core's limit for one HTTP request body, and the default.
    public static var hardMaxBytes: Int { 131_072 }

    public static var descriptor: PluginDescriptor {
        PluginDescriptor(
            type: "batch", role: .transform,
            summary: "Groups records or messages per topic into bodies of at most 128 KB: JSON arrays, NDJSON, or merged thing-model property posts.",
            options: [
                OptionSpec("max_bytes", .size, default: "131072", "send a batch before its encoded body would pass this size (1KiB to 131072, IoT-Core's limit)"),
                OptionSpec("max_events", .int, default: "1000", "send a batch when it holds this many records"),
                OptionSpec("timeout", .duration, default: "1s", "send a batch this long after its first record, even if not full"),
                OptionSpec("encoding", .enumeration(BatchFraming.allCases.map(\.rawValue)), default: "json_array", "how records on custom topics are joined: json_array ([a,b]) or ndjson (one per line)"),
                OptionSpec("topic", .string, "record input: the topic of the batches; default: the sink's default topic"),
            ] + DeadLetterSettings.options,
            accepts: [.record, .message], output: .kind(.message),
            // What arrives is packed into bodies as fast as it comes: a deep queue in front adds no throughput,
            // only memory (4096 waiting records ~3 MiB at peak, measured; 1024 is one or two source reads).
            defaultBufferEvents: 1024
        ) { context in
            let config = context.config
            var limits = BatchAccumulator.Limits(maxBytes: hardMaxBytes, maxEvents: 1000, timeout: .seconds(1), encoding: .jsonArray)
            if let maxBytes = config.size("max_bytes") {
                if maxBytes < 1024 || maxBytes > hardMaxBytes {
                    config.error("'max_bytes' must be between 1KiB and \(hardMaxBytes) (IoT-Core's limit for one request), got \(maxBytes)", at: "max_bytes")
                } else {
                    limits.maxBytes = maxBytes
                }
            }
            limits.maxEvents = config.int("max_events", default: limits.maxEvents, range: 1...100_000)
            if let timeout = config.duration("timeout") {
                if timeout < .milliseconds(1) || timeout > .seconds(3600) {
                    config.error("'timeout' must be between 1ms and 1h, got \(timeout)", at: "timeout")
                } else {
                    limits.timeout = timeout
                }
            }
            limits.encoding = config.enumeration("encoding", default: .jsonArray)
            let topic = config.string("topic")
            if topic != nil && context.inputKind == .message {
                config.error("'topic' is only used with record input: messages keep their own topic", at: "topic")
            }
            if let topic, topic.isEmpty { config.error("'topic' must not be empty", at: "topic") }
            let deadLetters = DeadLetterSettings.read(from: config, used: true, hint: "")
            if context.inputKind == .record {
                return .transform(BatchTransform<Record>(limits: limits, topic: topic, deadLetters: deadLetters))
            }
            return .transform(BatchTransform<Message>(limits: limits, topic: nil, deadLetters: deadLetters))
        }
    }

    let limits: BatchAccumulator.Limits
    /// The topic of batches made from records.
    public let topic: String?
    let deadLetters: DeadLetterSettings

    init(limits: BatchAccumulator.Limits, topic: String?, deadLetters: DeadLetterSettings) {
        self.limits = limits
        self.topic = topic
        self.deadLetters = deadLetters
    }

    public var maxBytes: Int { limits.maxBytes }

    public func run(context: ComponentContext, input: Inbox<Input>, output: Outbox<Message>) async throws {
        var accumulator = BatchAccumulator(limits: limits)
        var rejections = Rejections(context: context, deadLetters: deadLetters.file(for: context))
        defer { rejections.finish() }
        let clock = ContinuousClock()
        let start = clock.now
        var actions: [BatchAccumulator.Action] = []
        var record: [UInt8] = []
        var encoder = RecordEncoder()
        var chunkID = 0
        while true {
            let poll: Inbox<Input>.Poll
            if let deadline = accumulator.nextDeadline {
                let now = clock.now - start
                if now >= deadline {
                    accumulator.flushExpired(now: now, into: &actions)
                    try await perform(&actions, rejections: &rejections, output: output)
                    continue
                }
                // Wake at the deadline even if the input stays idle.
                poll = await input.next(until: start + deadline)
            } else if let chunk = await input.next() {
                poll = .chunk(chunk)
            } else {
                poll = .ended
            }
            switch poll {
            case .chunk(let chunk):
                chunkID += 1
                var source = BatchAccumulator.Source(id: chunkID, acknowledgements: chunk.acknowledgements)
                let now = clock.now - start
                var accepted = false
                // One type check per chunk, not a dynamic cast per event: this generic body is not specialised.
                if Input.self == Record.self {
                    let records = unsafeBitCast(chunk.events, to: [Record].self)
                    source.cuttable = Self.canCut(chunk.acknowledgements, count: records.count) { records[$0].offset }
                    for event in records {
                        record.removeAll(keepingCapacity: true)
                        encoder.append(event.fields, to: &record)
                        let added = accumulator.addPart(
                            record, topic: topic, from: source, offset: event.offset, now: now, into: &actions)
                        accepted = added || accepted
                    }
                } else if Input.self == Message.self {
                    let messages = unsafeBitCast(chunk.events, to: [Message].self)
                    source.cuttable = Self.canCut(chunk.acknowledgements, count: messages.count) { messages[$0].offset }
                    for message in messages {
                        accepted = accumulator.add(message, from: source, now: now, into: &actions) || accepted
                    }
                }
                accumulator.finishChunk()
                if !accepted {
                    // Every record was dead-lettered: that is their final answer, not a loss.
                    chunk.acknowledgements.resolve(.delivered)
                }
                try await perform(&actions, rejections: &rejections, output: output)
                rejections.settle(chunk.acknowledgements)
            case .timedOut:
                continue
            case .ended:
                accumulator.flushAll(into: &actions)
                try await perform(&actions, rejections: &rejections, output: output)
                return
            }
        }
    }

    /// Sends batches and dead-letters rejects. Consecutive messages holding exactly the same acknowledgements go
    /// in one chunk (property posts that could not merge, pass-through events of one chunk); messages holding
    /// different ones never share a chunk, so a sink acknowledges exactly the records it delivered.
    private func perform(
        _ actions: inout [BatchAccumulator.Action], rejections: inout Rejections, output: Outbox<Message>
    ) async throws {
        // The messages gather in a plain array, made a chunk when sent: appending to `EventChunk.events` from here
        // goes through its setter (an observed property of another module), which copied the whole array on every
        // append, quadratic in the messages of one chunk (thing-model posts sent one per message: ~30 µs a record).
        var pending: [Message] = []
        var pendingAcknowledgements = Acknowledgements()
        for action in actions {
            switch action {
            case .emit(let message, let acknowledgements):
                if !pending.isEmpty && !Self.holdSameTokens(pendingAcknowledgements, acknowledgements) {
                    try await output.send(EventChunk(pending, acknowledgements: pendingAcknowledgements))
                    pending = []
                }
                if pending.isEmpty { pendingAcknowledgements = acknowledgements }
                pending.append(message)
            case .reject(let topic, let payload, let reason):
                rejections.reject(payload, topic: topic, reason: reason, deadLetter: true)
            }
        }
        try await output.send(EventChunk(pending, acknowledgements: pendingAcknowledgements))
        actions.removeAll(keepingCapacity: true)
    }

    /// Whether a batch boundary inside this chunk may cut its acknowledgement at an event's offset: one token that
    /// can be cut, and offsets that increase from event to event (`offset(i)` for each of the `count`), so the
    /// events before a cut are exactly those before its offset. (A source's records keep their order through the
    /// stages; events a stage made without an offset, or several from one record, make the chunk share its token
    /// as before.)
    static func canCut(_ acknowledgements: Acknowledgements, count: Int, offset: (Int) -> Int64) -> Bool {
        guard acknowledgements.tokens.count == 1, acknowledgements.tokens[0].isSplittable else { return false }
        var previous: Int64 = -1
        // By index: reads the offsets without copying each event (and retaining its fields).
        for index in 0..<count {
            let offset = offset(index)
            guard offset > previous else { return false }
            previous = offset
        }
        return true
    }

    private static func holdSameTokens(_ first: Acknowledgements, _ second: Acknowledgements) -> Bool {
        first.tokens.count == second.tokens.count && zip(first.tokens, second.tokens).allSatisfy { $0 === $1 }
    }
}

/// Encodes records as JSON objects exactly as ``Fields/appendJSON(to:)`` does, keeping each field name's encoded
/// form (`"name":`) from one record to the next: records from one source carry the same names in the same order,
/// so a name is escaped once, not once per record.
struct RecordEncoder {
    private var names: [(name: String, encoded: [UInt8])] = []

    mutating func append(_ fields: Fields, to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "{"))
        var index = 0
        for field in fields.storage {
            if index > 0 { buffer.append(UInt8(ascii: ",")) }
            if index < names.count && names[index].name == field.name {
                buffer.append(contentsOf: names[index].encoded)
            } else {
                var encoded: [UInt8] = []
                JSONWriter.appendString(field.name, to: &encoded)
                encoded.append(UInt8(ascii: ":"))
                buffer.append(contentsOf: encoded)
                if index < names.count {
                    names[index] = (field.name, encoded)
                } else if index == names.count && names.count < 64 {
                    names.append((field.name, encoded))
                }
            }
            field.value.appendJSON(to: &buffer)
            index += 1
        }
        buffer.append(UInt8(ascii: "}"))
    }
}
