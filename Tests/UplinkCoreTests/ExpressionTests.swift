#if canImport(Glibc)
import Glibc
#endif
import Testing
import UplinkCore
import UplinkYAML

/// The expression language: grammar, precedence, types, every function, and every error with its location.
@Suite struct ExpressionTests {
    let sample: Fields = [
        "temp": .double(21.5),
        "count": .int(7),
        "level": .string("alarm"),
        "host": .string("PLC-12.plant"),
        "ok": .bool(true),
        "nothing": .null,
        "tags": .array([.string("a"), .int(2)]),
        "meta": .object(["host": .string("edge-1"), "odd name": .int(3)]),
        "odd name": .string("yes"),
    ]

    func value(_ source: String, _ fields: Fields? = nil) throws -> Value {
        try Expression(source).evaluate(fields ?? sample)
    }

    func compileError(_ source: String) -> ExpressionCompileError? {
        do throws(ExpressionCompileError) {
            _ = try Expression(source)
            return nil
        } catch {
            return error
        }
    }

    func runtimeError(_ source: String, _ fields: Fields? = nil) -> String? {
        do {
            _ = try Expression(source).evaluate(fields ?? sample)
            return nil
        } catch let error as ExpressionEvaluationError {
            return error.message
        } catch {
            return "unexpected \(error)"
        }
    }

    // MARK: Grammar

    @Test func literalsAndPaths() throws {
        #expect(try value("42") == .int(42))
        #expect(try value("1_000") == .int(1000))
        #expect(try value("-1.5") == .double(-1.5))
        #expect(try value("2.5e2") == .double(250))
        #expect(try value("\"a\\\"b\\n\"") == .string("a\"b\n"))
        #expect(try value("true") == .bool(true))
        #expect(try value("null") == .null)
        #expect(try value(".temp") == .double(21.5))
        #expect(try value(".meta.host") == .string("edge-1"))
        #expect(try value(".\"odd name\"") == .string("yes"))
        #expect(try value(".meta.\"odd name\"") == .int(3))
        #expect(try value(".missing") == .null)
        #expect(try value(".meta.missing.deeper") == .null)
        #expect(try value(".level.inner") == .null)
    }

    @Test func precedenceFollowsSwift() throws {
        #expect(try value("1 + 2 * 3") == .int(7))
        #expect(try value("(1 + 2) * 3") == .int(9))
        #expect(try value("10 - 4 - 3") == .int(3))
        #expect(try value("7 % 4 * 2") == .int(6))
        #expect(try value("-2 * 3") == .int(-6))
        #expect(try value("- .count + 1") == .int(-6))
        #expect(try value("1 < 2 && 3 > 2 || false") == .bool(true))
        #expect(try value("false && false || true") == .bool(true))
        #expect(try value("!false && false") == .bool(false))
        #expect(try value(".missing ?? 1 + 1") == .int(2))
        #expect(try value(".missing ?? .nothing ?? 3") == .int(3))
        #expect(try value(".missing ?? 0 > 5") == .bool(false))
        #expect(try value(".temp * 9 / 5 + 32") == .double(70.7))
    }

    @Test func arithmeticTypes() throws {
        #expect(try value("7 / 2") == .double(3.5))
        #expect(try value("6 / 3") == .double(2))
        #expect(try value("7 % 3") == .int(1))
        #expect(try value("7.5 % 2") == .double(1.5))
        #expect(try value(".count + 0.5") == .double(7.5))
        #expect(try value("\"a\" + \"b\"") == .string("ab"))
    }

    @Test func comparisonAndEquality() throws {
        #expect(try value("1 == 1.0") == .bool(true))
        #expect(try value("\"1\" == 1") == .bool(false))
        #expect(try value(".missing == null") == .bool(true))
        #expect(try value(".level != \"ok\"") == .bool(true))
        #expect(try value("\"abc\" < \"abd\"") == .bool(true))
        #expect(try value(".temp >= 21.5 && .temp <= 21.5") == .bool(true))
        #expect(try value(".count > 6.9") == .bool(true))
        #expect(try value(".tags == .tags") == .bool(true))
    }

    @Test func logicShortCircuits() throws {
        // The right side would be a runtime error: it must not be evaluated.
        #expect(try value("false && 1 / 0 > 1") == .bool(false))
        #expect(try value("true || .level > 1") == .bool(true))
        #expect(try value("exists(.ok) && .ok") == .bool(true))
    }

    // MARK: Functions

