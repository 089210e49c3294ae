#if canImport(Glibc)
import Glibc
#endif

/// The functions of the expression language: each one's arity and argument types, checked at load, and its
/// compiled form.
enum ExpressionFunctions {
    struct Signature {
        var minimum: Int
        /// nil: any number of arguments from `minimum` on.
        var maximum: Int?
        var usage: String
    }

    static let signatures: [String: Signature] = [
        "exists": Signature(minimum: 1, maximum: 1, usage: "exists(.field)"),
        "to_int": Signature(minimum: 1, maximum: 1, usage: "to_int(value)"),
        "to_float": Signature(minimum: 1, maximum: 1, usage: "to_float(value)"),
        "to_string": Signature(minimum: 1, maximum: 1, usage: "to_string(value)"),
        "round": Signature(minimum: 1, maximum: 2, usage: "round(number, digits)"),
        "abs": Signature(minimum: 1, maximum: 1, usage: "abs(number)"),
        "min": Signature(minimum: 1, maximum: nil, usage: "min(number, …)"),
        "max": Signature(minimum: 1, maximum: nil, usage: "max(number, …)"),
        "lower": Signature(minimum: 1, maximum: 1, usage: "lower(string)"),
        "upper": Signature(minimum: 1, maximum: 1, usage: "upper(string)"),
        "contains": Signature(minimum: 2, maximum: 2, usage: "contains(string, part) or contains(array, value)"),
        "starts_with": Signature(minimum: 2, maximum: 2, usage: "starts_with(string, prefix)"),
        "ends_with": Signature(minimum: 2, maximum: 2, usage: "ends_with(string, suffix)"),
        "matches": Signature(minimum: 2, maximum: 2, usage: "matches(string, \"regex\")"),
        "len": Signature(minimum: 1, maximum: 1, usage: "len(string, array or object)"),
        "now": Signature(minimum: 0, maximum: 0, usage: "now()"),
    ]

    typealias Compiled = ExpressionCompiler.Compiled

