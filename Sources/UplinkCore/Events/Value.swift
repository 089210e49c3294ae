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

/// Ordered named values. Order is kept because users read payloads and the cloud shows them as sent.
///
/// Lookups are linear while a record has a handful of fields (the common case, and the fastest); past
/// ``indexThreshold`` fields a name → position index is kept as well, so building or reading a record of any
/// size costs time linear in its fields, never quadratic. Of two fields with one name (``append(_:_:)`` does
/// not check), reads and writes see the first.
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
    /// Each name's first position in `storage`, kept once `storage` has more than ``indexThreshold`` fields.
    private var index: [String: Int]?

    /// Below this many fields a linear scan beats hashing the name.
    static let indexThreshold = 16

    public init() { storage = [] }

    public init(_ fields: [Field]) {
        storage = fields
        buildIndexIfLarge()
    }

    public init(dictionaryLiteral elements: (String, Value)...) {
        storage = elements.map { Field(name: $0.0, value: $0.1) }
        buildIndexIfLarge()
    }

    public var count: Int { storage.count }
    public var isEmpty: Bool { storage.isEmpty }

    public func makeIterator() -> IndexingIterator<[Field]> { storage.makeIterator() }

    /// The position of the first field called `name`.
    private func position(of name: String) -> Int? {
        if let index { return index[name] }
        return storage.firstIndex(where: { $0.name == name })
    }

    /// A field name prepared once for many lookups (an expression's field, read on every record).
    struct LookupName: Sendable {
        let text: String
        let utf8Count: Int
        let isASCII: Bool

        init(_ text: String) {
            self.text = text
            utf8Count = text.utf8.count
            isASCII = text.utf8.allSatisfy { $0 < 0x80 }
        }
    }

    /// ``position(of:)`` for a prepared name: a field name with fewer UTF-8 bytes than an ASCII `name` is passed
    /// over without a string comparison. That is exact, not a guess: names compare as Swift strings do (canonical
    /// equivalence, so "\u{212A}" (the Kelvin sign) equals "K"), and a string equivalent to an ASCII one has at least
    /// its bytes (an ASCII character stands for itself or for a longer character that decomposes to it).
    func position(of name: LookupName) -> Int? {
        if let index { return index[name.text] }
        return storage.withUnsafeBufferPointer { fields in
            for position in fields.indices {
                let length = fields[position].name.utf8.count
                if length < name.utf8Count && name.isASCII { continue }
                if fields[position].name == name.text { return position }
            }
            return nil
        }
    }

    /// `body` applied to the value of the first field called `name`, read where it is (no copy); nil when there is
    /// no such field.
    @inline(__always)
    func withFirstValue<Result>(named name: LookupName, _ body: (Value) -> Result) -> Result? {
        guard let position = position(of: name) else { return nil }
        return storage.withUnsafeBufferPointer { body($0[position].value) }
    }

    private mutating func buildIndexIfLarge() {
        guard storage.count > Self.indexThreshold else { return }
        var built: [String: Int] = [:]
        built.reserveCapacity(storage.count)
        for (position, field) in storage.enumerated() where built[field.name] == nil { built[field.name] = position }
        index = built
    }

    /// Keeps the index right after the field `name` at `position` was removed: the fields after it moved up by one,
    /// and a later field also called `name` is now the first (unless `wasFirst` is false: an earlier one still is).
    /// Updated in place (a remove on every record of a wide record must not rebuild a dictionary); dropped once the
    /// fields are few enough to scan.
    private mutating func reindexAfterRemoving(_ name: String, at position: Int, wasFirst: Bool = true) {
        guard index != nil else { return }
        guard storage.count > Self.indexThreshold else {
            index = nil
            return
        }
        if wasFirst { index![name] = nil }
        for shifted in position..<storage.count {
            let fieldName = storage[shifted].name
            let first = index![fieldName]
            if first == nil || first == shifted + 1 { index![fieldName] = shifted }
        }
    }

    private mutating func appendIndexed(_ field: Field) {
        storage.append(field)
        if index != nil {
            if index![field.name] == nil { index![field.name] = storage.count - 1 }
        } else if storage.count == Self.indexThreshold + 1 {
            buildIndexIfLarge()
        }
    }

    /// Reads a field; setting replaces it in place or appends it; setting nil removes it.
    public subscript(name: String) -> Value? {
        get { position(of: name).map { storage[$0].value } }
        set {
            if let position = position(of: name) {
                if let newValue {
                    storage[position].value = newValue  // names do not change: the index stays valid
                } else {
                    storage.remove(at: position)
                    reindexAfterRemoving(name, at: position)
                }
            } else if let newValue {
                appendIndexed(Field(name: name, value: newValue))
            }
        }
    }

    /// Renames the first field called `name` to `newName` where it stands, replacing any field already called
    /// `newName`; false (and nothing changes) when there is no field `name` or the names are equal. Later fields
    /// also called `name` become `newName` with the first one's value, so no field keeps the old name.
    ///
    /// Done in place, in one pass: no allocation when the fields' storage is not shared (a remap on every record
    /// must not rebuild it), and the index is updated rather than rebuilt unless fields were removed.
    @discardableResult
    public mutating func rename(_ name: String, to newName: String) -> Bool {
        renameMeasured(name, to: newName) != nil
    }

    /// ``rename(_:to:)``, giving how much it changed the fields' ``Field/byteCount`` sum; nil when nothing changed.
    public mutating func renameMeasured(_ name: String, to newName: String) -> Int? {
        guard name != newName, let first = position(of: name) else { return nil }
        let value = storage[first].value
        var kept = 0
        var reshaped = false  // a field was dropped or a later duplicate renamed: positions or first names moved
        var byteDelta = 0
        for read in storage.indices {
            if storage[read].name == newName {
                byteDelta &-= storage[read].byteCount
                reshaped = true
                continue
            }
            if kept != read { storage.swapAt(kept, read) }
            if storage[kept].name == name {
                byteDelta &+= newName.utf8.count &- storage[kept].name.utf8.count
                storage[kept].name = newName
                if read != first {
                    byteDelta &+= Field.byteCount(name: newName, value: value) &- storage[kept].byteCount
                    storage[kept].value = value
                    reshaped = true
                }
            }
            kept += 1
        }
        storage.removeLast(storage.count - kept)
        guard index != nil else { return byteDelta }
        if reshaped {
            index = nil
            buildIndexIfLarge()
        } else {
            index![name] = nil
            index![newName] = first
        }
        return byteDelta
    }

    /// Sets the first field called `name` to `value` (appending one when there is none), as the subscript does;
    /// returns the value it replaced.
    @discardableResult
    public mutating func updateValue(_ value: Value, forName name: String) -> Value? {
        guard let position = position(of: name) else {
            appendIndexed(Field(name: name, value: value))
            return nil
        }
        var replaced = value
        swap(&storage[position].value, &replaced)
        return replaced
    }

    /// Removes the first field called `name`, as setting it to nil does; returns it.
    @discardableResult
    public mutating func removeField(named name: String) -> Field? {
        guard let position = position(of: name) else { return nil }
        let removed = storage.remove(at: position)
        reindexAfterRemoving(name, at: position)
        return removed
    }

    // MARK: By position
    // For a stage that worked out once where its fields are in records of one shape (see ``hasNames(_:)``).

    /// Whether the fields' names are `names`, in this order, compared as Swift strings. One stage's records mostly
    /// carry the very same name strings (a `json` stage's column names, or short names, which are stored inline), and
    /// those compare without a call: checking a record against a shape seen before costs a few word comparisons.
    public func hasNames(_ names: [String]) -> Bool {
        names.withUnsafeBufferPointer { hasNames($0) }
    }

    /// ``hasNames(_:)`` for names read where they are.
    public func hasNames(_ names: UnsafeBufferPointer<String>) -> Bool {
        guard storage.count == names.count else { return false }
        return storage.withUnsafeBufferPointer { fields in
            for position in fields.indices where fields[position].name != names[position] { return false }
            return true
        }
    }

    /// The field names, in order.
    public var names: [String] { storage.map(\.name) }

    /// Replaces the value of the field at `position`; returns the value it replaced.
    public mutating func replaceValue(at position: Int, with value: Value) -> Value {
        var replaced = value
        swap(&storage[position].value, &replaced)
        return replaced
    }

    /// Renames the field at `position` to `newName`, leaving any other field alone (``rename(_:to:)`` is the one
    /// that keeps names unique); returns how much that changed its ``Field/byteCount``.
    public mutating func renameField(at position: Int, to newName: String) -> Int {
        let oldName = storage[position].name
        storage[position].name = newName
        if index != nil {
            if index![oldName] == position {
                index![oldName] = storage[(position + 1)...].firstIndex { $0.name == oldName }
            }
            if (index![newName] ?? .max) > position { index![newName] = position }
        }
        return newName.utf8.count &- oldName.utf8.count
    }

    /// Removes the field at `position`; returns it.
    public mutating func removeField(at position: Int) -> Field {
        let wasFirst = index.map { $0[storage[position].name] == position } ?? true
        let removed = storage.remove(at: position)
        reindexAfterRemoving(removed.name, at: position, wasFirst: wasFirst)
        return removed
    }

    public mutating func append(_ name: String, _ value: Value) {
        appendIndexed(Field(name: name, value: value))
    }

    public mutating func reserveCapacity(_ count: Int) { storage.reserveCapacity(count) }

    /// Equal when the fields are, in order; the index is a cache.
    public static func == (lhs: Fields, rhs: Fields) -> Bool { lhs.storage == rhs.storage }

    public func hash(into hasher: inout Hasher) { hasher.combine(storage) }

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
