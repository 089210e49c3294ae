/// A typed value in a record. JSON's types, with integers and floats kept apart so an integer reading
/// stays an integer on the wire.
public enum Value: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([Value])
    case object(Fields)

    /// A short type name for messages and `uplink test` output.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    /// Appends the value as compact JSON.
    public func appendJSON(to buffer: inout [UInt8]) {
        switch self {
        case .null: buffer.append(contentsOf: "null".utf8)
        case .bool(let flag): buffer.append(contentsOf: (flag ? "true" : "false").utf8)
        case .int(let number): JSONWriter.appendInteger(number, to: &buffer)
        case .double(let number): JSONWriter.appendDouble(number, to: &buffer)
        case .string(let text): JSONWriter.appendString(text, to: &buffer)
        case .array(let items):
            buffer.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { buffer.append(UInt8(ascii: ",")) }
                item.appendJSON(to: &buffer)
            }
            buffer.append(UInt8(ascii: "]"))
        case .object(let fields): fields.appendJSON(to: &buffer)
        }
    }

    /// The value as compact JSON text.
    public var jsonText: String {
        var buffer: [UInt8] = []
        appendJSON(to: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}

/// Ordered named values. Order is kept because users read payloads and the cloud shows them as sent;
/// lookups are linear because records have a handful of fields.
public struct Fields: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public struct Field: Sendable, Hashable {
        public var name: String
        public var value: Value

        public init(name: String, value: Value) {
            self.name = name
            self.value = value
        }
    }

    public private(set) var storage: [Field]

    public init() { storage = [] }

    public init(_ fields: [Field]) { storage = fields }

    public init(dictionaryLiteral elements: (String, Value)...) {
        storage = elements.map { Field(name: $0.0, value: $0.1) }
    }

    public var count: Int { storage.count }
    public var isEmpty: Bool { storage.isEmpty }

    public func makeIterator() -> IndexingIterator<[Field]> { storage.makeIterator() }

    /// Reads a field; setting replaces it in place or appends it; setting nil removes it.
    public subscript(name: String) -> Value? {
        get { storage.first(where: { $0.name == name })?.value }
        set {
            if let index = storage.firstIndex(where: { $0.name == name }) {
                if let newValue { storage[index].value = newValue } else { storage.remove(at: index) }
            } else if let newValue {
                storage.append(Field(name: name, value: newValue))
            }
        }
    }

    public mutating func append(_ name: String, _ value: Value) {
        storage.append(Field(name: name, value: value))
    }

    public mutating func reserveCapacity(_ count: Int) { storage.reserveCapacity(count) }

    public func appendJSON(to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "{"))
        for (index, field) in storage.enumerated() {
            if index > 0 { buffer.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(field.name, to: &buffer)
            buffer.append(UInt8(ascii: ":"))
            field.value.appendJSON(to: &buffer)
        }
        buffer.append(UInt8(ascii: "}"))
    }
}
