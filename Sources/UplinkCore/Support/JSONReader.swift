/// A small strict JSON parser into ``Value``, working on bytes without Foundation.
///
/// RFC 8259 exactly: the number grammar (`012`, `-01`, `1.`, `.5`, `+1`, `2.e3` are refused), UTF-8 text, any
/// escape. What the grammar allows but a ``Value`` cannot hold without loss is a *repair*:
/// - an integer outside Int64's range, or a number outside Double's (`1e400`, and `1e-400`, which would become
///   0), is kept as a string of its exact text;
/// - an invalid UTF-8 sequence inside a string becomes U+FFFD.
/// ``parse(_:)`` refuses a document that needs a repair; ``parse(_:repairs:)`` returns the repaired value and says
/// what it changed, so a caller can apply its error policy. A lone surrogate escape (`"\ud800"`) is valid JSON
/// and becomes U+FFFD, the escape after it read on its own (`"\ud800\u0041"` is U+FFFD then `A`). `-0` and
/// `-0.0` keep their sign (as the double -0.0). A key written twice keeps its last value.
///
/// Nesting is capped so hostile input cannot overflow the stack; work is linear in the input.
public struct JSONReader {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var offset: Int
        public var message: String
        public var description: String { "invalid JSON at byte \(offset): \(message)" }

