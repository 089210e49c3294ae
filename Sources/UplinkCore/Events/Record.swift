/// A structured record: the fields a transform parsed out of raw bytes, plus where they came from.
public struct Record: Event {
    public static var kind: EventKind { .record }

    public var fields: Fields
    public var origin: EventOrigin?
    /// Milliseconds since the Unix epoch when the underlying data was read.
    public var timestamp: Int64
    /// Where the record's data starts in its source's stream (the raw event's ``RawEvent/offset``), -1 when
    /// unknown. A stage that hands one chunk's records to two outputs cuts the chunk's acknowledgement there
    /// (``Acknowledgement/split(at:)``).
    public var offset: Int64

    public init(fields: Fields, origin: EventOrigin? = nil, timestamp: Int64, offset: Int64 = -1) {
        self.fields = fields
        self.origin = origin
        self.timestamp = timestamp
        self.offset = offset
    }

    /// Approximated by the JSON size would cost an encoding per event; fields' string lengths are close enough
    /// for throughput metrics and cost nothing.
    public var byteCount: Int {
        var total = 2
        for field in fields { total &+= field.byteCount }
        return total
    }

    public func appendText(to buffer: inout [UInt8]) {
        fields.appendJSON(to: &buffer)
    }
}

extension Record {
    /// Specialised for this type (see ``Event/totalByteCount(of:)``).
    public static func totalByteCount(of events: [Record]) -> Int {
        var total = 0
        for event in events { total &+= event.byteCount }
        return total
    }
}

extension Fields.Field {
    /// What the field adds to its record's ``Record/byteCount``: the name, 4 bytes of JSON punctuation, and a
    /// string's bytes or 8 for any other value. A stage that changes fields can adjust a measured count by the
    /// difference instead of measuring the record again.
    @inline(__always)
    public var byteCount: Int { Self.byteCount(name: name, value: value) }

    @inline(__always)
    public static func byteCount(name: String, value: Value) -> Int {
        byteCount(nameBytes: name.utf8.count, value: value)
    }

    /// ``byteCount(name:value:)`` for a name whose UTF-8 length is known.
    @inline(__always)
    public static func byteCount(nameBytes: Int, value: Value) -> Int {
        if case .string(let text) = value { return nameBytes &+ 4 &+ text.utf8.count }
        return nameBytes &+ 12
    }
}
