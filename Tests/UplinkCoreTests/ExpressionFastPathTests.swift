import Testing

@testable import UplinkCore
import UplinkTestSupport

/// The typed fast path (`ExpressionFastPath`) answers exactly what the general closures answer: the same value
/// (floats to the bit), or, where it hands a record back, the same error. Checked on chosen edge cases and on
/// seeded random expressions over seeded random records.
@Suite struct ExpressionFastPathTests {
    /// Evaluation's outcome, comparable: a value (floats by bit pattern, so NaN and -0.0 count) or an error's text.
    enum Outcome: Equatable, CustomStringConvertible {
        case value(String)
        case error(String)

        init(_ evaluate: () throws -> Value) {
            do {
                self = .value(Self.exact(try evaluate()))
            } catch let error as ExpressionEvaluationError {
                self = .error(error.message)
            } catch {
                self = .error("unexpected \(error)")
            }
        }

        static func exact(_ value: Value) -> String {
            switch value {
            case .double(let number): return "double \(number.bitPattern)"
            default: return "\(value.typeName) \(value.jsonText)"
            }
        }

        var description: String {
            switch self {
            case .value(let text): return text
            case .error(let text): return "error: \(text)"
            }
        }
    }

    /// Both paths' outcomes for `source` on `fields` (and, for a condition, both `test` outcomes).
    func agree(_ source: String, _ fields: Fields, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let expression = try Expression(source)
        let fast = Outcome { try expression.evaluate(fields) }
        let general = Outcome { try expression.evaluateGenerally(fields) }
        #expect(fast == general, "\(source) on \(fields.jsonText)", sourceLocation: sourceLocation)
        guard expression.types.contains(.bool) else { return }
        let fastTest = Outcome { .bool(try expression.test(fields)) }
        let generalTest = Outcome {
            let value = try expression.evaluateGenerally(fields)
            guard case .bool = value else {
                throw ExpressionEvaluationError("the condition gave \(ExpressionCompiler.describe(value)), not true or false")
            }
            return value
        }
        #expect(fastTest == generalTest, "test(\(source)) on \(fields.jsonText)", sourceLocation: sourceLocation)
    }

    let sensor: Fields = [
        "time": .int(1_700_000_000_000), "temperature": .double(21.5), "humidity": .int(40), "status": .string("ok"),
    ]

    @Test func theEdgeStagesExpressionsTakeTheFastPath() throws {
        for source in [
            ".temperature > -40 && .temperature < 125", "round(.temperature * 9 / 5 + 32, 1)",
            #".status == "ok" || starts_with(.status, "w")"#, ".flag ?? false", "exists(.x)", ".humidity + 1",
        ] {
            #expect(try Expression(source).hasFastPath, "\(source)")
        }
        // Nothing to gain: a lone field or literal, a string function.
        for source in [".temperature", "1", "lower(.status)", #".status + "x""#] {
            #expect(try !Expression(source).hasFastPath, "\(source)")
        }
        #expect(try Expression("round(.temperature * 9 / 5 + 32, 1)").evaluate(sensor) == .double(70.7))
        #expect(try Expression(".temperature > -40 && .temperature < 125").test(sensor))
    }