    @Test func everyFunction() throws {
        #expect(try value("exists(.temp)") == .bool(true))
        #expect(try value("exists(.nothing)") == .bool(true))
        #expect(try value("exists(.meta.host)") == .bool(true))
        #expect(try value("exists(.missing)") == .bool(false))
        #expect(try value("to_int(\"42\")") == .int(42))
        #expect(try value("to_int(\" 4.9 \")") == .int(4))
        #expect(try value("to_int(.temp)") == .int(21))
        #expect(try value("to_int(true)") == .int(1))
        #expect(try value("to_float(.count)") == .double(7))
        #expect(try value("to_float(\"2.5\")") == .double(2.5))
        #expect(try value("to_string(.count)") == .string("7"))
        #expect(try value("to_string(.level)") == .string("alarm"))
        #expect(try value("to_string(.ok)") == .string("true"))
        #expect(try value("to_string(.tags)") == .string("[\"a\",2]"))
        #expect(try value("round(2.345, 2)") == .double(2.35))
        #expect(try value("round(2.5)") == .double(3))
        #expect(try value("round(-2.5)") == .double(-3))
        #expect(try value("round(7, 1)") == .int(7))
        // Scaled by a table of powers of ten, it gives what scaling by pow(10, digits) gives, for every digits.
        for digits in 0...15 {
            let number = 1234.56789012345
            let scale = pow(10, Double(digits))
            let expected = (number * scale).rounded(.toNearestOrAwayFromZero) / scale
            #expect(try value("round(\(number), \(digits))") == .double(expected))
        }
        #expect(try value("abs(-3)") == .int(3))
        #expect(try value("abs(-3.5)") == .double(3.5))
        #expect(try value("min(3, 1.5, 2)") == .double(1.5))
        #expect(try value("max(3, 1.5, .count)") == .int(7))
        #expect(try value("min(4)") == .int(4))
        #expect(try value("lower(.host)") == .string("plc-12.plant"))
        #expect(try value("upper(.level)") == .string("ALARM"))
        #expect(try value("contains(.host, \"12\")") == .bool(true))
        #expect(try value("contains(.tags, 2.0)") == .bool(true))
        #expect(try value("contains(.tags, \"b\")") == .bool(false))
        #expect(try value("starts_with(.host, \"PLC\")") == .bool(true))
        #expect(try value("ends_with(.host, \".plant\")") == .bool(true))
        #expect(try value("matches(.host, \"^PLC-[0-9]+\\\\.\")") == .bool(true))
        #expect(try value("matches(.host, \"(?i)^plc-\\\\d{2}\")") == .bool(true))
        #expect(try value("matches(.level, \"^(warn|alarm)$\")") == .bool(true))
        #expect(try value("matches(.level, \"^warn\")") == .bool(false))
        #expect(try value("len(.level)") == .int(5))
        #expect(try value("len(.tags)") == .int(2))
        #expect(try value("len(.meta)") == .int(2))
        guard case .int(let now) = try value("now()") else {
            Issue.record("now() is not an int")
            return
        }
        #expect(now > 1_700_000_000_000)
    }

