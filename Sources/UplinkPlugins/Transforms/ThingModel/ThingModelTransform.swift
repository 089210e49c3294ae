import UplinkCore

/// `thing_model`: turns records into IoT-Core thing-model posts.
///
/// `kind: property` posts the record's fields as properties on `/$system/<ProductSN>/<DeviceSN>/tmodel/property/post`:
///
/// ```
/// {"RequestID":"100","Property":{"temp":{"Value":26.5,"Time":1524448722000}}}
/// ```
///
/// `kind: event` posts one event per record on `…/tmodel/event/post`, its identifier fixed (`identifier`) or
/// taken from a field (`identifier_field`):
///
/// ```
/// {"RequestID":"101","Identifier":"overheat","Output":{"temp":90},"Time":1524448723000}
/// ```
///
/// `properties:` / `outputs:` select and rename fields (default: every field). Identifiers follow the thing
/// model's rule (`[A-Za-z_][A-Za-z0-9_]*`, at most 32 characters): names written in the config are checked when
/// it is validated, names taken from records are checked per record. `Time` is the time the line was read, or
/// the Unix-ms field `time_field`. RequestIDs are decimal strings, unique and increasing across restarts
/// (a counter in the component's state directory, reserved in blocks ahead). A record that cannot be posted (a bad
/// identifier, too many outputs, a string over 2048 bytes) is handled by `on_error`, always counted.
public struct ThingModelTransform: InlineTransform {
    public typealias Input = Record
    public typealias Output = Message

    public enum Kind: String, Sendable, CaseIterable { case property, event }

    public enum ErrorPolicy: String, Sendable, CaseIterable {
        case drop
        case deadLetter = "dead_letter"
    }

    /// The thing model's limits (IoT-Core documentation).
    static let maxIdentifierLength = 32
    static let maxProperties = 100
    static let maxOutputs = 20
    static let maxStringBytes = 2048
    /// RequestIDs reserved by the first write of the counter file; later blocks double up to
    /// `requestIDMaxBlock` (see PersistentCounter). Each reservation is an fsync on the transform's task, and a
    /// crash only skips the rest of a block (IDs need to be unique and increasing, not dense), so blocks are
    /// large: a million records cost 5 reservations rather than 21.
    static let requestIDBlock: UInt64 = 65_536
    static let requestIDMaxBlock: UInt64 = 1 << 20

    public static let descriptor = PluginDescriptor(
        type: "thing_model", role: .transform,
        summary: "Turns records into IoT-Core thing-model property or event posts on the device's system topics.",
        options: [
            OptionSpec("kind", .enumeration(Kind.allCases.map(\.rawValue)), default: "property", "property: the fields are properties (tmodel/property/post); event: each record is one event (tmodel/event/post)"),
        ] + DeviceIdentity.options + [
            OptionSpec("properties", .either(.map(key: "property identifier", value: "field name"), .list(of: "field names")), "property: the properties to post, `{identifier: field}` (select and rename) or a list `[field, …]`; default: every field"),
            OptionSpec("identifier", .string, "event: the event's identifier"),
            OptionSpec("identifier_field", .string, "event: the field holding each record's event identifier (not sent as an output)"),
            OptionSpec("outputs", .either(.map(key: "output identifier", value: "field name"), .list(of: "field names")), "event: the output parameters, `{identifier: field}` or a list `[field, …]`; default: every field; at most 20"),
            OptionSpec("time_field", .string, "a field with the sample time in Unix ms (not sent as a property); default: the time the line was read"),
            OptionSpec("include_time", .bool, default: "true", "send Time (each property's, or the event's); false leaves it to the cloud"),
            OptionSpec("on_error", .enumeration(ErrorPolicy.allCases.map(\.rawValue)), default: "dead_letter", "a record that cannot be posted (bad identifier, too many outputs, no properties): drop or dead_letter it; always counted"),
        ] + DeadLetterSettings.options,
        accepts: [.record], output: .kind(.message), keepsState: true
    ) { context in
        .transform(ThingModelTransform(context: context))
    }

    public internal(set) var kind: Kind = .property
    var device = DeviceIdentity(productSN: "", deviceSN: "")
    /// `properties:` (property) or `outputs:` (event).
    var selection = FieldSelection.all
    var identifier: String?
    var identifierField: String?
    var timeField: String?
    var includeTime = true
    var onError: ErrorPolicy = .deadLetter
    var deadLetters = DeadLetterSettings()

    /// The topic every message of this transform goes to.
    public var topic: String { device.systemTopic(kind == .property ? "tmodel/property/post" : "tmodel/event/post") }

