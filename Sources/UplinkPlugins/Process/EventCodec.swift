import UplinkCore

/// How events travel in the process protocol, one JSON value each:
///
/// - record: the record's fields as an object, `{"temp":21.5,"unit":"C"}`;
/// - raw: `{"text":"the line"}` when the bytes are UTF-8, otherwise `{"base64":"..."}` (a plugin may answer
///   with either);
/// - message: `{"topic":"/a/b","body_base64":"..."}` (`topic` absent for the sink's default); a plugin may
///   give `body` instead, as a string or any JSON value (written compact).
enum EventCodec {
    static func encode<E: Event>(_ event: E, to buffer: inout [UInt8]) {
        switch event {
        case let record as Record:
            record.fields.appendJSON(to: &buffer)
        case let raw as RawEvent:
            encodeBytes(raw.bytes, textKey: "text", base64Key: "base64", to: &buffer)
        case let message as Message:
            buffer.append(UInt8(ascii: "{"))
            if let topic = message.topic {
                buffer.append(contentsOf: #""topic":"#.utf8)
                JSONWriter.appendString(topic, to: &buffer)
                buffer.append(UInt8(ascii: ","))
            }
            buffer.append(contentsOf: #""body_base64":""#.utf8)
            Base64.encode(message.body, to: &buffer)
            buffer.append(contentsOf: #""}"#.utf8)
        default:
            // Every kind is listed above; a new one must be added here before it can reach a plugin.
            var text: [UInt8] = []
            event.appendText(to: &text)
            encodeBytes(text[...], textKey: "text", base64Key: "base64", to: &buffer)
        }
    }

    private static func encodeBytes(
        _ bytes: ArraySlice<UInt8>, textKey: String, base64Key: String, to buffer: inout [UInt8]
    ) {
        buffer.append(UInt8(ascii: "{"))
        if isValidUTF8(bytes) {
            JSONWriter.appendString(textKey, to: &buffer)
            buffer.append(UInt8(ascii: ":"))
            JSONWriter.appendStringBytes(bytes, to: &buffer)
        } else {
            JSONWriter.appendString(base64Key, to: &buffer)
            buffer.append(contentsOf: #":""#.utf8)
            Base64.encode(bytes, to: &buffer)
            buffer.append(UInt8(ascii: "\""))
        }
        buffer.append(UInt8(ascii: "}"))
    }

    static func isValidUTF8(_ bytes: ArraySlice<UInt8>) -> Bool {
        // Plain ASCII is the common case for telemetry lines; only the rest needs the full check.
        if bytes.allSatisfy({ $0 < 0x80 }) { return true }
        return String(validating: bytes, as: UTF8.self) != nil
    }

    /// Why a value a plugin sent is not an event of the expected kind.
    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    /// Turns a plugin's value into an event of kind `E`, stamped with where and when its input came from.
    static func decode<E: Event>(
        _ value: Value, as type: E.Type, origin: EventOrigin?, timestamp: Int64
    ) throws(Invalid) -> E {
        guard case .object(let fields) = value else {
            throw Invalid(description: "an event must be a JSON object, not \(value.typeName)")
        }
        let event: any Event
        switch E.kind {
        case .record:
            event = Record(fields: fields, origin: origin, timestamp: timestamp)
        case .raw:
            let bytes: [UInt8]
            if case .string(let text)? = fields["text"] {
                bytes = Array(text.utf8)
            } else if case .string(let encoded)? = fields["base64"], let decoded = Base64.decode(encoded) {
                bytes = decoded
            } else {
                throw Invalid(description: #"a raw event needs "text" or valid "base64""#)
            }
            event = RawEvent(
                bytes: bytes[...], origin: origin ?? EventOrigin(sourceID: "process"), timestamp: timestamp)
        case .message:
            var topic: String?
            switch fields["topic"] {
            case .string(let text)?: topic = text
            case nil, .null?: topic = nil
            default: throw Invalid(description: #"a message's "topic" must be a string"#)
            }
            let body: [UInt8]
            if case .string(let encoded)? = fields["body_base64"] {
                guard let decoded = Base64.decode(encoded) else {
                    throw Invalid(description: #"a message's "body_base64" is not valid base64"#)
                }
                body = decoded
            } else if let plain = fields["body"] {
                if case .string(let text) = plain { body = Array(text.utf8) } else { body = Array(plain.jsonText.utf8) }
            } else {
                throw Invalid(description: #"a message needs "body_base64" or "body""#)
            }
            event = Message(topic: topic, body: body)
        }
        // The switch above built exactly E.kind's type.
        return event as! E
    }
}
