import FoundationEssentials

/// The JSON object IoT-Core answers with, read leniently: every field may be missing, of another type or huge,
/// and none of that may crash the client.
struct ServerAnswer: Sendable, Hashable {
    /// `RetCode`, when it is an integer, an integral float or a string of digits.
    var retCode: Int?
    /// `Message`, cut to ``maxTextLength`` characters and stripped of control characters.
    var message: String?
    /// `Token` of an `/auth` answer, verbatim.
    var token: String?
    /// `MessageID` of a publish answer, a string or a number, cut to ``maxTextLength``.
    var messageID: String?

    static let maxTextLength = 256

    /// Parses `body`; `nil` when it is not a JSON object.
    static func parse(_ body: some Collection<UInt8>) -> ServerAnswer? {
        guard let first = body.first(where: { !isJSONWhitespace($0) }), first == UInt8(ascii: "{") else {
            return nil
        }
        return try? JSONDecoder().decode(Lenient.self, from: Data(body)).answer
    }

    /// The token if a header can carry it: non-empty visible ASCII, so it cannot inject a header line.
    var usableToken: String? {
        guard let token, !token.isEmpty, token.utf8.count <= 16_384,
            token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f })
        else { return nil }
        return token
    }

    private static func isJSONWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0a || byte == 0x0d
    }

    /// Text fit for a log line or a dead-letter reason.
    static func sanitized(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars.prefix(maxTextLength) {
            out.append(scalar.properties.generalCategory == .control ? " " : scalar)
        }
        return String(out)
    }

    private struct Lenient: Decodable {
        var answer = ServerAnswer()

        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Key.self)
            // Names are matched without regard to case, and `allKeys` comes in no fixed order: when several keys
            // name one field (`"Token"` and `"TokEn"`), the exact spelling wins, else the smallest in byte order,
            // so the same body always gives the same answer.
            let named = container.allKeys.filter { Self.exactNames[$0.stringValue.lowercased()] != nil }
            var claimed: Set<String> = []
            for key in named.sorted(by: { Self.precedes($0.stringValue, $1.stringValue) }) {
                let field = key.stringValue.lowercased()
                guard claimed.insert(field).inserted else { continue }
                switch field {
                case "retcode": answer.retCode = Self.integer(container, key)
                case "message": answer.message = (try? container.decode(String.self, forKey: key)).map(sanitized)
                case "token": answer.token = try? container.decode(String.self, forKey: key)
                case "messageid":
                    if let text = try? container.decode(String.self, forKey: key) {
                        answer.messageID = sanitized(text)
                    } else if let number = Self.integer(container, key) {
                        answer.messageID = String(number)
                    } else if let number = try? container.decode(UInt64.self, forKey: key) {
                        answer.messageID = String(number)
                    }
                default: continue
                }
            }
        }

        /// The fields read, by lowercased name, with their spelling in the spec.
        static let exactNames = ["retcode": "RetCode", "message": "Message", "token": "Token", "messageid": "MessageID"]

        /// Whether key `a` takes precedence over `b` for the field they both name.
        static func precedes(_ a: String, _ b: String) -> Bool {
            let aExact = exactNames[a.lowercased()] == a
            let bExact = exactNames[b.lowercased()] == b
            if aExact != bExact { return aExact }
            return a.utf8.lexicographicallyPrecedes(b.utf8)
        }

        static func integer(_ container: KeyedDecodingContainer<Key>, _ key: Key) -> Int? {
            if let value = try? container.decode(Int.self, forKey: key) { return value }
            if let value = try? container.decode(Double.self, forKey: key) { return Int(exactly: value) }
            if let value = try? container.decode(String.self, forKey: key) {
                return Int(value.filter { $0 != " " })
            }
            return nil
        }
    }
}
