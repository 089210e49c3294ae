import Testing
import UplinkCore

@Suite struct JSONWriterTests {
    private func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        JSONWriter.appendStringBytes(bytes, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    @Test func escapesQuotesBackslashesAndControlCharacters() {
        #expect(encode(Array("a\"b\\c\n\r\t\u{01}".utf8)) == #""a\"b\\c\n\r\t\u0001""#)
    }

    @Test func keepsValidUTF8AndReplacesInvalidBytes() {
        #expect(encode(Array("温度 ✓ 🚀".utf8)) == "\"温度 ✓ 🚀\"")
        #expect(encode([0x61, 0xFF, 0x62, 0xC3]) == "\"a\u{FFFD}b\u{FFFD}\"")
        // An overlong encoding of '/' and a lone surrogate are invalid too.
        #expect(encode([0xC0, 0xAF]) == "\"\u{FFFD}\u{FFFD}\"")
        #expect(encode([0xED, 0xA0, 0x80]) == "\"\u{FFFD}\u{FFFD}\u{FFFD}\"")
    }

    @Test func outputOfArbitraryBytesAlwaysParses() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let bytes = (0..<Int.random(in: 0..<64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            var out: [UInt8] = []
            JSONWriter.appendStringBytes(bytes, to: &out)
            let parsed = try JSONReader.parse(out)
            guard case .string = parsed else {
                Issue.record("not a string")
                return
            }
        }
    }

    @Test func numbers() {
        #expect(Value.int(-42).jsonText == "-42")
        #expect(Value.int(Int64.min).jsonText == "-9223372036854775808")
        #expect(Value.double(26.5).jsonText == "26.5")
        #expect(Value.double(26).jsonText == "26.0")
        #expect(Value.double(.nan).jsonText == "null")
    }

    @Test func recordKeepsFieldOrder() {
        let fields: Fields = ["b": .int(1), "a": .string("x"), "c": .object(["d": .bool(true)])]
        #expect(Value.object(fields).jsonText == #"{"b":1,"a":"x","c":{"d":true}}"#)
    }
}

@Suite struct JSONReaderTests {
    @Test func parsesNestedDocuments() throws {
        let value = try JSONReader.parse(Array(#" {"a":[1,2.5,"x\u00e9\n"],"b":{"c":null,"d":false}} "#.utf8))
        #expect(value.jsonText == #"{"a":[1,2.5,"xé\n"],"b":{"c":null,"d":false}}"#)
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "tru", "1 2", "\"unterminated", "{\"a\":01x}"])
    func rejectsInvalidJSON(_ text: String) {
        #expect(throws: JSONReader.Failure.self) { try JSONReader.parse(Array(text.utf8)) }
    }

    @Test func surrogatePairs() throws {
        #expect(try JSONReader.parse(Array(#""\ud83d\ude80""#.utf8)) == .string("🚀"))
    }

    @Test func deepNestingIsRefusedNotACrash() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONReader.Failure.self) { try JSONReader.parse(Array(deep.utf8)) }
    }
}