    @Test func edgeCasesGiveWhatTheGeneralPathGives() throws {
        let fields: Fields = [
            "i": .int(7), "big": .int(.max), "small": .int(.min), "zero": .int(0), "f": .double(2.5),
            "nan": .double(.nan), "inf": .double(.infinity), "negzero": .double(-0.0), "s": .string("warm"),
            "flag": .bool(true), "nothing": .null, "o": .object(["x": .int(3), "s": .string("ok")]),
        ]
        let cases = [
            // Integer overflow: an error, never a wrapped or float result.
            ".big + 1", ".small - 1", ".big * 2", "-.small", "abs(.small)", ".small % -1", ".big + .small",
            // int and float: kept apart, promoted when mixed; `/` always gives a float.
            ".i + 1", ".i + 1.0", ".i * .f", ".i / 2", ".i / .i", ".i % 4", ".f % 2", ".i % 2.5", "to_float(.i)",
            "round(.i, 2)", "round(.f)", "round(.f, .i)", "round(.f, .big)", "round(.inf, 3)", "round(.nan, 1)",
            // Division by zero, of both kinds and by -0.0.
            ".i / 0", ".i / .zero", ".f / 0.0", ".f / .negzero", ".i % 0", ".f % .zero",
            // Missing fields, null, and `??`.
            ".missing + 1", ".nothing * 2", ".missing ?? 4", ".nothing ?? 4.5", ".i ?? 4", ".s ?? 4", ".missing ?? .nothing ?? 1",
            ".missing > 3", ".missing == 3", ".nothing != 3", ".flag ?? false", ".missing ?? false", ".nothing ?? true",
            ".i ?? false", "exists(.missing)", "exists(.nothing)", "exists(.o.x)", "exists(.o.y)",
            // NaN: order comparisons are errors, equality is false.
            ".nan < 1", ".nan >= .nan", ".nan == .nan", ".nan != .nan", ".f > .nan", ".nan == 1",
            // Mixed comparisons and equality.
            ".i == 7.0", ".i < 7.5", ".f >= 2", ".i != .f", ".negzero == 0", ".big == 9223372036854775807",
            ".big > 9223372036854775806", ".big == 9223372036854775807.0",
            // Strings where numbers are needed, and string equality.
            ".s > 1", ".s + 1", "-.s", "abs(.s)", ".s == \"warm\"", "\"warm\" == .s", ".s != \"warm\"", ".i == \"7\"",
            ".missing == \"x\"", ".o.s == \"ok\"", "starts_with(.s, \"wa\")", "ends_with(.s, \"x\")", "starts_with(.i, \"7\")",
            // Logic: short circuits, non-bool operands.
            ".flag && .i > 3", "!.flag || .i / 0 > 1", ".flag && .s", "!.i", ".nothing || true", "false && .nan < 1",
            ".o.x > 2 && .o.x < 4", "-.o.x + .o.y",
            // Two comparisons of one field with constants (read once): ranges, either side, both kinds of numbers.
            ".i > -40 && .i < 125", "-40 < .f && .f <= 2.5", ".i >= 8 || .i < -2.5", ".i < 0 && .i > 1",
            ".f > 3 || .f > 2", ".nan > -1 && .nan < 1", ".i > 8 && .nan < 1", ".missing > 0 && .missing < 1",
            ".nothing >= 0 || .nothing < 0", ".s > 1 && .s < 2", ".big > -1 && .big <= 9223372036854775807",
            ".small < -9223372036854775807 || .small > 0", ".inf > -1.5 && .inf < 1e308", ".negzero >= -0.0 && .negzero <= 0",
            "-.i > -8 && .i > 6", ".i > 6 && -0.5 < .i",
        ]
        for source in cases { try agree(source, fields) }
        // A few whose answers are known, to be sure both paths are not wrong together.
        #expect(throws: ExpressionEvaluationError.self) { try Expression(".big + 1").evaluate(fields) }
        #expect(try Expression(".i / 2").evaluate(fields) == .double(3.5))
        #expect(try Expression(".i + 1").evaluate(fields) == .int(8))
        #expect(try Expression(".missing ?? 4").evaluate(fields) == .int(4))
        #expect(try Expression(".nan == .nan").evaluate(fields) == .bool(false))
        do {
            _ = try Expression(".nan < 1").test(fields)
            Issue.record("NaN compared")
        } catch {
            #expect("\(error)" == "'<' cannot compare NaN")
        }
    }

    @Test func aKelvinSignIsTheLetterKAsEverywhereElse() throws {
        // Names compare as Swift strings (canonical equivalence); the fast lookup's length check must not change that.
        let fields: Fields = ["\u{212A}": .int(1), "K2": .int(2)]
        #expect(try Expression(".K + 1").evaluate(fields) == .int(2))
        #expect(try Expression(".K + 1").evaluateGenerally(fields) == .int(2))
        #expect(try Expression(".\"\u{212A}2\" > 1").evaluate(fields) == .bool(true))
        #expect(fields.position(of: Fields.LookupName("K")) == 0)
        #expect(fields.position(of: Fields.LookupName("K2")) == 1)
        #expect(fields.position(of: Fields.LookupName("\u{212A}2")) == 1)
    }