    @Test func conditionsOnMessagesSeeTheTopicAndTheBody() throws {
        let message = Message(topic: "alarms/plant", body: Array(#"{"level":"alarm","temp":99,"topic":"ignored"}"#.utf8))
        let fields = Expression.fields(of: message)
        #expect(try Expression(condition: ".topic == \"alarms/plant\" && .temp > 90").test(fields))
        let plain = Expression.fields(of: Message(topic: nil, body: Array("not json".utf8)))
        #expect(try Expression(condition: ".topic == null && !exists(.temp)").test(plain))
    }

    // MARK: Errors found at load, with their offsets

    @Test func syntaxErrorsAreLocated() {
        let cases: [(String, Int, String)] = [
            (".temp > ", 8, "expected a value"),
            (".temp = 3", 6, "did you mean '=='"),
            (".a & .b", 3, "did you mean '&&'"),
            ("(.a + 1", 7, "expected ')'"),
            ("\"open", 0, "no closing"),
            (".temp 3", 6, "after a complete expression"),
            ("temp > 3", 0, "a field is written with a dot (.temp)"),
            ("'x' == .a", 0, "double quotes"),
            (".", 0, "expected a field name"),
            ("1 < 2 < 3", 6, "comparisons do not chain"),
            ("", 0, "empty"),
            (".x > .5", 5, "a digit before"),
            ("99999999999999999999", 0, "too large"),
        ]
        for (source, offset, text) in cases {
            let error = compileError(source)
            #expect(error?.offset == offset, "\(source): \(String(describing: error))")
            #expect(error?.message.contains(text) == true, "\(source): \(String(describing: error))")
        }
    }

    @Test func unknownFunctionsAndArgumentCounts() {
        let unknown = compileError(".a && contain(.host, \"x\")")
        #expect(unknown?.offset == 6)
        #expect(unknown?.message == "unknown function 'contain'; did you mean 'contains'?")
        let far = compileError("frobnicate(1)")
        #expect(far?.message.contains("functions: abs, contains") == true)
        let count = compileError("1 + round()")
        #expect(count?.offset == 4)
        #expect(count?.message == "round takes 1 or 2 arguments, got 0: round(number, digits)")
        #expect(compileError("now(1)")?.message == "now takes 0 arguments, got 1: now()")
        #expect(compileError("lower(.a, .b)")?.message == "lower takes 1 argument, got 2: lower(string)")
        #expect(compileError("min()")?.message == "min takes at least 1 arguments, got 0: min(number, …)")
        #expect(compileError("exists(1)")?.message.contains("exists takes a field") == true)
    }

    @Test func typeErrorsKnownAtLoad() {
        #expect(compileError(".a * \"x\"")?.offset == 5)
        #expect(compileError(".a * \"x\"")?.message == "'*' needs an int or a float, but \"x\" is a string")
        #expect(compileError("!3")?.message.contains("'!' needs a bool") == true)
        #expect(compileError("1 && .a")?.offset == 0)
        #expect(compileError(".a > \"x\" + 1") != nil)
        #expect(compileError("1 < \"a\"")?.message.contains("compares numbers with numbers") == true)
        #expect(compileError("lower(3)")?.message == "lower needs a string, but 3 is an int")
        #expect(compileError("matches(.a, .b)")?.message.contains("string literal") == true)
        #expect(compileError("round(1.5, 20)")?.message.contains("between 0 and 15") == true)
        let regex = compileError("matches(.a, \"a(b\")")
        // PCRE2 finds the missing ')' at the end of the pattern: after the 'b', column 16.
        #expect(regex?.message == "invalid regex: missing closing parenthesis")
        #expect(regex?.offset == 16)
        // Escapes in the expression's string are two characters for one of the pattern: `\\d(b` ends at 18.
        let escaped = compileError("matches(.a, \"\\\\d(b\")")
        #expect(escaped?.message == "invalid regex: missing closing parenthesis")
        #expect(escaped?.offset == 18)
        do throws(ExpressionCompileError) {
            _ = try Expression(condition: ".temp + 1")
            Issue.record("a numeric condition was accepted")
        } catch {
            #expect(error.message == "a condition must give true or false, but this gives an int, a float or a string")
        }
    }

    // MARK: Errors that depend on the record

    @Test func runtimeErrorsAreReportedNotCrashes() throws {
        #expect(runtimeError(".count / 0") == "division by zero")
        #expect(runtimeError(".temp % 0") == "remainder of a division by zero")
        #expect(runtimeError(".level * 2")?.contains("'*' needs numbers, got string \"alarm\"") == true)
        #expect(runtimeError(".missing > 3") == "'>' cannot compare null (a missing field?) with int 3")
        #expect(runtimeError("9223372036854775807 + .count") == "integer overflow in '+'")
        #expect(runtimeError("to_int(.level)") == "to_int: string \"alarm\" is not a number")
        #expect(runtimeError("lower(.count)") == "lower needs a string, got int 7")
        #expect(runtimeError(".ok && .level")?.contains("needs true or false") == true)
        do {
            _ = try Expression(condition: ".missing").test(sample)
            Issue.record("null passed as a condition")
        } catch {
            #expect("\(error)" == "the condition gave null (a missing field?), not true or false")
        }
        #expect(try Expression(condition: ".missing ?? false").test(sample) == false)
    }

    // MARK: The regex engine

    @Test func regexWorkIsBounded() throws {
        // Exponential for a plain backtracking engine: (a+)+$ against a run of a's and one b. The step budget
        // makes PCRE2 give up, and `matches` says so as an error on the record rather than a false answer.
        let input = String(repeating: "a", count: 20_000) + "b"
        let clock = ContinuousClock()
        let started = clock.now
        #expect(try BoundedRegex.Compiled("(a+)+$").firstMatch(in: input) == .overBudget)
        let fields: Fields = ["text": .string(input)]
        do {
            _ = try Expression(condition: "matches(.text, \"(a+)+$\")").test(fields)
            Issue.record("a match over its step budget gave an answer")
        } catch {
            #expect("\(error)".hasPrefix("matches: the regex needed more than 100000 steps"))
        }
        // Generous bound: 100,000 steps take milliseconds; unbounded backtracking would not end.
        #expect(clock.now - started < .seconds(5))
        func matches(_ pattern: String, _ text: String) throws -> Bool {
            try BoundedRegex.Compiled(pattern).firstMatch(in: text) == .matched
        }
        #expect(try matches("a{2,3}b", "xaab"))
        #expect(try matches("a{2,3}b", "xab") == false)
        #expect(try matches("^$", ""))
        #expect(try matches("[^0-9]", "123") == false)
        #expect(try matches("x|y|z", "__z"))
        // Perl syntax, as in the json transform's regex mode: lookaround and backreferences too.
        #expect(try matches("(?<=plc-)\\d+", "plc-42"))
        #expect(try matches("^(\\w)\\1$", "aa"))
        #expect(throws: BoundedRegex.Invalid.self) { try BoundedRegex.Compiled("*a") }
        #expect(throws: BoundedRegex.Invalid.self) { try BoundedRegex.Compiled("a{2,1}") }
        // PCRE2 reports UTF-8 bytes; the offset counts characters.
        do {
            _ = try BoundedRegex.Compiled("é(b.")
            Issue.record("an unclosed group compiled")
        } catch {
            #expect(error.reason == "missing closing parenthesis")
            #expect(error.offset == 4)
            #expect(error.description == "missing closing parenthesis at character 5")
        }
    }

    @Test func oneCompiledRegexIsSharedAcrossThreads() async throws {
        let regex = try BoundedRegex.Compiled(#"^plc-(?<n>\d+)$"#)
        let answers = await withTaskGroup(of: Int.self) { group in
            for task in 0..<8 {
                group.addTask {
                    var matched = 0
                    for index in 0..<2_000 where regex.firstMatch(in: "plc-\(task * 10_000 + index)") == .matched {
                        matched += 1
                    }
                    #expect(regex.firstMatch(in: "plc-x") == .noMatch)
                    return matched
                }
            }
            return await group.reduce(0, +)
        }
        #expect(answers == 16_000)
    }

    @Test func aBacktrackingPatternIsWarnedAboutAtItsPlace() {
        // Plain scalar at column 14; the pattern's opening quote is 12 characters into the expression.
        let (expression, diagnostics) = locateExpression("matches(.a, \"(a+)+$\")")
        #expect(expression != nil)
        #expect(diagnostics.count == 1)
        #expect(diagnostics.first?.hasPrefix("test.yaml:3:26: warning: 'condition': matches' regex repeats a group") == true)
        #expect(locateExpression("matches(.a, \"^(ab)+$\") && matches(.b, \"a+b+\")").1.isEmpty)
    }

    // MARK: Locations in the YAML file

    @Test func errorsPointInsideTheYAMLScalar() {
        func located(_ yamlValue: String) -> String? {
            let (_, diagnostics) = locateExpression(yamlValue)
            return diagnostics.first
        }
        // Plain: `condition: .temp > ` — the value starts at column 14.
        #expect(located(".a && contain(.b)")?.hasPrefix("test.yaml:3:20:") == true)
        // Single quotes: the quote is column 14, the expression's first character column 15; '' is one quote.
        #expect(located("'.a == \"it''s\" && contain(.b)'")?.hasPrefix("test.yaml:3:32:") == true)
        // Double quotes: \" is two characters in the file for one in the expression.
        #expect(located("\".a == \\\"x\\\" && contain(.b)\"")?.hasPrefix("test.yaml:3:30:") == true)
        #expect(located("'.a > '")?.contains("'condition': expected a value") == true)
    }

    private func locateExpression(_ yamlValue: String) -> (Expression?, [String]) {
        let yaml = "t:\n  x: 1\n  condition: \(yamlValue)\n"
        let diagnostics = DiagnosticCollector()
        guard let root = try? YAMLParser.parse(Array(yaml.utf8), file: "test.yaml"), let node = root["t"] else {
            return (nil, ["unparsable test YAML"])
        }
        let reader = ConfigReader(
            node: node, file: "test.yaml", options: [OptionSpec("condition", .string, "")], diagnostics: diagnostics)
        let expression = reader.expression("condition", condition: true)
        return (expression, diagnostics.diagnostics.map(\.description))
    }
}
