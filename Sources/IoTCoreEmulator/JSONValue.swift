/// A JSON value the emulator writes. Answers are written by hand rather than with `JSONEncoder` so that the
/// key order is exactly the vendor's (`RetCode`, `Message`, then `Token` or `MessageID`).
enum JSONValue: Sendable {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case null
    /// Already serialised JSON (a nested object or array).
    case raw(String)

    var serialized: String {
        switch self {
        case .string(let text): return JSONValue.quote(text)
        case .int(let number): return String(number)
        case .double(let number): return number.isFinite ? "\(number)" : "null"
        case .bool(let flag): return flag ? "true" : "false"
        case .null: return "null"
        case .raw(let json): return json
        }
    }

    /// `fields` as a JSON object, in the given order.
    static func object(_ fields: [(String, JSONValue)]) -> String {
        "{" + fields.map { "\(quote($0.0)):\($0.1.serialized)" }.joined(separator: ",") + "}"
    }

    /// Already serialised `items` as a JSON array.
    static func array(_ items: [String]) -> String {
        "[" + items.joined(separator: ",") + "]"
    }

    /// `text` as a JSON string literal, escaped per RFC 8259.
    static func quote(_ text: String) -> String {
        var result = "\""
        result.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