    /// Seeded random expressions over seeded random records: every outcome of the fast path equals the general one.
    @Test(arguments: [18, 1818, 181_818] as [UInt64])
    func generatedExpressionsAgree(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        let records = (0..<24).map { _ in Self.record(&random) }
        var compiled = 0
        var fast = 0
        while compiled < 400 {
            let source = random.nextBool() ? Self.truth(&random, depth: 3) : Self.number(&random, depth: 3)
            guard let expression = try? Expression(source) else { continue }
            compiled += 1
            if expression.hasFastPath { fast += 1 }
            for fields in records { try agree(source, fields) }
        }
        // The generator's expressions are what the fast path is for: most of them must have one.
        #expect(fast > compiled / 2)
    }

    // MARK: The generator

    static let names = ["a", "b", "c", "s", "flag", "n"]

    static func record(_ random: inout SeededGenerator) -> Fields {
        var fields = Fields()
        for name in names.shuffled(using: &random) where random.next(100) < 85 {
            fields.append(name, value(&random))
        }
        if random.next(100) < 60 { fields.append("o", .object(["x": value(&random), "y": value(&random)])) }
        return fields
    }

    static func value(_ random: inout SeededGenerator) -> Value {
        let ints: [Int64] = [0, 1, -1, 2, 7, -40, 125, 1000, .max, .min, .max - 1, .min + 1, 3_037_000_500]
        let doubles: [Double] = [0, -0.0, 0.5, -2.25, 21.5, 1e300, -1e300, .nan, .infinity, -.infinity, 124.999, 1e-300]
        switch random.next(10) {
        case 0, 1, 2: return .int(ints[random.next(ints.count)])
        case 3, 4, 5: return .double(doubles[random.next(doubles.count)])
        case 6: return .string(["ok", "warn", "w", "", "7"][random.next(5)])
        case 7: return .bool(random.nextBool())
        case 8: return .null
        default: return .array([.int(1)])
        }
    }

    static func path(_ random: inout SeededGenerator) -> String {
        switch random.next(10) {
        case 0: return ".missing"
        case 1: return ".o.x"
        case 2: return ".o.y"
        default: return "." + names[random.next(names.count)]
        }
    }

    static func number(_ random: inout SeededGenerator, depth: Int) -> String {
        if depth == 0 || random.next(4) == 0 {
            switch random.next(6) {
            case 0: return ["0", "1", "2", "5", "9", "-40", "125", "9223372036854775807"][random.next(8)]
            case 1: return ["0.0", "1.5", "-2.5", "32.0", "1e308"][random.next(5)]
            default: return path(&random)
            }
        }
        let next = depth - 1
        switch random.next(9) {
        case 0: return "-" + number(&random, depth: next)
        case 1: return "round(\(number(&random, depth: next)))"
        case 2: return "round(\(number(&random, depth: next)), \(random.next(2) == 0 ? String(random.next(17)) : path(&random)))"
        case 3: return "abs(\(number(&random, depth: next)))"
        case 4: return "to_float(\(number(&random, depth: next)))"
        case 5: return "(\(path(&random)) ?? \(number(&random, depth: next)))"
        default:
            let op = ["+", "-", "*", "/", "%"][random.next(5)]
            return "(\(number(&random, depth: next)) \(op) \(number(&random, depth: next)))"
        }
    }

    static func truth(_ random: inout SeededGenerator, depth: Int) -> String {
        let next = depth - 1
        if depth == 0 || random.next(5) == 0 {
            switch random.next(7) {
            case 0: return ["true", "false"][random.next(2)]
            case 1: return "exists(\(path(&random)))"
            case 2: return "\(path(&random)) == \"\(["ok", "warn", "7", ""][random.next(4)])\""
            case 3: return "starts_with(\(path(&random)), \"w\")"
            case 4: return "(\(path(&random)) ?? \(random.nextBool()))"
            default: return path(&random)
            }
        }
        switch random.next(8) {
        case 0: return "!" + truth(&random, depth: next)
        case 1, 2:
            let op = ["&&", "||"][random.next(2)]
            return "(\(truth(&random, depth: next)) \(op) \(truth(&random, depth: next)))"
        default:
            let op = ["<", "<=", ">", ">=", "==", "!="][random.next(6)]
            return "(\(number(&random, depth: next)) \(op) \(number(&random, depth: next)))"
        }
    }
}

extension Fields {
    var jsonText: String {
        var buffer: [UInt8] = []
        appendJSON(to: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}