    static func compile(_ name: String, _ syntax: [ExpressionSyntax], offset: Int) throws(ExpressionCompileError) -> Compiled {
        guard let signature = signatures[name] else {
            var message = "unknown function '\(name)'"
            if let hint = ValueParsing.suggestion(for: name, among: signatures.keys.sorted()) {
                message += "; did you mean '\(hint)'?"
            } else {
                message += " (functions: \(signatures.keys.sorted().joined(separator: ", ")))"
            }
            throw ExpressionCompileError(message, at: offset)
        }
        let count = syntax.count
        if count < signature.minimum || signature.maximum.map({ count > $0 }) == true {
            let expected: String
            if signature.maximum == nil {
                expected = "at least \(signature.minimum)"
            } else if signature.minimum == signature.maximum {
                expected = "\(signature.minimum)"
            } else {
                expected = "\(signature.minimum) or \(signature.maximum!)"
            }
            throw ExpressionCompileError(
                "\(name) takes \(expected) argument\(expected == "1" ? "" : "s"), got \(count): \(signature.usage)", at: offset)
        }
        if name == "exists" {
            guard case .path(let names, _) = syntax[0] else {
                throw ExpressionCompileError("exists takes a field, such as exists(.temp)", at: syntax[0].offset)
            }
            return Compiled(evaluate: { fields in .bool(ExpressionCompiler.lookup(names, in: fields) != nil) }, types: .bool)
        }
        var arguments: [Compiled] = []
        for argument in syntax { arguments.append(try ExpressionCompiler.compile(argument)) }
        func require(_ index: Int, _ allowed: ExpressionTypes) throws(ExpressionCompileError) {
            try ExpressionCompiler.require(arguments[index], in: allowed, for: name, syntax: syntax[index])
        }
        let first = arguments.first?.evaluate
        switch name {
        case "to_int":
            return Compiled(evaluate: { fields in try toInt(try first!(fields)) }, types: .int)
        case "to_float":
            return Compiled(evaluate: { fields in try toFloat(try first!(fields)) }, types: .float)
        case "to_string":
            return Compiled(evaluate: { fields in .string(toText(try first!(fields))) }, types: .string)
        case "round":
            try require(0, .number)
            if arguments.count == 2 {
                try require(1, .int)
                if case .int(let constant)? = arguments[1].constant, !(0...15).contains(constant) {
                    throw ExpressionCompileError("round's digits must be between 0 and 15, got \(constant)", at: syntax[1].offset)
                }
            }
            let zero: Expression.Evaluator = { _ in .int(0) }
            let digits = arguments.count == 2 ? arguments[1].evaluate : zero
            return Compiled(
                evaluate: { fields in try round(try first!(fields), digits: try digits(fields)) },
                types: arguments[0].types.intersection(.number))
        case "abs":
            try require(0, .number)
            return Compiled(
                evaluate: { fields in
                    switch try first!(fields) {
                    case .int(let number):
                        guard number != .min else { throw ExpressionEvaluationError("integer overflow in abs") }
                        return .int(Swift.abs(number))
                    case .double(let number): return .double(Swift.abs(number))
                    case let other: throw ExpressionEvaluationError("abs needs a number, got \(ExpressionCompiler.describe(other))")
                    }
                }, types: arguments[0].types.intersection(.number))
        case "min", "max":
            for index in arguments.indices { try require(index, .number) }
            let evaluators = arguments.map(\.evaluate)
            let isMin = name == "min"
            return Compiled(
                evaluate: { fields in try extreme(evaluators, fields, smallest: isMin, name: name) },
                types: arguments.reduce(into: ExpressionTypes()) { $0.formUnion($1.types.intersection(.number)) })
        case "lower", "upper":
            try require(0, .string)
            let isLower = name == "lower"
            return Compiled(
                evaluate: { fields in
                    let text = try string(try first!(fields), name)
                    return .string(isLower ? text.lowercased() : text.uppercased())
                }, types: .string)
        case "contains":
            try require(0, [.string, .array])
            let part = arguments[1].evaluate
            return Compiled(
                evaluate: { fields in
                    let whole = try first!(fields)
                    let value = try part(fields)
                    switch whole {
                    case .string(let text): return .bool(text.contains(try string(value, name)))
                    case .array(let items): return .bool(items.contains { ExpressionCompiler.equal($0, value) })
                    default:
                        throw ExpressionEvaluationError("contains needs a string or an array, got \(ExpressionCompiler.describe(whole))")
                    }
                }, types: .bool)
        case "starts_with", "ends_with":
            try require(0, .string)
            try require(1, .string)
            let affix = arguments[1].evaluate
            let isPrefix = name == "starts_with"
            return Compiled(
                evaluate: { fields in
                    let text = try string(try first!(fields), name)
                    let other = try string(try affix(fields), name)
                    return .bool(isPrefix ? text.hasPrefix(other) : text.hasSuffix(other))
                }, types: .bool)
        case "matches":
            try require(0, .string)
            guard case .string(let pattern)? = arguments[1].constant else {
                throw ExpressionCompileError("matches takes its regex as a string literal, such as matches(.host, \"^plc-[0-9]+$\")", at: syntax[1].offset)
            }
            // The shareable form: an expression's closure may run on any thread, each call with its own scratch.
            let regex: BoundedRegex.Compiled
            do {
                regex = try BoundedRegex.Compiled(pattern)
            } catch {
                // The string's opening quote, then the pattern up to the problem as written in the expression: a
                // quote or a backslash is written escaped, two characters (a newline, tab or return is taken as
                // written escaped too: as itself it is legal but unlikely).
                let written = pattern.unicodeScalars.prefix(error.offset).reduce(0) { width, scalar in
                    width + (["\"", "\\", "\n", "\t", "\r"].contains(scalar) ? 2 : 1)
                }
                throw ExpressionCompileError("invalid regex: \(error.reason)", at: syntax[1].offset + 1 + written)
            }
            return Compiled(
                evaluate: { fields in
                    switch regex.firstMatch(in: try string(try first!(fields), name)) {
                    case .matched: return .bool(true)
                    case .noMatch: return .bool(false)
                    case .overBudget:
                        // Neither true nor false: an error on this record, which the stage's on_error handles.
                        throw ExpressionEvaluationError(
                            "matches: the regex needed more than \(regex.maxSteps) steps on this value (it backtracks, like (a+)+ on a long run); simplify the pattern")
                    }
                }, types: .bool)
        case "len":
            try require(0, [.string, .array, .object])
            return Compiled(
                evaluate: { fields in
                    switch try first!(fields) {
                    case .string(let text): return .int(Int64(text.count))
                    case .array(let items): return .int(Int64(items.count))
                    case .object(let object): return .int(Int64(object.count))
                    case let other:
                        throw ExpressionEvaluationError("len needs a string, an array or an object, got \(ExpressionCompiler.describe(other))")
                    }
                }, types: .int)
        case "now":
            return Compiled(evaluate: { _ in .int(nowMilliseconds()) }, types: .int)
        default:
            preconditionFailure("function '\(name)' has a signature but no implementation")
        }
    }

