import UplinkCore

/// `shadow`: turns records into device-shadow updates on `/$system/<ProductSN>/<DeviceSN>/shadow/upstream`:
///
/// ```
/// {"Method":"update","State":{"Reported":{"temperature":26}},"Version":-1}
/// ```
///
/// `reported:` selects and renames fields (default: every field). A field whose value is null deletes that
/// reported key in the cloud (`"k":null`), as the shadow protocol defines. `Version` is -1 by default: over HTTP
/// the device cannot read the cloud's version back, and -1 applies the values whatever it is; `version` pins a
/// number for a deployment that tracks it. A record with nothing to report is dropped and counted.
public struct ShadowTransform: InlineTransform {
    public typealias Input = Record
    public typealias Output = Message

    public static let descriptor = PluginDescriptor(
        type: "shadow", role: .transform,
        summary: "Turns records into IoT-Core device-shadow updates (reported state) on the device's shadow/upstream topic.",
        options: DeviceIdentity.options + [
            OptionSpec("reported", .either(.map(key: "shadow key", value: "field name"), .list(of: "field names")), "the reported keys, `{key: field}` (select and rename) or a list `[field, …]`; default: every field; a null value deletes the key"),
            OptionSpec("version", .int, default: "-1", "the shadow Version sent; -1 applies the update whatever the cloud's version (HTTP cannot read it)"),
        ],
        accepts: [.record], output: .kind(.message)
    ) { context in
        .transform(ShadowTransform(context: context))
    }

    var device = DeviceIdentity(productSN: "", deviceSN: "")
    var selection = FieldSelection.all
    public internal(set) var version: Int64 = -1

    /// The topic every update goes to.
    public var topic: String { device.systemTopic("shadow/upstream") }

    init(context: PluginBuildContext) {
        let config = context.config
        device = DeviceIdentity.read(from: context) ?? device
        selection = FieldSelection.read("reported", from: config, check: { $0.isEmpty ? "a key must not be empty" : nil })
        version = Int64(config.int("version", default: -1, range: -1...Int.max))
    }

    public func makeProcessor(context: ComponentContext) -> Processor {
        Processor(stage: self, context: context)
    }

    /// One run's state: what it rejected.
    public final class Processor: ChunkProcessor {
        let stage: ShadowTransform
        let topic: String
        var rejections: Rejections

        init(stage: ShadowTransform, context: ComponentContext) {
            self.stage = stage
            topic = stage.topic
            rejections = Rejections(context: context, deadLetters: nil)
        }

        public func process(_ chunk: consuming EventChunk<Record>) -> EventChunk<Message>? {
            var messages: [Message] = []
            messages.reserveCapacity(chunk.count)
            for record in chunk.events {
                guard let body = stage.encode(record) else {
                    rejections.reject([UInt8](), topic: topic, reason: "the record has nothing to report", deadLetter: false)
                    continue
                }
                var message = Message(topic: topic, body: body)
                message.offset = record.offset
                messages.append(message)
            }
            if messages.isEmpty {
                // Nothing to report is a final answer, not a loss.
                chunk.acknowledgements.resolve(.delivered)
                return nil
            }
            return EventChunk(messages, acknowledgements: chunk.acknowledgements)
        }

        public func finish() { rejections.finish() }
    }

    /// The update for one record, or nil when it selects no field.
    func encode(_ record: Record) -> [UInt8]? {
        var body: [UInt8] = []
        body.reserveCapacity(64 + record.byteCount)
        body.append(contentsOf: #"{"Method":"update","State":{"Reported":{"#.utf8)
        var count = 0
        selection.forEach(in: record.fields, excluding: { _ in false }) { name, value in
            if count > 0 { body.append(UInt8(ascii: ",")) }
            count += 1
            JSONWriter.appendString(name, to: &body)
            body.append(UInt8(ascii: ":"))
            value.appendJSON(to: &body)
        }
        guard count > 0 else { return nil }
        body.append(contentsOf: #"}},"Version":"#.utf8)
        JSONWriter.appendInteger(version, to: &body)
        body.append(UInt8(ascii: "}"))
        return body
    }
}
