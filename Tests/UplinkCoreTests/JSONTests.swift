import Foundation
import Testing
@testable import UplinkCore

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

    /// The byte-at-a-time escaper the eight-bytes-at-a-time one replaced, as the reference.
    private func referenceEscape(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x22]
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case 0x22: out += [0x5C, 0x22]
            case 0x5C: out += [0x5C, 0x5C]
            case 0x0A: out += [0x5C, UInt8(ascii: "n")]
            case 0x0D: out += [0x5C, UInt8(ascii: "r")]
            case 0x09: out += [0x5C, UInt8(ascii: "t")]
            case 0x08: out += [0x5C, UInt8(ascii: "b")]
            case 0x0C: out += [0x5C, UInt8(ascii: "f")]
            case 0..<0x20: out += Array(String(format: "\\u%04x", Int(byte)).utf8)
            case 0x20..<0x80: out.append(byte)
            default:
                let length = bytes.withUnsafeBufferPointer { JSONWriter.validUTF8SequenceLength($0, at: index) }
                if length > 0 {
                    out += bytes[index..<(index + length)]
                    index += length
                    continue
                }
                out += [0xEF, 0xBF, 0xBD]
            }
            index += 1
        }
        out.append(0x22)
        return out
    }

    @Test func wordAtATimeEscapingMatchesTheByteAtATimeReference() {
        var generator = SystemRandomNumberGenerator()
        // Mostly plain text with specials at every offset of a word, so each lane and the tail are exercised.
        let specials: [UInt8] = [0x22, 0x5C, 0x00, 0x0A, 0x1F, 0x7F, 0x80, 0xC3, 0xA9, 0xE2, 0xF0, 0xFF, 0x20, 0x21, 0x5B, 0x5D]
        for _ in 0..<3000 {
            let count = Int.random(in: 0..<40, using: &generator)
            let bytes = (0..<count).map { _ in
                Int.random(in: 0..<4, using: &generator) == 0
                    ? specials.randomElement(using: &generator)! : UInt8.random(in: 0x41...0x7A, using: &generator)
            }
            var out: [UInt8] = []
            JSONWriter.appendStringBytes(bytes, to: &out)
            #expect(out == referenceEscape(bytes), "input \(bytes)")
        }
    }

    @Test func integersMatchTheStandardLibrary() {
        var generator = SystemRandomNumberGenerator()
        var samples: [Int64] = [0, 1, -1, 9, 10, 99, 100, 101, -100, 999, 1000, Int64.max, Int64.min, Int64.min + 1]
        for _ in 0..<2000 {
            let digits = Int.random(in: 1...18, using: &generator)
            samples.append(Int64.random(in: -(Int64(1) << (digits * 3))...(Int64(1) << (digits * 3)), using: &generator))
        }
        for value in samples {
            var out: [UInt8] = []
            JSONWriter.appendInteger(value, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == String(value))
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
