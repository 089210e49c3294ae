import Foundation
import Testing
@testable import UplinkCore
import UplinkTestSupport

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
        #expect(Value.double(-0.0).jsonText == "-0.0")
        #expect(Value.double(0.0).jsonText == "0.0")
    }

    @Test(arguments: [
        #"{"a":-0.0}"#, #"{"a":1.5e300,"b":-2.5e-300,"c":5e-324}"#, #"{"a":9223372036854775807,"b":-9223372036854775808}"#,
        #"{"a":"\u0000\u001f\"\\/é🚀"}"#, #"{"a":[[],{},[null,true,false]],"b":0.1}"#,
    ])
    func writerRoundTrip(_ text: String) throws {
        let value = try JSONReader.parse(Array(text.utf8))
        let written = value.jsonText
        #expect(try JSONReader.parse(Array(written.utf8)) == value)
        #expect(try JSONReader.parse(Array(written.utf8)).jsonText == written)
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

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\" 1}", "tru", "1 2", "\"unterminated", "{\"a\":01x}",
        // RFC 8259's number grammar.
        "012", "-01", "1.", ".5", "+1", "2.e3", "-", "1e", "1e+", "0x10", "1.0.0", "-.5", "01.5", "Infinity", "NaN",
    ])
    func rejectsInvalidJSON(_ text: String) {
        #expect(throws: JSONReader.Failure.self) { try JSONReader.parse(Array(text.utf8)) }
    }

    @Test func surrogatePairs() throws {
        #expect(try JSONReader.parse(Array(#""\ud83d\ude80""#.utf8)) == .string("🚀"))
    }

    @Test func loneSurrogatesBecomeReplacementCharactersAndLoseNothingAfterThem() throws {
        #expect(try JSONReader.parse(Array(#""\ud800\u0041""#.utf8)) == .string("\u{FFFD}A"))
        #expect(try JSONReader.parse(Array(#""\ud800\ud800\udc00""#.utf8)) == .string("\u{FFFD}\u{10000}"))
        #expect(try JSONReader.parse(Array(#""\ud800x""#.utf8)) == .string("\u{FFFD}x"))
        #expect(try JSONReader.parse(Array(#""\udc00\ud83d\ude80""#.utf8)) == .string("\u{FFFD}🚀"))
        #expect(try JSONReader.parse(Array(#""a\ud800""#.utf8)) == .string("a\u{FFFD}"))
    }

    @Test func numbersKeepTheirValueOrSayWhy() throws {
        #expect(try JSONReader.parse(Array("-0.0".utf8)) == .double(-0.0))
        guard case .double(let zero) = try JSONReader.parse(Array("-0".utf8)) else {
            Issue.record("-0 is not a double")
            return
        }
        #expect(zero == 0 && zero.sign == .minus)
        #expect(try JSONReader.parse(Array("9223372036854775807".utf8)) == .int(.max))
        #expect(try JSONReader.parse(Array("-9223372036854775808".utf8)) == .int(.min))
        #expect(try JSONReader.parse(Array("1E2".utf8)) == .double(100))
        #expect(try JSONReader.parse(Array("0e+1".utf8)) == .double(0))
        // Beyond Int64 or a double: refused by parse(_:), kept exactly as text by parse(_:repairs:).
        for text in ["9223372036854775808", "-9223372036854775809", "123456789012345678901234567890", "1e400", "-1e400", "1e-400"] {
            #expect(throws: JSONReader.Failure.self) { try JSONReader.parse(Array(text.utf8)) }
            var repairs: [JSONReader.Repair] = []
            #expect(try JSONReader.parse(Array("[\(text)]".utf8), repairs: &repairs) == .array([.string(text)]))
            #expect(repairs.map(\.kind) == [.numberOutOfRange])
            #expect(repairs.first?.offset == 1)
        }
    }

    @Test func invalidUTF8IsRepairedAndSaid() throws {
        let bytes: [UInt8] = Array(#"{"a":"x"#.utf8) + [0xFF] + Array(#"y","b":"\n"#.utf8) + [0xC3] + Array(#""}"#.utf8)
        #expect(throws: JSONReader.Failure.self) { try JSONReader.parse(bytes) }
        var repairs: [JSONReader.Repair] = []
        let value = try JSONReader.parse(bytes, repairs: &repairs)
        #expect(value == .object(["a": .string("x\u{FFFD}y"), "b": .string("\n\u{FFFD}")]))
        #expect(repairs.map(\.kind) == [.invalidUTF8, .invalidUTF8])
    }

    @Test func duplicateKeysKeepTheLastValue() throws {
        #expect(try JSONReader.parse(Array(#"{"a":1,"b":2,"a":3}"#.utf8)).jsonText == #"{"a":3,"b":2}"#)
    }

    @Test func deepNestingIsRefusedNotACrash() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONReader.Failure.self) { try JSONReader.parse(Array(deep.utf8)) }
    }
}