        public init(offset: Int, message: String) {
            self.offset = offset
            self.message = message
        }
    }

    /// A change ``parse(_:repairs:)`` made so that valid JSON fits a ``Value``.
    public struct Repair: Sendable, Equatable, CustomStringConvertible {
        public enum Kind: Sendable, Equatable {
            /// A number kept as a string of its text: an integer beyond 64 bits or a number beyond a double.
            case numberOutOfRange
            /// Invalid UTF-8 in a string, replaced by U+FFFD.
            case invalidUTF8
        }

        public var kind: Kind
        public var offset: Int
        public var message: String
        public var description: String { "at byte \(offset): \(message)" }
    }

    static let maxDepth = 128

    /// Parses one JSON document; trailing whitespace is allowed, anything else after it is not. A document
    /// that would need a ``Repair`` is refused with its reason.
    public static func parse(_ bytes: some Collection<UInt8>) throws(Failure) -> Value {
        var repairs: [Repair] = []
        let value = try parse(bytes, repairs: &repairs)
        if let first = repairs.first { throw Failure(offset: first.offset, message: first.message) }
        return value
    }

    /// Parses one JSON document, repairing what valid JSON a ``Value`` cannot hold exactly and appending each
    /// repair to `repairs`.
    public static func parse(_ bytes: some Collection<UInt8>, repairs: inout [Repair]) throws(Failure) -> Value {
        let attempt: Result<Value, Failure>? = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(Failure) -> Value in try parseBuffer(buffer, repairs: &repairs) }
        }
        if let attempt { return try attempt.get() }
        let copy = Array(bytes)
        return try copy.withUnsafeBufferPointer { (buffer) throws(Failure) -> Value in
            try parseBuffer(buffer, repairs: &repairs)
        }
    }

    private static func parseBuffer(_ buffer: UnsafeBufferPointer<UInt8>, repairs: inout [Repair]) throws(Failure) -> Value {
        var reader = Cursor(bytes: buffer)
        let value = try reader.value(depth: 0)
        reader.skipWhitespace()
        guard reader.index == buffer.count else { throw reader.failure("unexpected data after the value") }
        repairs += reader.repairs
        return value
    }

    private struct Cursor {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0
        var repairs: [Repair] = []

        func failure(_ message: String) -> Failure { Failure(offset: index, message: message) }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        mutating func expect(_ literal: StaticString, _ value: Value) throws(Failure) -> Value {
            let count = literal.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw failure("unexpected end") }
            for offset in 0..<count where bytes[index + offset] != literal.utf8Start[offset] {
                throw failure("unexpected character")
            }
            index += count
            return value
        }

        mutating func value(depth: Int) throws(Failure) -> Value {
            guard depth < JSONReader.maxDepth else { throw failure("nesting too deep") }
            skipWhitespace()
            guard index < bytes.count else { throw failure("unexpected end") }
            switch bytes[index] {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): return try expect("true", .bool(true))
            case UInt8(ascii: "f"): return try expect("false", .bool(false))
            case UInt8(ascii: "n"): return try expect("null", .null)
            default: return try number()
            }
        }

        mutating func object(depth: Int) throws(Failure) -> Value {
            index += 1
            var fields = Fields()
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(fields)
            }
            while true {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw failure("expected a key") }
                let key = try string()
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw failure("expected ':'") }
                index += 1
                fields[key] = try value(depth: depth + 1)
                skipWhitespace()
                guard index < bytes.count else { throw failure("unexpected end") }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                if bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    return .object(fields)
                }
                throw failure("expected ',' or '}'")
            }
        }

        mutating func array(depth: Int) throws(Failure) -> Value {
            index += 1
            var items: [Value] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(items)
            }
            while true {
                items.append(try value(depth: depth + 1))
                skipWhitespace()
                guard index < bytes.count else { throw failure("unexpected end") }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                if bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    return .array(items)
                }
                throw failure("expected ',' or ']'")
            }
        }

        mutating func hex4() throws(Failure) -> UInt32 {
            guard index + 4 <= bytes.count else { throw failure("short \\u escape") }
            var result: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt32
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
                default: throw failure("bad \\u escape")
                }
                result = result << 4 | digit
                index += 1
            }
            return result
        }

        /// Text from UTF-8 bytes; an invalid sequence becomes U+FFFD and is recorded (at `offset`, the string's).
        /// `ascii` says the caller saw no byte above 0x7F: then the bytes are valid as they are.
        mutating func text(_ utf8: UnsafeBufferPointer<UInt8>, offset: Int, ascii: Bool = false) -> String {
            // String(validating:) is generic and costs more than decoding: only non-ASCII text pays for it.
            if ascii { return String(decoding: utf8, as: UTF8.self) }
            if let valid = String(validating: utf8, as: UTF8.self) { return valid }
            repairs.append(
                Repair(kind: .invalidUTF8, offset: offset, message: "the string holds invalid UTF-8 (replaced by U+FFFD)"))
            return String(decoding: utf8, as: UTF8.self)
        }

        mutating func string() throws(Failure) -> String {
            let quote = index
            index += 1
            let start = index
            // Fast path: no escapes.
            var highBits: UInt8 = 0
            while index < bytes.count {
                let byte = bytes[index]
                highBits |= byte
                if byte == UInt8(ascii: "\"") {
                    let text = text(UnsafeBufferPointer(rebasing: bytes[start..<index]), offset: quote, ascii: highBits < 0x80)
                    index += 1
                    return text
                }
                if byte == UInt8(ascii: "\\") { break }
                if byte < 0x20 { throw failure("control character in string") }
                index += 1
            }
            var scratch = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return scratch.withUnsafeBufferPointer { text($0, offset: quote) }
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { throw failure("unexpected end") }
                    let escape = bytes[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""): scratch.append(0x22)
                    case UInt8(ascii: "\\"): scratch.append(0x5C)
                    case UInt8(ascii: "/"): scratch.append(0x2F)
                    case UInt8(ascii: "b"): scratch.append(0x08)
                    case UInt8(ascii: "f"): scratch.append(0x0C)
                    case UInt8(ascii: "n"): scratch.append(0x0A)
                    case UInt8(ascii: "r"): scratch.append(0x0D)
                    case UInt8(ascii: "t"): scratch.append(0x09)
                    case UInt8(ascii: "u"):
                        var code = try hex4()
                        switch code {
                        case 0xD800..<0xDC00:
                            // A high surrogate pairs with a low one right after it; otherwise it stands alone and
                            // whatever follows is read on its own.
                            let next = index
                            if index + 6 <= bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") {
                                index += 2
                                let low = try hex4()
                                if low >= 0xDC00 && low < 0xE000 {
                                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                                } else {
                                    code = 0xFFFD
                                    index = next
                                }
                            } else {
                                code = 0xFFFD
                            }
                        case 0xDC00..<0xE000:
                            code = 0xFFFD
                        default:
                            break
                        }
                        let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                        scratch.append(contentsOf: String(Character(scalar)).utf8)
                    default: throw failure("bad escape")
                    }
                default:
                    if byte < 0x20 { throw failure("control character in string") }
                    scratch.append(byte)
                }
            }
            throw failure("unterminated string")
        }

        @inline(__always) func isDigit(_ at: Int) -> Bool {
            at < bytes.count && bytes[at] >= UInt8(ascii: "0") && bytes[at] <= UInt8(ascii: "9")
        }

        /// RFC 8259: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
        mutating func number() throws(Failure) -> Value {
            let start = index
            let negative = bytes[index] == UInt8(ascii: "-")
            if negative { index += 1 }
            guard isDigit(index) else {
                throw failure(negative ? "a '-' must be followed by digits" : "unexpected character")
            }
            var magnitude: UInt64 = 0
            var overflow = false
            var nonzero = false
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
                if isDigit(index) { throw failure("a number cannot start with 0 followed by digits") }
            } else {
                while isDigit(index) {
                    let digit = UInt64(bytes[index] &- UInt8(ascii: "0"))
                    let (shifted, overflowA) = magnitude.multipliedReportingOverflow(by: 10)
                    let (sum, overflowB) = shifted.addingReportingOverflow(digit)
                    overflow = overflow || overflowA || overflowB
                    magnitude = sum
                    nonzero = true
                    index += 1
                }
            }
            var isInteger = true
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard isDigit(index) else { throw failure("a decimal point must be followed by digits") }
                while isDigit(index) {
                    if bytes[index] != UInt8(ascii: "0") { nonzero = true }
                    index += 1
                }
                isInteger = false
            }
            if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                guard isDigit(index) else { throw failure("an exponent must have digits") }
                while isDigit(index) { index += 1 }
                isInteger = false
            }
            if isInteger && !overflow {
                if !negative, magnitude <= UInt64(Int64.max) { return .int(Int64(magnitude)) }
                if negative, magnitude == 0 { return .double(-0.0) }
                if negative, magnitude <= UInt64(Int64.max) + 1 { return .int(Int64(truncatingIfNeeded: 0 &- magnitude)) }
            }
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            if isInteger {
                return outOfRange(text, at: start, "the integer \(text.prefix(40)) is outside the 64-bit range and would lose digits as a float")
            }
            guard let double = Double(text), double.isFinite else {
                return outOfRange(text, at: start, "the number \(text.prefix(40)) is too large for a double")
            }
            if double == 0 && nonzero {
                return outOfRange(text, at: start, "the number \(text.prefix(40)) is too small for a double (it would become 0)")
            }
            return .double(double)
        }

        mutating func outOfRange(_ text: String, at offset: Int, _ message: String) -> Value {
            repairs.append(Repair(kind: .numberOutOfRange, offset: offset, message: message + " (kept as text)"))
            return .string(text)
        }
    }
}
