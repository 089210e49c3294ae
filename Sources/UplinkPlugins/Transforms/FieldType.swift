import UplinkCore

/// The type a parsed value is converted to: `columns: [temperature:float]`, `types: {humidity: int}`.
///
/// Text converts as an operator would expect (`" 42 "` is an int, `yes` a bool); a value that does not convert
/// returns nil and the caller applies its error policy. Null stays null: a missing reading is not an error.
public enum FieldType: String, Sendable, CaseIterable {
    /// A 64-bit signed integer.
    case int
    /// A finite double.
    case float
    /// `true false 1 0 yes no on off`, any case.
    case bool
    /// The text as it is (invalid UTF-8 becomes U+FFFD).
    case string

    /// Converts text (a CSV cell, a `kv` value, a regex capture).
    public func convert(text bytes: some BidirectionalCollection<UInt8>) -> Value? {
        switch self {
        case .string:
            return .string(String(decoding: bytes, as: UTF8.self))
        case .int:
            return Self.parseInt(Self.trimmed(bytes)).map(Value.int)
        case .float:
            let trimmed = Self.trimmed(bytes)
            guard !trimmed.isEmpty else { return nil }
            if let number = Self.parseShortDecimal(trimmed) { return .double(number) }
            guard let number = Double(String(decoding: trimmed, as: UTF8.self)), number.isFinite else {
                return nil
            }
            return .double(number)
        case .bool:
            switch String(decoding: Self.trimmed(bytes), as: UTF8.self).lowercased() {
            case "true", "1", "yes", "on": return .bool(true)
            case "false", "0", "no", "off": return .bool(false)
            default: return nil
            }
        }
    }

    /// Converts a value parsed from JSON.
    public func convert(_ value: Value) -> Value? {
        switch (self, value) {
        case (_, .null), (.int, .int), (.float, .double), (.bool, .bool), (.string, .string):
            return value
        case (_, .string(let text)):
            return convert(text: text.utf8)
        case (.int, .double(let number)):
            // Only an integral double inside Int64's range is an int; 26.5 is not 26.
            guard number == number.rounded(), number >= -0x1p63, number < 0x1p63 else { return nil }
            return .int(Int64(number))
        case (.float, .int(let number)):
            return .double(Double(number))
        case (.bool, .int(let number)) where number == 0 || number == 1:
            return .bool(number == 1)
        case (.string, .int(let number)):
            return .string(String(number))
        case (.string, _):
            return .string(value.jsonText)
        default:
            return nil
        }
    }

    /// Reads `name` or `name:type` (a CSV column); nil type means string.
    static func split(column: String) -> (name: String, type: String?) {
        guard let colon = column.lastIndex(of: ":") else { return (column, nil) }
        return (String(column[..<colon]), String(column[column.index(after: colon)...]))
    }

    private static func trimmed<C: BidirectionalCollection<UInt8>>(_ bytes: C) -> C.SubSequence {
        var slice = bytes[...]
        while let first = slice.first, first == 0x20 || first == 0x09 { slice = slice.dropFirst() }
        while let last = slice.last, last == 0x20 || last == 0x09 { slice = slice.dropLast() }
        return slice
    }

    /// Exact powers of ten as doubles (10^0 ... 10^15).
    private static let powersOfTen: [Double] = (0...15).map { exponent in
        var value = 1.0
        for _ in 0..<exponent { value *= 10 }
        return value
    }

    /// `[+-]digits[.digits]` with at most 15 digits in all, the form sensors print, without a String or strtod:
    /// the digits as an integer are below 2^53 and so is 10^fraction, both exact, and one IEEE division rounds
    /// correctly, exactly as strtod does. Nil for every other form (the caller falls back to `Double(_:)`).
    private static func parseShortDecimal(_ bytes: some Collection<UInt8>) -> Double? {
        var iterator = bytes.makeIterator()
        guard var byte = iterator.next() else { return nil }
        let negative = byte == UInt8(ascii: "-")
        if negative || byte == UInt8(ascii: "+") {
            guard let next = iterator.next() else { return nil }
            byte = next
        }
        var mantissa: Int64 = 0
        var digits = 0
        var fractionDigits = 0
        var inFraction = false
        var digitsBeforePoint = 0
        while true {
            if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                mantissa = mantissa * 10 + Int64(byte - UInt8(ascii: "0"))
                digits += 1
                if digits > 15 { return nil }
                if inFraction { fractionDigits += 1 } else { digitsBeforePoint += 1 }
            } else if byte == UInt8(ascii: "."), !inFraction, digitsBeforePoint > 0 {
                inFraction = true
            } else {
                return nil
            }
            guard let next = iterator.next() else { break }
            byte = next
        }
        if inFraction && fractionDigits == 0 { return nil }
        let value = Double(mantissa) / powersOfTen[fractionDigits]
        return negative ? -value : value
    }

    private static func parseInt(_ bytes: some Collection<UInt8>) -> Int64? {
        var iterator = bytes.makeIterator()
        guard var byte = iterator.next() else { return nil }
        let negative = byte == UInt8(ascii: "-")
        if negative || byte == UInt8(ascii: "+") {
            guard let next = iterator.next() else { return nil }
            byte = next
        }
        // Accumulate negatively so Int64.min parses too.
        var result: Int64 = 0
        while true {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (shifted, overflowA) = result.multipliedReportingOverflow(by: 10)
            let (sum, overflowB) = shifted.subtractingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            if overflowA || overflowB { return nil }
            result = sum
            guard let next = iterator.next() else { break }
            byte = next
        }
        if negative { return result }
        return result == Int64.min ? nil : -result
    }
}