@Suite struct FieldsTests {
    /// Large enough to use the index, with every operation checked against a plain array of pairs.
    @Test func largeRecordsBehaveLikeSmallOnes() {
        var fields = Fields()
        var model: [(String, Value)] = []
        for round in 0..<3 {
            for number in 0..<40 {
                let name = "k\(number % 30)"
                let value = Value.int(Int64(round * 100 + number))
                fields[name] = value
                if let at = model.firstIndex(where: { $0.0 == name }) { model[at].1 = value } else { model.append((name, value)) }
            }
            fields["k\(round * 7)"] = nil
            model.removeAll { $0.0 == "k\(round * 7)" }
            fields.append("extra\(round)", .bool(true))
            model.append(("extra\(round)", .bool(true)))
        }
        #expect(fields.map(\.name) == model.map(\.0))
        #expect(fields.map(\.value) == model.map(\.1))
        for (name, value) in model { #expect(fields[name] == value) }
        #expect(fields["absent"] == nil)
        let rebuilt = Fields(model.map { Fields.Field(name: $0.0, value: $0.1) })
        #expect(rebuilt == fields)
        #expect(rebuilt.hashValue == fields.hashValue)
    }

    /// `rename`, `remove`, `set` and unchecked `append` (duplicate names) in a seeded random order, on records that
    /// grow past the index threshold and shrink below it, each checked against a plain array of pairs (where a
    /// rename is the rebuild remap used to do: drop every `newName`, give every `name` the first one's value).
    @Test func renameAndRemoveKeepTheIndexRight() {
        var fields = Fields()
        var model: [(String, Value)] = []
        var random = SeededGenerator(seed: 18)  // CrashStateTests's
        for step in 0..<2_000 {
            // Mostly growing in the first half, mostly shrinking in the second: crosses 16 fields both ways.
            let growing = (step / 250) % 2 == 0
            let name = "f\(Int.random(in: 0..<40, using: &random))"
            let value = Value.int(Int64(step))
            switch Int.random(in: 0..<10, using: &random) {
            case 0..<4 where growing, 0 where !growing:
                fields[name] = value
                if let at = model.firstIndex(where: { $0.0 == name }) { model[at].1 = value } else { model.append((name, value)) }
            case 4 where growing:
                fields.append(name, value)
                model.append((name, value))
            case 5..<7:
                let newName = "f\(Int.random(in: 0..<40, using: &random))"
                let renamed = fields.rename(name, to: newName)
                #expect(renamed == (name != newName && model.contains { $0.0 == name }))
                if renamed, let first = model.first(where: { $0.0 == name })?.1 {
                    model = model.compactMap { (field: (String, Value)) -> (String, Value)? in
                        field.0 == newName ? nil : field.0 == name ? (newName, first) : field
                    }
                }
            default:
                fields[name] = nil
                if let at = model.firstIndex(where: { $0.0 == name }) { model.remove(at: at) }
            }
            #expect(fields.map(\.name) == model.map(\.0))
            for probe in 0..<40 {
                #expect(fields["f\(probe)"] == model.first { $0.0 == "f\(probe)" }?.1, "step \(step), f\(probe)")
            }
        }
    }

    /// A rename changes the field where it stands: the same storage, no copy, the value kept, in a record small
    /// enough to scan and in one large enough to be indexed.
    @Test(arguments: [4, 40]) func renameIsInPlace(count: Int) {
        var fields = Fields()
        for number in 0..<count { fields.append("f\(number)", .int(Int64(number))) }
        let before = fields.storage.withUnsafeBufferPointer { $0.baseAddress }
        #expect(rename(&fields, "f1", "renamed"))
        let after = fields.storage.withUnsafeBufferPointer { $0.baseAddress }
        #expect(after == before)
        #expect(fields.map(\.name)[0..<3] == ["f0", "renamed", "f2"])
        #expect(fields["renamed"] == .int(1))
        #expect(fields["f1"] == nil)
        #expect(!rename(&fields, "f1", "other"))
        #expect(!rename(&fields, "f2", "f2"))
        // Onto an existing name: that field goes, the renamed one keeps its place.
        #expect(rename(&fields, "f0", "f2"))
        #expect(fields.map(\.name)[0..<2] == ["f2", "renamed"])
        #expect(fields["f2"] == .int(0))
        #expect(fields.count == count - 1)
        fields["renamed"] = nil
        #expect(fields["f3"] == .int(3))
        #expect(fields["f\(count - 1)"] == .int(Int64(count - 1)))
    }

    /// 90,000 keys: quadratic lookups took 18.7 s of CPU for this line (release build; many minutes in debug);
    /// linear takes a fraction of a second.
    @Test(.timeLimit(.minutes(1))) func buildingAHugeRecordIsLinear() throws {
        var line = Array("{".utf8)
        for number in 0..<90_000 {
            if number > 0 { line.append(UInt8(ascii: ",")) }
            line += Array("\"key\(number)\":\(number)".utf8)
        }
        line.append(UInt8(ascii: "}"))
        guard case .object(let fields) = try JSONReader.parse(line) else {
            Issue.record("not an object")
            return
        }
        #expect(fields.count == 90_000)
        #expect(fields["key89999"] == .int(89_999))
    }
}

/// `#expect` cannot call a mutating method on its own.
private func rename(_ fields: inout Fields, _ name: String, _ newName: String) -> Bool { fields.rename(name, to: newName) }