    private static func string(_ value: Value, _ function: String) throws -> String {
        guard case .string(let text) = value else {
            throw ExpressionEvaluationError("\(function) needs a string, got \(ExpressionCompiler.describe(value))")
        }
        return text
    }

    static func toInt(_ value: Value) throws -> Value {
        switch value {
        case .int: return value
        case .double(let number):
            guard number.isFinite, number >= -9.2e18, number <= 9.2e18 else {
                throw ExpressionEvaluationError("to_int: \(number) does not fit an integer")
            }
            return .int(Int64(number))
        case .bool(let flag): return .int(flag ? 1 : 0)
        case .string(let text):
            let trimmed = text.trimmingSpaces
            if let number = Int64(trimmed) { return .int(number) }
            if let number = Double(trimmed) { return try toInt(.double(number)) }
            throw ExpressionEvaluationError("to_int: \(ExpressionCompiler.describe(value)) is not a number")
        default:
            throw ExpressionEvaluationError("to_int needs a number, a bool or a numeric string, got \(ExpressionCompiler.describe(value))")
        }
    }

    static func toFloat(_ value: Value) throws -> Value {
        switch value {
        case .int(let number): return .double(Double(number))
        case .double: return value
        case .bool(let flag): return .double(flag ? 1 : 0)
        case .string(let text):
            guard let number = Double(text.trimmingSpaces), number.isFinite else {
                throw ExpressionEvaluationError("to_float: \(ExpressionCompiler.describe(value)) is not a number")
            }
            return .double(number)
        default:
            throw ExpressionEvaluationError("to_float needs a number, a bool or a numeric string, got \(ExpressionCompiler.describe(value))")
        }
    }

    /// A string as it is; anything else as compact JSON (`21.5`, `true`, `null`, `[1,2]`).
    static func toText(_ value: Value) -> String {
        if case .string(let text) = value { return text }
        return value.jsonText
    }

    /// 10^0 … 10^15, each exact in a double: what `pow(10, places)` gives, without a `pow` call per record (it was
    /// a tenth of a `remap` computing `round(.t * 9 / 5 + 32, 1)`).
    static let powersOfTen: [Double] = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15]

    static func round(_ value: Value, digits: Value) throws -> Value {
        guard case .int(let places) = digits, (0...15).contains(places) else {
            throw ExpressionEvaluationError("round's digits must be an integer between 0 and 15, got \(ExpressionCompiler.describe(digits))")
        }
        switch value {
        case .int: return value
        case .double(let number): return .double(round(number, places: Int(places)))
        default:
            throw ExpressionEvaluationError("round needs a number, got \(ExpressionCompiler.describe(value))")
        }
    }

    /// `number` rounded to `places` (0…15) decimal places, halves away from zero; a non-finite number as it is.
    @inline(__always)
    static func round(_ number: Double, places: Int) -> Double {
        guard number.isFinite else { return number }
        let scale = powersOfTen[places]
        let scaled = (number * scale).rounded(.toNearestOrAwayFromZero) / scale
        // Scaling past the float's precision would lose digits instead of rounding them.
        return scaled.isFinite ? scaled : number
    }

    private static func extreme(
        _ evaluators: [Expression.Evaluator], _ fields: Fields, smallest: Bool, name: String
    ) throws -> Value {
        var best: Value = .null
        for evaluate in evaluators {
            let value = try evaluate(fields)
            guard ExpressionCompiler.number(value) != nil else {
                throw ExpressionEvaluationError("\(name) needs numbers, got \(ExpressionCompiler.describe(value))")
            }
            if case .null = best {
                best = value
                continue
            }
            let order = try ExpressionCompiler.compare(value, best, smallest ? .less : .greater)
            if smallest ? order < 0 : order > 0 { best = value }
        }
        return best
    }

    static func nowMilliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}

extension ExpressionCompiler.Compiled {
    init(evaluate: @escaping Expression.Evaluator, types: ExpressionTypes) {
        self.init(evaluate: evaluate, types: types, constant: nil)
    }
}