    init(context: PluginBuildContext) {
        let config = context.config
        kind = config.enumeration("kind", default: .property)
        device = DeviceIdentity.read(from: context) ?? device
        let ownOption = kind == .property ? "properties" : "outputs"
        let otherOptions = kind == .property ? ["outputs", "identifier", "identifier_field"] : ["properties"]
        for option in otherOptions where config.contains(option) {
            config.error("'\(option)' is only used with kind: \(kind == .property ? "event" : "property") (kind is \(kind.rawValue))", at: option)
        }
        selection = FieldSelection.read(ownOption, from: config, check: Self.identifierProblem)
        let limit = kind == .property ? Self.maxProperties : Self.maxOutputs
        if let entries = selection.entries, entries.count > limit {
            config.error("'\(ownOption)' lists \(entries.count) identifiers; the thing model allows at most \(limit)", at: ownOption)
        }
        if kind == .event {
            identifier = config.string("identifier")
            identifierField = config.string("identifier_field")
            switch (identifier, identifierField) {
            case (nil, nil):
                config.error("kind: event needs 'identifier' (one event for every record) or 'identifier_field' (the field naming each record's event)")
            case (.some, .some):
                config.error("set 'identifier' or 'identifier_field', not both", at: "identifier_field")
            case (.some(let fixed), nil):
                if let problem = Self.identifierProblem(fixed) { config.error("'identifier': \(problem)", at: "identifier") }
            case (nil, .some):
                break
            }
        }
        timeField = config.string("time_field")
        includeTime = config.bool("include_time", default: true)
        if !includeTime && timeField != nil {
            config.error("'time_field' is set but include_time is false: no Time is sent", at: "time_field")
        }
        onError = config.enumeration("on_error", default: .deadLetter)
        deadLetters = DeadLetterSettings.read(from: config, used: onError == .deadLetter, hint: "on_error is not dead_letter")
    }

    /// Why `name` is not a thing-model identifier, or nil when it is one.
    static func identifierProblem(_ name: String) -> String? {
        if isIdentifier(name) { return nil }
        return "'\(name.prefix(64))' is not a thing-model identifier ([A-Za-z_][A-Za-z0-9_]*, at most \(maxIdentifierLength) characters)"
    }

    static let requestIDKey = Array(#"{"RequestID":"#.utf8)

    /// `[A-Za-z_][A-Za-z0-9_]*`, at most ``maxIdentifierLength`` bytes; checked per property of every record, so
    /// a plain byte loop.
    static func isIdentifier(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { bytes in
            guard !bytes.isEmpty, bytes.count <= maxIdentifierLength else { return false }
            for (index, byte) in bytes.enumerated() {
                let letter = byte == UInt8(ascii: "_") || ((byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z"))
                let digit = byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
                guard letter || (digit && index > 0) else { return false }
            }
            return true
        }
    }

    public func makeProcessor(context: ComponentContext) -> Processor {
        Processor(stage: self, context: context)
    }

    /// One run's state: the request-id counter (opened on the first record), what it rejected, and the buffers
    /// reused from record to record.
    public final class Processor: ChunkProcessor {
        let stage: ThingModelTransform
        let context: ComponentContext
        let topic: String
        var requestIDs: PersistentCounter?
        var rejections: Rejections
        var tail: [UInt8] = []
        var identifiers: [Value] = []
        var names = EncodedNames()
        var lastIdentifiers: [Value] = []

        init(stage: ThingModelTransform, context: ComponentContext) {
            self.stage = stage
            self.context = context
            topic = stage.topic
            rejections = Rejections(
                context: context, deadLetters: stage.onError == .deadLetter ? stage.deadLetters.file(for: context) : nil)
        }

        public func finish() {
            rejections.finish()
            // The counter's file is closed here, before a successor (a reload) opens it.
            requestIDs = nil
        }

        public func process(_ chunk: consuming EventChunk<Record>) throws -> EventChunk<Message>? {
            let kind = stage.kind
            let onError = stage.onError
            var messages: [Message] = []
            messages.reserveCapacity(chunk.count)
            for record in chunk.events {
                tail.removeAll(keepingCapacity: true)
                identifiers.removeAll(keepingCapacity: true)
                if let reason = stage.encodeTail(record, into: &tail, identifiers: &identifiers, names: &names) {
                    var payload: [UInt8] = []
                    record.appendText(to: &payload)
                    rejections.reject(payload, topic: topic, reason: reason, deadLetter: onError == .deadLetter)
                    continue
                }
                // The counter file is opened on the first record, so validating a config touches no disk.
                if requestIDs == nil {
                    requestIDs = try PersistentCounter(
                        path: try context.stateDirectory() + "/request-id", blockSize: ThingModelTransform.requestIDBlock,
                        maxBlockSize: ThingModelTransform.requestIDMaxBlock)
                }
                let requestID = String(try requestIDs!.next())
                var body: [UInt8] = []
                body.reserveCapacity(tail.count + 36)
                body.append(contentsOf: ThingModelTransform.requestIDKey)
                JSONWriter.appendString(requestID, to: &body)
                body.append(UInt8(ascii: ","))
                let entriesStart = body.count + ThingModelTransform.propertyOpening.count
                body.append(contentsOf: tail)
                var metadata = Fields()
                if kind == .property {
                    metadata.reserveCapacity(3)
                    metadata.append(Metadata.requestID, .string(requestID))
                    // Consecutive records usually post the same properties: they share one array.
                    if identifiers != lastIdentifiers { lastIdentifiers = identifiers }
                    metadata.append(Metadata.properties, .array(lastIdentifiers))
                    metadata.append(Metadata.entriesStart, .int(Int64(entriesStart)))
                }
                var message = Message(topic: topic, body: body, metadata: metadata)
                message.offset = record.offset
                messages.append(message)
            }
            rejections.settle(chunk.acknowledgements)
            if messages.isEmpty {
                // Every record was rejected on purpose: that is their final answer, not a loss.
                chunk.acknowledgements.resolve(.delivered)
                return nil
            }
            return EventChunk(messages, acknowledgements: chunk.acknowledgements)
        }
    }
}
