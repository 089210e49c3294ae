/// An event that can be written to a disk buffer and read back after a restart.
public protocol PersistableEvent: Event {
    func encode(to writer: inout BinaryWriter)
    static func decode(from reader: inout BinaryReader) throws(BinaryReader.Failure) -> Self
    /// Whether a decoded event keeps a slice of the bytes it was decoded from (instead of copies), so that whoever
    /// decodes must not write into those bytes again (a disk buffer then reads into a fresh window each time).
    static var decodedEventsKeepTheirBytes: Bool { get }
}

extension PersistableEvent {
    public static var decodedEventsKeepTheirBytes: Bool { false }
}

/// Origins are interned while decoding so events read back share them, as they did when first read.
private func decodeOrigin(_ reader: inout BinaryReader) throws(BinaryReader.Failure) -> EventOrigin {
    EventOrigin(sourceID: try reader.string(), location: try reader.optionalString())
}

extension RawEvent: PersistableEvent {
    /// A raw event's bytes are a slice of what it was decoded from: no copy.
    public static var decodedEventsKeepTheirBytes: Bool { true }

    public func encode(to writer: inout BinaryWriter) {
        writer.string(origin.sourceID)
        writer.optionalString(origin.location)
        writer.signed(offset)
        writer.signed(timestamp)
        writer.byte(truncated ? 1 : 0)
        writer.data(bytes)
    }

    public static func decode(from reader: inout BinaryReader) throws(BinaryReader.Failure) -> RawEvent {
        let origin = try decodeOrigin(&reader)
        let offset = try reader.signed()
        let timestamp = try reader.signed()
        let truncated = try reader.byte() == 1
        return RawEvent(bytes: try reader.data(), origin: origin, offset: offset, timestamp: timestamp, truncated: truncated)
    }
}

extension Value {
    func encode(to writer: inout BinaryWriter) {
        switch self {
        case .null: writer.byte(0)
        case .bool(let flag): writer.byte(flag ? 2 : 1)
        case .int(let number):
            writer.byte(3)
            writer.signed(number)
        case .double(let number):
            writer.byte(4)
            writer.double(number)
        case .string(let text):
            writer.byte(5)
            writer.string(text)
        case .array(let items):
            writer.byte(6)
            writer.varint(UInt64(items.count))
            for item in items { item.encode(to: &writer) }
        case .object(let fields):
            writer.byte(7)
            fields.encode(to: &writer)
        }
    }

    static func decode(from reader: inout BinaryReader, depth: Int = 0) throws(BinaryReader.Failure) -> Value {
        guard depth < 128 else { throw BinaryReader.Failure() }
        switch try reader.byte() {
        case 0: return .null
        case 1: return .bool(false)
        case 2: return .bool(true)
        case 3: return .int(try reader.signed())
        case 4: return .double(try reader.double())
        case 5: return .string(try reader.string())
        case 6:
            let count = try reader.varint()
            guard count < 1 << 24 else { throw BinaryReader.Failure() }
            var items: [Value] = []
            for _ in 0..<count { items.append(try decode(from: &reader, depth: depth + 1)) }
            return .array(items)
        case 7: return .object(try Fields.decode(from: &reader, depth: depth + 1))
        default: throw BinaryReader.Failure()
        }
    }
}

extension Fields {
    func encode(to writer: inout BinaryWriter) {
        writer.varint(UInt64(count))
        for field in self {
            writer.string(field.name)
            field.value.encode(to: &writer)
        }
    }

    static func decode(from reader: inout BinaryReader, depth: Int = 0) throws(BinaryReader.Failure) -> Fields {
        let count = try reader.varint()
        guard count < 1 << 24 else { throw BinaryReader.Failure() }
        var fields = Fields()
        fields.reserveCapacity(Int(count))
        for _ in 0..<count {
            let name = try reader.string()
            fields.append(name, try Value.decode(from: &reader, depth: depth))
        }
        return fields
    }
}

extension Record: PersistableEvent {
    public func encode(to writer: inout BinaryWriter) {
        if let origin {
            writer.byte(1)
            writer.string(origin.sourceID)
            writer.optionalString(origin.location)
        } else {
            writer.byte(0)
        }
        writer.signed(timestamp)
        fields.encode(to: &writer)
    }

    public static func decode(from reader: inout BinaryReader) throws(BinaryReader.Failure) -> Record {
        let origin = try reader.byte() == 1 ? try decodeOrigin(&reader) : nil
        let timestamp = try reader.signed()
        return Record(fields: try Fields.decode(from: &reader), origin: origin, timestamp: timestamp)
    }
}

extension Message: PersistableEvent {
    public func encode(to writer: inout BinaryWriter) {
        writer.optionalString(topic)
        writer.optionalString(framing?.rawValue)
        writer.varint(UInt64(recordCount))
        writer.varint(UInt64(parts.count))
        for end in parts { writer.varint(UInt64(end)) }
        writer.data(body)
        metadata.encode(to: &writer)
    }

    public static func decode(from reader: inout BinaryReader) throws(BinaryReader.Failure) -> Message {
        let topic = try reader.optionalString()
        let framing = try reader.optionalString().flatMap(BatchFraming.init(rawValue:))
        let recordCount = Int(clamping: try reader.varint())
        let partCount = try reader.varint()
        guard partCount < 1 << 24 else { throw BinaryReader.Failure() }
        var parts: [Int] = []
        parts.reserveCapacity(Int(partCount))
        for _ in 0..<partCount { parts.append(Int(clamping: try reader.varint())) }
        let body = Array(try reader.data())
        guard parts.allSatisfy({ $0 <= body.count }) else { throw BinaryReader.Failure() }
        let metadata = try Fields.decode(from: &reader)
        return Message(topic: topic, body: body, framing: framing, parts: parts, recordCount: recordCount, metadata: metadata)
    }
}
