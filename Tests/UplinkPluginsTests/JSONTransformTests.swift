import Foundation
import Testing
import UplinkCore
import UplinkPlugins
import UplinkTestSupport

@Suite struct JSONTransformTests {
    private func records(_ options: String, _ lines: [String]) async throws -> [String] {
        let transform = try builtTransform("t", in: pipeline(json: options), as: JSONTransform.self)
        return try await run(transform, rawEvents(lines)).events.map(\.json)
    }

    // MARK: Modes

    @Test func rawModeWrapsTheLineAndAddsRequestedFields() async throws {
        let found = try await records(
            "timestamp_field: time, source_field: src, path_field: dev, sequence_field: seq", ["hello", "world"])
        #expect(found == [
            #"{"message":"hello","time":1524448722000,"src":"in","dev":"/dev/ttyS1","seq":1}"#,
            #"{"message":"world","time":1524448722000,"src":"in","dev":"/dev/ttyS1","seq":2}"#,
        ])
    }

    @Test func hostFieldIsTheMachinesName() async throws {
        let found = try await records("host_field: host", ["x"])
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? ""
        #expect(found[0].hasPrefix(#"{"message":"x","host":""#))
        #expect(found[0].contains(host))
    }

    @Test func jsonModeParsesObjectsAndConvertsTypes() async throws {
        let found = try await records(
            "mode: json, types: { temp: float, hum: int, ok: bool, id: string }",
            [#"{"temp":"26.5","hum":57.0,"ok":"yes","id":7,"other":[1]}"#, #"{"temp":26,"hum":null}"#])
        #expect(found == [
            #"{"temp":26.5,"hum":57,"ok":true,"id":"7","other":[1]}"#,
            #"{"temp":26.0,"hum":null}"#,
        ])
    }

    @Test func csvModeNamesAndTypesColumns() async throws {
        let found = try await records(
            #"mode: csv, columns: [time:int, temperature:float, _, status, ok:bool], types: { status: string }"#,
            [
                "1524448722000,26.5,skipped,ok,true",
                #"1524448723000, -3 ,x,"a ""quoted"", value",0"#,
                "1,2,3,,off",
            ])
        #expect(found == [
            #"{"time":1524448722000,"temperature":26.5,"status":"ok","ok":true}"#,
            #"{"time":1524448723000,"temperature":-3.0,"status":"a \"quoted\", value","ok":false}"#,
            #"{"time":1,"temperature":2.0,"status":"","ok":false}"#,
        ])
    }

    @Test func csvTakesATabDelimiterAndTypesGivenSeparately() async throws {
        let found = try await records(#"mode: csv, delimiter: "\t", columns: [a, b], types: { b: int }"#, ["x y\t42"])
        #expect(found == [#"{"a":"x y","b":42}"#])
    }

    @Test func kvModeReadsPairsWithQuotedValues() async throws {
        let found = try await records(
            "mode: kv, types: { temp: float, n: int }",
            [#"temp=26.5  n=3 msg="disk \"sda\" full" empty= path=C:\x"#, "  "])
        #expect(found == [
            #"{"temp":26.5,"n":3,"msg":"disk \"sda\" full","empty":"","path":"C:\\x"}"#,
            "{}",
        ])
    }

    @Test func kvModeTakesOtherDelimiters() async throws {
        let found = try await records(#"mode: kv, pair_delimiter: ",", kv_delimiter: ":""#, [#"a: 1, b : two words ,c:"x,y""#])
        #expect(found == [#"{"a":"1","b":"two words","c":"x,y"}"#])
    }

    @Test func regexModeTakesNamedCaptures() async throws {
        let found = try await records(
            #"mode: regex, pattern: '^(?<level>[A-Z]+) t=(?<temp>[0-9.]+)(?: note=(?<note>\w+))?', types: { temp: float }"#,
            ["WARN t=81.5 rest", "INFO t=20 note=fine"])
        #expect(found == [#"{"level":"WARN","temp":81.5}"#, #"{"level":"INFO","temp":20.0,"note":"fine"}"#])
    }

    /// 22 a's and a b: Swift's Regex took 434 s of CPU on this line. The step budget gives it up at once.
    @Test(.timeLimit(.minutes(1))) func aPatternThatBacktracksExponentiallyGivesUpAndFollowsOnError() async throws {
        let transform = try builtTransform(
            "t", in: pipeline(json: #"mode: regex, pattern: '^(?<x>(a+)+)$', on_error: keep_raw"#), as: JSONTransform.self)
        let line = String(repeating: "a", count: 22) + "b"
        let result = try await run(transform, rawEvents([line, "aaaa", String(repeating: "a", count: 5000) + "b"]))
        let reason = "the pattern needed more than max_match_steps (100000) steps on this line: it backtracks too much (nested quantifiers such as (a+)+?)"
        #expect(result.events.map { $0.fields["error"] } == [.string(reason), nil, .string(reason)])
        #expect(result.events[1].json == #"{"x":"aaaa"}"#)
        #expect(result.metrics.errors == 2)
    }

    @Test func maxMatchStepsIsTheBudget() async throws {
        // Matching "key=value" takes a few steps: a budget of 1 refuses it, the default does not.
        let tight = try await run(
            try builtTransform("t", in: pipeline(json: #"mode: regex, pattern: '(?<k>\w+)=(?<v>\w+)', max_match_steps: 1"#), as: JSONTransform.self),
            rawEvents(["   key=value"]))
        #expect(tight.events.isEmpty)
        #expect(tight.metrics.errors == 1)
        let ample = try await run(
            try builtTransform("t", in: pipeline(json: #"mode: regex, pattern: '(?<k>\w+)=(?<v>\w+)'"#), as: JSONTransform.self),
            rawEvents(["   key=value"]))
        #expect(ample.events.map(\.json) == [#"{"k":"key","v":"value"}"#])
    }

    @Test(arguments: [
        ("(a+)+", true), ("^(?<x>(a+)+)$", true), ("(a*)*b", true), (#"(?:\w+\s?)+$"#, true), ("(a{2,})+", true),
        ("((ab)+c)*", true), ("([a-z]+)*", true),
        ("(a+)", false), ("(a+)?", false), ("(a+){3}", false), (#"(?<t>[0-9.]+) (?<u>\w+)"#, false), ("[(a+)]+", false),
        (#"\(a+\)+"#, false), ("(ab)+", false), ("(a|b)+", false),
    ])
    func nestedQuantifiersAreRecognised(_ pattern: String, _ nested: Bool) throws {
        #expect(try LinePattern("(?<n>\(pattern))").hasNestedQuantifier == nested, "\(pattern)")
    }

    @Test func validateWarnsAboutNestedQuantifiers() {
        let diagnostics = DiagnosticCollector()
        var config = PipelineConfig(files: ["test.yaml"])
        ConfigLoader(environment: [:]).load(
            bytes: Array(pipeline(json: #"mode: regex, pattern: '^(?<x>(a+)+)$'"#).utf8), file: "test.yaml", into: &config,
            diagnostics: diagnostics)
        _ = TopologyBuilder(registry: Builtins.registry).build(config, diagnostics: diagnostics)
        #expect(!diagnostics.hasErrors)
        let warnings = diagnostics.diagnostics.filter { $0.severity == .warning }.map(\.description)
        #expect(warnings.contains { $0.hasPrefix("test.yaml:4:") && $0.contains("repeats a group that itself repeats, like (a+)+") }, "\(warnings)")
    }

    // MARK: Error policies

    private let badLines = [
        "1,20.5",  // fine
        "2,warm",  // does not convert
        "3",  // does not parse: one column
        #""4,20"#,  // unterminated quote
    ]

    @Test func dropPolicyDropsAndCountsEveryBadLine() async throws {
        let transform = try builtTransform("t", in: pipeline(json: "mode: csv, columns: [n:int, t:float]"), as: JSONTransform.self)
        let result = try await run(transform, rawEvents(badLines))
        #expect(result.events.map(\.json) == [#"{"n":1,"t":20.5}"#])
        #expect(result.metrics.errors == 3)
        #expect(result.metrics.droppedEvents == 3)
    }

    @Test func keepRawKeepsTheTextOfWhatDidNotConvert() async throws {
        let transform = try builtTransform(
            "t", in: pipeline(json: "mode: csv, columns: [n:int, t:float], on_error: keep_raw"), as: JSONTransform.self)
        let result = try await run(transform, rawEvents(badLines))
        #expect(result.events.map(\.json) == [
            #"{"n":1,"t":20.5}"#,
            #"{"n":2,"t":"warm"}"#,
            #"{"message":"3","error":"expected 2 columns, got 1"}"#,
            #"{"message":"\"4,20","error":"unterminated quoted cell in column 1 (a quoted cell must close on its line: newlines inside quotes are not supported)"}"#,
        ])
        #expect(result.metrics.errors == 3)
        #expect(result.metrics.droppedEvents == 0)
    }

    @Test func deadLetterPolicyWritesTheLineAndTheReason() async throws {
        let directory = try temporaryDirectory()
        let transform = try builtTransform(
            "t", in: pipeline(json: "mode: csv, columns: [n:int, t:float], on_error: dead_letter"), as: JSONTransform.self)
        let result = try await run(transform, rawEvents(badLines), id: "wrap", dataDirectory: directory)
        #expect(result.events.count == 1)
        #expect(result.metrics.errors == 3)
        // Dead-lettered events leave the pipeline: counted as dropped, with their reason.
        #expect(result.metrics.droppedEvents == 3)
        #expect(result.metrics.droppedByReason[.deadLetter] == 3)
        let letters = try jsonLines(directory + "/wrap/dead-letters.jsonl")
        #expect(letters.map { $0["reason"] as? String } == [
            "field 't': 'warm' is not a float", "expected 2 columns, got 1",
            "unterminated quoted cell in column 1 (a quoted cell must close on its line: newlines inside quotes are not supported)",
        ])
        #expect(letters.allSatisfy { $0["component"] as? String == "wrap" && $0["topic"] is NSNull && $0["retcode"] is NSNull })
        let payloads = letters.compactMap { ($0["payload_base64"] as? String).flatMap { Data(base64Encoded: $0) } }
        #expect(payloads.map { String(decoding: $0, as: UTF8.self) } == Array(badLines[1...]))
    }

    /// RFC 4180 records, one per line as the sources frame them: what is on one line is read as the RFC says; a
    /// quoted newline (RFC 4180 allows it) splits a record over two lines, and both halves are refused with a
    /// reason rather than read as wrong records.
    @Test(arguments: [
        (#"a,b,c"#, #"{"x":"a","y":"b","z":"c"}"#),
        (#""a","b","c""#, #"{"x":"a","y":"b","z":"c"}"#),
        (#""a,1","b""2",c"#, #"{"x":"a,1","y":"b\"2","z":"c"}"#),
        (#",,"#, #"{"x":"","y":"","z":""}"#),
        (#""","""","x""#, #"{"x":"","y":"\"","z":"x"}"#),
        (#" a , b ,c"#, #"{"x":" a ","y":" b ","z":"c"}"#),
        (#""line1"#, "unterminated quoted cell in column 1 (a quoted cell must close on its line: newlines inside quotes are not supported)"),
        (#"line2",2,3"#, "a quote inside the unquoted cell in column 1 (quote the whole cell and double the quote; a line that continues a quoted newline is not supported)"),
        (#"a"b,c,d"#, "a quote inside the unquoted cell in column 1 (quote the whole cell and double the quote; a line that continues a quoted newline is not supported)"),
        (#""a"b,c,d"#, "unexpected character after the quoted cell in column 1"),
    ])
    func csvFollowsRFC4180WithinALine(_ line: String, _ expected: String) async throws {
        let transform = try builtTransform(
            "t", in: pipeline(json: "mode: csv, columns: [x, y, z], on_error: keep_raw"), as: JSONTransform.self)
        let result = try await run(transform, rawEvents([line]))
        let json = try #require(result.events.first?.json)
        if expected.hasPrefix("{") {
            #expect(json == expected)
            #expect(result.metrics.errors == 0)
        } else {
            #expect(result.events.first?.fields["error"] == .string(expected), "\(json)")
            #expect(result.metrics.errors == 1)
        }
    }

    @Test func aQuotedNewlineNeverYieldsAWrongRecord() async throws {
        // "line1\nline2",2,3 framed as two lines, as a source delivers it.
        let transform = try builtTransform("t", in: pipeline(json: "mode: csv, columns: [a, b, c]"), as: JSONTransform.self)
        let result = try await run(transform, rawEvents(["\"line1", "line2\",2,3", "4,5,6"]))
        #expect(result.events.map(\.json) == [#"{"a":"4","b":"5","c":"6"}"#])
        #expect(result.metrics.errors == 2)
    }

    @Test func numbersAJSONRecordCannotHoldFollowOnError() async throws {
        let lines = [
            #"{"id":1,"big":123456789012345678901234567890}"#, #"{"id":2,"huge":1e400}"#, #"{"id":3,"ok":-0.0}"#,
        ]
        let dropped = try await run(
            try builtTransform("t", in: pipeline(json: "mode: json"), as: JSONTransform.self), rawEvents(lines))
        #expect(dropped.events.map(\.json) == [#"{"id":3,"ok":-0.0}"#])
        #expect(dropped.metrics.errors == 2)
        let kept = try await run(
            try builtTransform("t", in: pipeline(json: "mode: json, on_error: keep_raw"), as: JSONTransform.self),
            rawEvents(lines))
        // The exact digits, as text: never a rounded double.
        #expect(kept.events.map(\.json) == [
            #"{"id":1,"big":"123456789012345678901234567890"}"#, #"{"id":2,"huge":"1e400"}"#, #"{"id":3,"ok":-0.0}"#,
        ])
        #expect(kept.metrics.errors == 2)
    }

    @Test func invalidUTF8InAJSONStringIsCountedAndFollowsOnError() async throws {
        let line = Array(#"{"a":"x"#.utf8) + [0xFF] + Array(#""}"#.utf8)
        let dropped = try await run(
            try builtTransform("t", in: pipeline(json: "mode: json"), as: JSONTransform.self), rawEvents(bytes: [line]))
        #expect(dropped.events.isEmpty)
        #expect(dropped.metrics.errors == 1)
        let kept = try await run(
            try builtTransform("t", in: pipeline(json: "mode: json, on_error: keep_raw"), as: JSONTransform.self),
            rawEvents(bytes: [line]))
        #expect(kept.events.map(\.json) == ["{\"a\":\"x\u{FFFD}\"}"])
        #expect(kept.metrics.errors == 1)
    }

    @Test func maxFieldsBoundsJSONAndKVLines() async throws {
        let wide = "{" + (0..<6).map { "\"k\($0)\":\($0)" }.joined(separator: ",") + "}"
        let json = try await run(
            try builtTransform("t", in: pipeline(json: "mode: json, max_fields: 5, on_error: keep_raw"), as: JSONTransform.self),
            rawEvents([wide, #"{"a":1}"#]))
        #expect(json.events.map { $0.fields["error"] } == [.string("the line has 6 fields, more than max_fields (5)"), nil])
        #expect(json.metrics.errors == 1)
        let kv = try await run(
            try builtTransform("t", in: pipeline(json: "mode: kv, max_fields: 2"), as: JSONTransform.self),
            rawEvents(["a=1 b=2 a=3", "a=1 b=2 c=3"]))
        #expect(kv.events.map(\.json) == [#"{"a":"3","b":"2"}"#])
        #expect(kv.metrics.errors == 1)
    }

    @Test(.timeLimit(.minutes(1))) func aLineWithNinetyThousandKeysIsLinear() async throws {
        let pairs = (0..<90_000).map { "k\($0)=\($0)" }.joined(separator: " ")
        let transform = try builtTransform("t", in: pipeline(json: "mode: kv, max_fields: 100000"), as: JSONTransform.self)
        let result = try await run(transform, rawEvents([pairs]))
        #expect(result.events.first?.fields.count == 90_000)
    }

    @Test func deadLetterPathOverridesTheDefault() async throws {
        let path = try temporaryDirectory() + "/rejects/json.jsonl"
        let transform = try builtTransform(
            "t", in: pipeline(json: "mode: json, on_error: dead_letter, dead_letter_path: \(path)"), as: JSONTransform.self)
        _ = try await run(transform, rawEvents(["[1]"]))
        #expect(try jsonLines(path).first?["reason"] as? String == "a line must be a JSON object, not array")
    }

    @Test func aChunkWhoseLinesWereAllRejectedIsAcknowledgedAsHandled() async throws {
        let counter = AckCounter()
        let transform = try builtTransform("t", in: pipeline(json: "mode: json"), as: JSONTransform.self)
        let result = try await run(transform, [
            EventChunk(rawEvents(["nope", "{"]), acknowledgements: Acknowledgements([counter.token()])),
            EventChunk(rawEvents(["{}"]), acknowledgements: Acknowledgements([counter.token()])),
        ])
        #expect(result.events.count == 1)
        #expect(counter.deliveredCount == 1, "the all-rejected chunk has its final answer")
        withExtendedLifetime(result) {}
    }

    // MARK: Escaping and Unicode

    @Test func outputIsValidJSONForAnyBytes() async throws {
        let modes = [
            "mode: raw", "mode: csv, columns: [a, b]", "mode: kv", "mode: json",
            #"mode: regex, pattern: '(?<all>.*)'"#,
        ]
        var generator = SeededGenerator(seed: 2024)
        let lines: [[UInt8]] = (0..<300).map { _ in
            let length = Int.random(in: 0..<40, using: &generator)
            return (0..<length).map { _ in
                // Mostly the bytes that break naive encoders: controls, quotes, backslashes, high bytes.
                let choices: [UInt8] = [0x00, 0x01, 0x1F, 0x22, 0x5C, 0x2C, 0x3D, 0x20, 0x7F, 0x80, 0xC3, 0xA9, 0xFF, 0xED, 0x61]
                return Bool.random(using: &generator) ? choices.randomElement(using: &generator)! : UInt8.random(in: 0...255, using: &generator)
            }
        }
        for options in modes {
            let transform = try builtTransform("t", in: pipeline(json: options + ", on_error: keep_raw"), as: JSONTransform.self)
            let result = try await run(transform, rawEvents(bytes: lines))
            for record in result.events {
                var bytes: [UInt8] = []
                record.appendText(to: &bytes)
                #expect((try? JSONSerialization.jsonObject(with: Data(bytes))) is [String: Any], "\(options): \(record.json)")
            }
        }
    }

    @Test func unicodeIsKeptAndControlCharactersAreEscaped() async throws {
        let found = try await records("mode: csv, columns: [name, note]", ["温度传感器,🚀 \u{01}\tok"])
        #expect(found == ["{\"name\":\"温度传感器\",\"note\":\"🚀 \\u0001\\tok\"}"])
        let transform = try builtTransform("t", in: pipeline(json: "mode: raw"), as: JSONTransform.self)
        let invalid = try await run(transform, rawEvents(bytes: [[0x61, 0xFF, 0xFE, 0x62, 0xE6, 0xB8]]))
        #expect(invalid.events.map(\.json) == ["{\"message\":\"a\u{FFFD}\u{FFFD}b\u{FFFD}\"}"])
    }

    // MARK: Configuration

    @Test(arguments: [
        ("mode: csv", "4:6: error: mode: csv needs 'columns'"),
        ("mode: csv, columns: [a:flot]", "unknown type 'flot' (int, float, bool, string); did you mean 'float'?"),
        ("mode: csv, columns: [a, a]", "'columns': 'a' is listed twice"),
        ("mode: csv, columns: [a], delimiter: ';;'", "'delimiter' must be one character"),
        ("mode: csv, columns: [a], types: { b: int }", "'types': 'b' is not one of the columns"),
        ("mode: csv, columns: [a:int], types: { a: float }", "'types': 'a' already has a type in 'columns'"),
        ("mode: raw, types: { a: int }", "'types' does not apply to mode: raw"),
        ("mode: json, columns: [a]", "'columns' is only used with mode: csv (mode is json)"),
        ("mode: kv, pattern: x", "'pattern' is only used with mode: regex (mode is kv)"),
        ("mode: kv, pair_delimiter: '=', kv_delimiter: '='", "'pair_delimiter' and 'kv_delimiter' must differ"),
        ("mode: regex", "mode: regex needs 'pattern'"),
        ("mode: regex, pattern: '(unclosed'", "'pattern' is not a valid regular expression"),
        ("mode: regex, pattern: '[0-9]+'", "'pattern' has no named capture"),
        ("mode: regex, pattern: '(?<a>x)', types: { b: int }", "'types': 'b' is not a named capture of 'pattern' (a)"),
        ("mode: json, types: { a: integer }", "unknown type 'integer'"),
        ("mode: json, dead_letter_path: /tmp/x", "'dead_letter_path' is not used: on_error is not dead_letter"),
        ("mode: json, on_error: dead_letter, dead_letter_keep: 500", "must be between 0 and 100"),
        ("mode: json, on_error: deadletter", "did you mean 'dead_letter'?"),
    ])
    func misconfigurationIsReportedWhereItIsWritten(_ options: String, _ expected: String) {
        let (_, errors) = buildPipeline(pipeline(json: options))
        #expect(errors.contains { $0.contains(expected) && $0.hasPrefix("test.yaml:4:") }, "\(errors)")
    }

    @Test func typeErrorsPointAtTheEntry() {
        let yaml = """
            sources:
              in: { type: stdin }
            transforms:
              t:
                type: json
                inputs: [in]
                mode: json
                types:
                  ok: int
                  bad: nubmer
            sinks:
              out: { type: stdout, inputs: [t] }
            """
        let (_, errors) = buildPipeline(yaml)
        #expect(errors == ["test.yaml:10:7: error: unknown type 'nubmer' (int, float, bool, string)"])
    }
}

@Suite struct FieldTypeFloatTests {
    /// Short decimals are parsed without strtod; the result must be the very double strtod gives.
    @Test func shortDecimalsParseExactlyAsStrtod() {
        var generator = SystemRandomNumberGenerator()
        var samples = ["0", "-0", "+5", "007.50", "26.5", "1.0", "0.1", "0.3", "123456789012345", "1234567890123456",
                       "9007199254740993", "99999999999999.9", "1e5", ".5", "5.", "-", "+", "1.2.3", "nan", "inf", "0x10",
                       "12a", "", " 3.25 "]
        for _ in 0..<5000 {
            let integer = String(UInt64.random(in: 0...999_999_999, using: &generator))
            let fraction = String(UInt64.random(in: 0...99_999_999, using: &generator))
            let sign = ["", "-", "+"].randomElement(using: &generator)!
            samples.append(sign + String(integer.prefix(Int.random(in: 1...9, using: &generator))) + "."
                + String(fraction.prefix(Int.random(in: 1...8, using: &generator))))
        }
        for text in samples {
            let expected: Value? = {
                let trimmed = text.trimmingCharacters(in: .whitespaces)
                guard !trimmed.isEmpty, let number = Double(trimmed), number.isFinite else { return nil }
                return .double(number)
            }()
            let converted = FieldType.float.convert(text: Array(text.utf8))
            #expect(converted == expected, "\(text)")
            if case .double(let a)? = converted, case .double(let b)? = expected {
                #expect(a.bitPattern == b.bitPattern, "\(text): sign of zero")
            }
        }
    }
}
