/// Escaping for log lines, so that text taken from data (a topic, a file name, a command's output) can never
/// forge a line, move the cursor or hide itself: every control character (C0, DEL and C1) is written as an
/// escape, in both formats.
enum LogText {
    /// `text` with control characters and backslashes escaped (`\t`, `\n`, `\u0000`), unquoted: for the text
    /// format's message.
    static func appendEscaped(_ text: String, to line: inout [UInt8]) {
        for scalar in text.unicodeScalars { append(scalar, quote: false, to: &line) }
    }

    /// `text` as a JSON string literal with every control character escaped (JSON itself requires it only
    /// below U+0020).
    static func appendQuoted(_ text: String, to line: inout [UInt8]) {
        line.append(UInt8(ascii: "\""))
        for scalar in text.unicodeScalars { append(scalar, quote: true, to: &line) }
        line.append(UInt8(ascii: "\""))
    }

    /// Whether the text format must quote `text` to keep `key=value` pairs apart and readable.
    static func needsQuotes(_ text: String) -> Bool {
        text.isEmpty
            || text.unicodeScalars.contains { scalar in
                scalar == " " || scalar == "\"" || scalar == "\\" || scalar == "=" || isControl(scalar)
            }
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }

    private static func append(_ scalar: Unicode.Scalar, quote: Bool, to line: inout [UInt8]) {
        switch scalar {
        case "\\": line += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
        case "\"" where quote: line += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
        case "\n": line += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
        case "\r": line += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
        case "\t": line += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
        case _ where isControl(scalar):
            let hex: [UInt8] = Array("0123456789abcdef".utf8)
            line += Array("\\u00".utf8)
            line.append(hex[Int(scalar.value >> 4)])
            line.append(hex[Int(scalar.value & 0xF)])
        default:
            UTF8.encode(scalar) { line.append($0) }
        }
    }
}
