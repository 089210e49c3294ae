/// Byte-level JSON output: no Foundation, no intermediate strings, valid for any input.
public enum JSONWriter {
    /// Appends `text` as a JSON string literal. Swift strings are valid UTF-8, so only escaping is needed.
    public static func appendString(_ text: String, to buffer: inout [UInt8]) {
        var text = text
        text.withUTF8 { appendStringBytes($0, to: &buffer) }
    }

    /// Appends arbitrary bytes as a JSON string literal: quotes, backslashes and control characters are
    /// escaped, and invalid UTF-8 sequences become U+FFFD, so the output is always valid JSON.
    public static func appendStringBytes(_ bytes: some Collection<UInt8>, to buffer: inout [UInt8]) {
        buffer.append(UInt8(ascii: "\""))
        let handled: Void? = bytes.withContiguousStorageIfAvailable { appendEscaped($0, to: &buffer) }
        if handled == nil {
            let copy = Array(bytes)
            copy.withUnsafeBufferPointer { appendEscaped($0, to: &buffer) }
        }
        buffer.append(UInt8(ascii: "\""))
    }

    private static func appendEscaped(_ bytes: UnsafeBufferPointer<UInt8>, to buffer: inout [UInt8]) {
        guard let base = bytes.baseAddress else { return }
        let count = bytes.count
        var index = 0
        var runStart = 0
        @inline(__always) func flush(_ end: Int) {
            if end > runStart { buffer.append(contentsOf: UnsafeBufferPointer(start: base + runStart, count: end - runStart)) }
        }
        while true {
            // Plain ASCII runs are skipped eight bytes at a time and copied with one append.
            index = nextSpecialByte(base, count: count, from: index)
            if index == count { break }
            let byte = base[index]
            if byte < 0x80 {
                flush(index)
                buffer.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""): buffer.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): buffer.append(UInt8(ascii: "\\"))
                case 0x0A: buffer.append(UInt8(ascii: "n"))
                case 0x0D: buffer.append(UInt8(ascii: "r"))
                case 0x09: buffer.append(UInt8(ascii: "t"))
                case 0x08: buffer.append(UInt8(ascii: "b"))
                case 0x0C: buffer.append(UInt8(ascii: "f"))
                default:
                    buffer.append(UInt8(ascii: "u"))
                    buffer.append(UInt8(ascii: "0"))
                    buffer.append(UInt8(ascii: "0"))
                    buffer.append(hexDigit(byte >> 4))
                    buffer.append(hexDigit(byte & 0x0F))
                }
                index += 1
                runStart = index
                continue
            }
            let length = validUTF8SequenceLength(bytes, at: index)
            if length > 0 {
                index += length
                continue
            }
            flush(index)
            buffer.append(0xEF)  // U+FFFD
            buffer.append(0xBF)
            buffer.append(0xBD)
            index += 1
            runStart = index
        }
        flush(count)
    }

    @inline(__always)
    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }

    /// The index of the first byte at or after `index` that is not plain printable ASCII (a control character,
    /// `"`, `\`, or a byte of a multi-byte sequence), or `count`. Eight bytes per step (SWAR): each test below
    /// flags the lowest matching byte of a word exactly (borrows only spill into higher bytes), and the lowest
    /// flagged byte is all that is used.
    @inline(__always)
    public static func nextSpecialByte(_ base: UnsafePointer<UInt8>, count: Int, from start: Int) -> Int {
        var index = start
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let spaces: UInt64 = 0x2020_2020_2020_2020
        let quotes: UInt64 = 0x2222_2222_2222_2222
        let backslashes: UInt64 = 0x5C5C_5C5C_5C5C_5C5C
        while index &+ 8 <= count {
            let word = UInt64(littleEndian: UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self))
            let quote = word ^ quotes
            let backslash = word ^ backslashes
            let control = (word &- spaces) & ~word
            let isQuote = (quote &- ones) & ~quote
            let isBackslash = (backslash &- ones) & ~backslash
            let special = (word | control | isQuote | isBackslash) & highs
            if special != 0 { return index &+ (special.trailingZeroBitCount >> 3) }
            index &+= 8
        }
        while index < count {
            let byte = base[index]
            if byte < 0x20 || byte >= 0x80 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { return index }
            index &+= 1
        }
        return count
    }

    /// The length of the valid UTF-8 sequence starting at `index` (2 to 4), or 0 when it is invalid.
    @inline(__always)
    static func validUTF8SequenceLength(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> Int {
        let lead = bytes[index]
        let remaining = bytes.count - index
        @inline(__always) func isContinuation(_ offset: Int) -> Bool {
            offset < remaining && bytes[index + offset] & 0xC0 == 0x80
        }
        switch lead {
        case 0xC2...0xDF:
            return isContinuation(1) ? 2 : 0
        case 0xE0...0xEF:
            guard isContinuation(1), isContinuation(2) else { return 0 }
            let second = bytes[index + 1]
            if lead == 0xE0 && second < 0xA0 { return 0 }  // overlong
            if lead == 0xED && second > 0x9F { return 0 }  // surrogates
            return 3
        case 0xF0...0xF4:
            guard isContinuation(1), isContinuation(2), isContinuation(3) else { return 0 }
            let second = bytes[index + 1]
            if lead == 0xF0 && second < 0x90 { return 0 }
            if lead == 0xF4 && second > 0x8F { return 0 }
            return 4
        default:
            return 0
        }
    }

    public static func appendInteger(_ value: Int64, to buffer: inout [UInt8]) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch, no heap
        withUnsafeMutableBytes(of: &digits) { scratch in
            let length = writeInteger(value, into: scratch)
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[(24 - length)...]))
        }
    }

    /// "00" "01" … "99": two digits per division.
    private static let digitPairs: [UInt8] = {
        var pairs: [UInt8] = []
        pairs.reserveCapacity(200)
        for value in 0..<100 {
            pairs.append(UInt8(ascii: "0") + UInt8(value / 10))
            pairs.append(UInt8(ascii: "0") + UInt8(value % 10))
        }
        return pairs
    }()

    /// Writes `value` in decimal at the end of `scratch` (at least 20 bytes); returns how many bytes it took.
    public static func writeInteger(_ value: Int64, into scratch: UnsafeMutableRawBufferPointer) -> Int {
        var magnitude = value.magnitude
        var end = scratch.count
        digitPairs.withUnsafeBufferPointer { pairs in
            while magnitude >= 100 {
                let pair = Int(magnitude % 100) &* 2
                magnitude /= 100
                end &-= 2
                scratch[end] = pairs[pair]
                scratch[end &+ 1] = pairs[pair &+ 1]
            }
            if magnitude >= 10 {
                let pair = Int(magnitude) &* 2
                end &-= 2
                scratch[end] = pairs[pair]
                scratch[end &+ 1] = pairs[pair &+ 1]
            } else {
                end &-= 1
                scratch[end] = UInt8(ascii: "0") &+ UInt8(magnitude)
            }
        }
        if value < 0 {
            end &-= 1
            scratch[end] = UInt8(ascii: "-")
        }
        return scratch.count &- end
    }

    /// JSON has no NaN or infinity: they become null rather than invalid output.
    public static func appendDouble(_ value: Double, to buffer: inout [UInt8]) {
        guard value.isFinite else {
            buffer.append(contentsOf: "null".utf8)
            return
        }
        if value == value.rounded(), abs(value) < 1e15 {
            // -0.0 keeps its sign: Int64(-0.0) is 0.
            if value.sign == .minus && value == 0 { buffer.append(UInt8(ascii: "-")) }
            appendInteger(Int64(value), to: &buffer)
            buffer.append(UInt8(ascii: "."))
            buffer.append(UInt8(ascii: "0"))
            return
        }
        var text = value.description
        text.withUTF8 { buffer.append(contentsOf: $0) }
    }
}
