@testable import UplinkCore

/// The JSON reader and writer.
///
/// Properties: no crash (the nesting limit holds the stack); what the reader accepts, the writer writes as
/// JSON the reader accepts again, with the same value (numbers compared bit for bit, so a lost sign of -0.0
/// counts); writing is idempotent; the output is at most six bytes per input byte (`\u00XX`); arbitrary bytes
/// written as a string literal read back as that string, with invalid UTF-8 replaced.
enum JSONFuzz {
    static func run(_ data: UnsafeBufferPointer<UInt8>) {
        if let value = try? JSONReader.parse(data) {
            var written: [UInt8] = []
            value.appendJSON(to: &written)
            require(written.count <= data.count * 6 + 8, "\(data.count) bytes wrote as \(written.count)")
            require(String(validating: written, as: UTF8.self) != nil, "the writer produced invalid UTF-8")
            let again: Value
            do {
                again = try JSONReader.parse(written)
            } catch {
                require(false, "the reader refuses the writer's output \(quote(written)): \(error)")
                return
            }
            require(
                same(value, again),
                "round trip changed the value: \(quote(Array(data))) -> \(quote(written)) -> \(quote(again))")
            var rewritten: [UInt8] = []
            again.appendJSON(to: &rewritten)
            require(rewritten == written, "writing is not idempotent: \(quote(written)) then \(quote(rewritten))")
        }

        // Any bytes as a string literal (the raw-event path): valid JSON, read back as the decoded text.
        var literal: [UInt8] = []
        JSONWriter.appendStringBytes(data, to: &literal)
        guard case .string(let text)? = try? JSONReader.parse(literal) else {
            require(false, "a string literal of arbitrary bytes does not read back: \(quote(literal))")
            return
        }
        // Valid UTF-8 comes back exactly. Invalid bytes become U+FFFD: the writer replaces each byte of an invalid
        // sequence, Swift's decoding each maximal invalid subpart, so only the runs of replacements are compared.
        require(
            collapsed(text) == collapsed(String(decoding: data, as: UTF8.self)),
            "a string literal read back as other text: \(quote(Array(data))) -> \(quote(literal))")
        if String(validating: data, as: UTF8.self) != nil {
            require(text.utf8.elementsEqual(data), "valid UTF-8 changed in a string literal: \(quote(Array(data)))")
        }
    }

    /// Value equality with doubles compared by bit pattern (so 0.0 and -0.0 differ).
    static func same(_ a: Value, _ b: Value) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.double(let x), .double(let y)): return x.bitPattern == y.bitPattern
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
        case (.object(let x), .object(let y)):
            return x.count == y.count
                && zip(x, y).allSatisfy { $0.name == $1.name && same($0.value, $1.value) }
        default: return false
        }
    }

    /// The text with each run of U+FFFD as one.
    static func collapsed(_ text: String) -> [Unicode.Scalar] {
        var scalars: [Unicode.Scalar] = []
        for scalar in text.unicodeScalars where !(scalar == "\u{FFFD}" && scalars.last == "\u{FFFD}") {
            scalars.append(scalar)
        }
        return scalars
    }

    static func quote(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix(200), as: UTF8.self).debugDescription
    }

    static func quote(_ value: Value) -> String { quote(Array(value.jsonText.utf8)) }
}
