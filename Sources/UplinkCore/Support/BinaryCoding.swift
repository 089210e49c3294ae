/// A compact binary encoding for events written to disk: LEB128 varints, length-prefixed bytes.
public struct BinaryWriter {
    public var bytes: [UInt8]

    public init(reserving capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func varint(_ value: UInt64) {
        var remaining = value
        while remaining >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: remaining) | 0x80)
            remaining >>= 7
        }
        bytes.append(UInt8(remaining))
    }

    /// Zig-zag encoded, so small negative numbers stay small.
    public mutating func signed(_ value: Int64) {
        varint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    public mutating func byte(_ value: UInt8) { bytes.append(value) }

    public mutating func data(_ value: some Collection<UInt8>) {
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    public mutating func string(_ value: String) { data(value.utf8) }

    public mutating func optionalString(_ value: String?) {
        if let value {
            byte(1)
            string(value)
        } else {
            byte(0)
        }
    }

    public mutating func double(_ value: Double) {
        var bits = value.bitPattern.littleEndian
        withUnsafeBytes(of: &bits) { bytes.append(contentsOf: $0) }
    }
}

/// Reads what ``BinaryWriter`` wrote; every read is bounds-checked, so damaged input is an error, not a crash.
public struct BinaryReader {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var description: String { "damaged record" }
    }

    let bytes: ArraySlice<UInt8>
    var index: Int

    public init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    public var isAtEnd: Bool { index >= bytes.endIndex }

    public mutating func varint() throws(Failure) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard index < bytes.endIndex, shift < 64 else { throw Failure() }
            let byte = bytes[index]
            index += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
        }
    }

    public mutating func signed() throws(Failure) -> Int64 {
        let raw = try varint()
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    public mutating func byte() throws(Failure) -> UInt8 {
        guard index < bytes.endIndex else { throw Failure() }
        defer { index += 1 }
        return bytes[index]
    }

    public mutating func data() throws(Failure) -> ArraySlice<UInt8> {
        let count = try varint()
        guard count <= UInt64(bytes.endIndex - index) else { throw Failure() }
        let end = index + Int(count)
        defer { index = end }
        return bytes[index..<end]
    }

    public mutating func string() throws(Failure) -> String {
        String(decoding: try data(), as: UTF8.self)
    }

    public mutating func optionalString() throws(Failure) -> String? {
        try byte() == 0 ? nil : try string()
    }

    public mutating func double() throws(Failure) -> Double {
        guard bytes.endIndex - index >= 8 else { throw Failure() }
        var bits: UInt64 = 0
        for offset in 0..<8 { bits |= UInt64(bytes[index + offset]) << (8 * UInt64(offset)) }
        index += 8
        return Double(bitPattern: bits)
    }
}
