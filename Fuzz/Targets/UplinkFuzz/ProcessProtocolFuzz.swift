@testable import UplinkCore
@testable import UplinkPlugins

/// The process-plugin protocol: a line of a child's stdout as a message, and the events in it.
///
/// Properties: no crash; a refused line's message quotes at most the start of the line; every event a
/// message carries either decodes as a record, raw event or message or is refused with a reason; a decoded
/// event encoded as the host sends it and decoded again is the same event.
enum ProcessProtocolFuzz {
    static func run(_ data: UnsafeBufferPointer<UInt8>) {
        let line = ArraySlice(data)
        let message: PluginMessage
        do {
            message = try PluginMessage.parse(line)
        } catch {
            require(error.message.utf8.count <= 600, "a protocol error of \(error.message.utf8.count) bytes")
            return
        }
        switch message {
        case .events(_, let values), .ack(_, _, let values):
            for value in values { roundTrip(value) }
        case .hello(let hello):
            require(!hello.name.isEmpty, "a hello without a name")
        case .log, .error, .done:
            break
        }
        // Any value, not only those in a message (the fuzzer finds objects sooner than whole messages).
        if let value = try? JSONReader.parse(line) { roundTrip(value) }
    }

    static func roundTrip(_ value: Value) {
        let origin = EventOrigin(sourceID: "fuzz")
        if let record = try? EventCodec.decode(value, as: Record.self, origin: origin, timestamp: 1) {
            let again: Record = reencode(record)
            require(again.fields == record.fields, "a record changed through the protocol")
        }
        if let raw = try? EventCodec.decode(value, as: RawEvent.self, origin: origin, timestamp: 1) {
            let again: RawEvent = reencode(raw)
            require(again.bytes.elementsEqual(raw.bytes), "a raw event changed through the protocol")
        }
        if let message = try? EventCodec.decode(value, as: Message.self, origin: origin, timestamp: 1) {
            let again: Message = reencode(message)
            require(
                again.topic == message.topic && again.body == message.body, "a message changed through the protocol")
        }
    }

    static func reencode<E: Event>(_ event: E) -> E {
        var line: [UInt8] = []
        EventCodec.encode(event, to: &line)
        do {
            let value = try JSONReader.parse(line)
            return try EventCodec.decode(value, as: E.self, origin: EventOrigin(sourceID: "fuzz"), timestamp: 1)
        } catch {
            require(false, "the host's encoding of an event does not decode: \(error) in \(JSONFuzz.quote(line))")
            fatalError()
        }
    }
}
