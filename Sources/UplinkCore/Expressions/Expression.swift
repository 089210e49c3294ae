#if canImport(Glibc)
import Glibc
#endif

/// An expression of the edge stages (`filter`, `route`, `remap`, …), compiled once when the configuration is
/// loaded into a tree of closures: evaluating it walks no syntax tree, and a numeric condition allocates nothing
/// per record. docs/expressions.md describes the language.
///
/// Problems a configuration can have (syntax, unknown functions, argument counts, operands whose type can never
/// fit) are found by ``init(_:)``; what depends on a record (a string where a number was needed, a division by
/// zero) throws ``ExpressionEvaluationError`` from ``evaluate(_:)``, and the stage applies its `on_error`.
public struct Expression: Sendable {
    public typealias Evaluator = @Sendable (Fields) throws -> Value

    /// The expression as written.
    public var source: String { compiled.source }
    /// The types it can give, for checks such as "a condition must give true or false".
    var types: ExpressionTypes { compiled.types }
    /// What is valid but likely wrong, for `validate` to warn about: a `matches` pattern that repeats a group that
    /// itself repeats (`(a+)+`), whose records that almost match end at the step budget as errors.
    public var warnings: [ExpressionCompileError] { compiled.warnings }
    /// Everything behind one reference: a stage that copies its expressions per record (`remap` walking its
    /// operations) then pays one retain, not one per closure and string.
    private let compiled: Compiled

    private final class Compiled: Sendable {
        let source: String
        let types: ExpressionTypes
        let evaluator: Evaluator
        /// The typed form of the same expression, when it has one (one of the two, by the type it gives): tried
        /// first, and it hands the records it cannot answer exactly to `evaluator` (see ``ExpressionFastPath``). Kept
        /// as two optional closures, called in place: matching an enum for the closure copied it first (a reference
        /// count on its context per record).
        let fastTruth: ExpressionFastPath.TruthEvaluator?
        let fastNumber: ExpressionFastPath.NumberEvaluator?
        let constant: Value?
        let warnings: [ExpressionCompileError]

        init(_ source: String) throws(ExpressionCompileError) {
            self.source = source
            let syntax = try ExpressionParser.parse(source)
            let compiled = try ExpressionCompiler.compile(syntax)
            types = compiled.types
            evaluator = compiled.evaluate
            constant = compiled.constant
            switch ExpressionFastPath.compile(syntax) {
            case .truth(let fast)?: (fastTruth, fastNumber) = (fast, nil)
            case .number(let fast)?: (fastTruth, fastNumber) = (nil, fast)
            case nil: (fastTruth, fastNumber) = (nil, nil)
            }
            warnings = Expression.backtrackingPatterns(in: syntax)
        }
    }

    public init(_ source: String) throws(ExpressionCompileError) {
        compiled = try Compiled(source)
    }

    /// The value of an expression that is a literal (`"plant-4"`, `42`), the same for every record; nil otherwise.
    public var constant: Value? { compiled.constant }

    fileprivate static func backtrackingPatterns(in syntax: ExpressionSyntax) -> [ExpressionCompileError] {
        switch syntax {
        case .literal, .path: return []
        case .unary(_, let operand, _): return backtrackingPatterns(in: operand)
        case .binary(_, let left, let right, _): return backtrackingPatterns(in: left) + backtrackingPatterns(in: right)
        case .call(let name, let arguments, _):
            var found = arguments.flatMap(backtrackingPatterns(in:))
            if name == "matches", arguments.count == 2, case .literal(.string(let pattern), let offset) = arguments[1],
                BoundedRegex.hasNestedQuantifier(pattern)
            {
                found.append(
                    ExpressionCompileError(
                        "matches' regex repeats a group that itself repeats, like (a+)+: on a value that almost matches it backtracks exponentially; such a value is given up after \(BoundedRegex.defaultMaxSteps) steps and is an error on its record",
                        at: offset))
            }
            return found
        }
    }

    /// Parses `source` as a condition: like ``init(_:)``, and refuses one that can never give true or false.
    public init(condition source: String) throws(ExpressionCompileError) {
        try self.init(source)
        guard types.contains(.bool) else {
            throw ExpressionCompileError("a condition must give true or false, but this gives \(types.description)", at: 0)
        }
    }

    /// The expression's value for a record's fields.
    public func evaluate(_ fields: Fields) throws -> Value {
        switch compiled.fastNumber?(fields) {
        case .int(let number)?: return .int(number)
        case .double(let number)?: return .double(number)
        case .null?, .fallback?, nil: break
        }
        switch compiled.fastTruth?(fields) {
        case .isTrue?: return .bool(true)
        case .isFalse?: return .bool(false)
        case .fallback?, nil: break
        }
        return try compiled.evaluator(fields)
    }

    /// The value by the general closures alone, without the fast path: what the fast path is checked against.
    func evaluateGenerally(_ fields: Fields) throws -> Value {
        try compiled.evaluator(fields)
    }

    /// Whether the expression has a fast path, for tests that check one is taken.
    var hasFastPath: Bool { compiled.fastTruth != nil || compiled.fastNumber != nil }

    /// Whether a record's fields satisfy the condition. A value that is not true or false is an error: a missing
    /// field is not silently taken for false (write `.flag ?? false` for that).
    public func test(_ fields: Fields) throws -> Bool {
        switch compiled.fastTruth?(fields) {
        case .isTrue?: return true
        case .isFalse?: return false
        case .fallback?, nil: break
        }
        switch try compiled.evaluator(fields) {
        case .bool(let flag): return flag
        case let other:
            throw ExpressionEvaluationError("the condition gave \(ExpressionCompiler.describe(other)), not true or false")
        }
    }

    /// The fields an expression sees for a message: `.topic` (null for the sink's default topic) and, when the
    /// body is one JSON object, its fields (a `topic` field of the body gives way to the message's topic).
    public static func fields(of message: Message) -> Fields {
        var fields = Fields()
        if message.body.first == UInt8(ascii: "{"), case .object(let object)? = try? JSONReader.parse(message.body) {
            fields = object
        }
        fields["topic"] = message.topic.map(Value.string) ?? .null
        return fields
    }
}

/// Why an expression could not be evaluated for one record; the stage's `on_error` decides what happens to it.
public struct ExpressionEvaluationError: Error, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// The set of types an expression can give, known at compile time.
struct ExpressionTypes: OptionSet, Sendable, CustomStringConvertible {
    let rawValue: UInt8

    static let null = ExpressionTypes(rawValue: 1)
    static let bool = ExpressionTypes(rawValue: 2)
    static let int = ExpressionTypes(rawValue: 4)
    static let float = ExpressionTypes(rawValue: 8)
    static let string = ExpressionTypes(rawValue: 16)
    static let array = ExpressionTypes(rawValue: 32)
    static let object = ExpressionTypes(rawValue: 64)
    static let number: ExpressionTypes = [.int, .float]
    static let any: ExpressionTypes = [.null, .bool, .int, .float, .string, .array, .object]

    var description: String {
        let names: [(ExpressionTypes, String)] = [
            (.null, "null"), (.bool, "a bool"), (.int, "an int"), (.float, "a float"), (.string, "a string"),
            (.array, "an array"), (.object, "an object"),
        ]
        let present = names.filter { contains($0.0) }.map(\.1)
        if present.count <= 1 { return present.first ?? "nothing" }
        return present.dropLast().joined(separator: ", ") + " or " + present.last!
    }

    static func of(_ value: Value) -> ExpressionTypes {
        switch value {
        case .null: return .null
        case .bool: return .bool
        case .int: return .int
        case .double: return .float
        case .string: return .string
        case .array: return .array
        case .object: return .object
        }
    }
}

/// Turns syntax into closures, checking operand types that are known without a record.
enum ExpressionCompiler {
    struct Compiled {
        var evaluate: Expression.Evaluator
        var types: ExpressionTypes
        /// Set for a literal, so functions can check constant arguments (a regex) at load.
        var constant: Value?
    }

    static func compile(_ syntax: ExpressionSyntax) throws(ExpressionCompileError) -> Compiled {
        switch syntax {
        case .literal(let value, _):
            return Compiled(evaluate: { _ in value }, types: .of(value), constant: value)
        case .path(let names, _):
            return Compiled(evaluate: path(names), types: .any, constant: nil)
        case .unary(let op, let operandSyntax, _):
            let operand = try compile(operandSyntax)
            let evaluate = operand.evaluate
            switch op {
            case .not:
                try require(operand, in: .bool, for: "'!'", syntax: operandSyntax)
                return Compiled(
                    evaluate: { fields in
                        let value = try evaluate(fields)
                        guard case .bool(let flag) = value else {
                            throw ExpressionEvaluationError("'!' needs true or false, got \(describe(value))")
                        }
                        return .bool(!flag)
                    }, types: .bool, constant: nil)
            case .negate:
                try require(operand, in: .number, for: "'-'", syntax: operandSyntax)
                return Compiled(
                    evaluate: { fields in
                        switch try evaluate(fields) {
                        case .int(let number):
                            guard number != .min else { throw ExpressionEvaluationError("integer overflow in '-'") }
                            return .int(-number)
                        case .double(let number): return .double(-number)
                        case let other: throw ExpressionEvaluationError("'-' needs a number, got \(describe(other))")
                        }
                    }, types: operand.types.intersection(.number), constant: nil)
            }
        case .binary(let op, let leftSyntax, let rightSyntax, _):
            return try binary(op, leftSyntax, rightSyntax)
        case .call(let name, let arguments, let offset):
            return try ExpressionFunctions.compile(name, arguments, offset: offset)
        }
    }

    /// Refuses an operand whose possible types never meet `allowed` (a string literal in arithmetic).
    static func require(
        _ operand: Compiled, in allowed: ExpressionTypes, for what: String, syntax: ExpressionSyntax
    ) throws(ExpressionCompileError) {
        guard operand.types.isDisjoint(with: allowed) else { return }
        throw ExpressionCompileError(
            "\(what) needs \(allowed.description), but \(syntax.shortText) is \(operand.types.description)", at: syntax.offset)
    }

    static func path(_ names: [String]) -> Expression.Evaluator {
        if names.count == 1 {
            let name = names[0]
            return { fields in fields[name] ?? .null }
        }
        return { fields in lookup(names, in: fields) ?? .null }
    }

    /// The value at `names`, nil when a field along the way is missing or not an object.
    static func lookup(_ names: [String], in fields: Fields) -> Value? {
        guard var value = fields[names[0]] else { return nil }
        for name in names.dropFirst() {
            guard case .object(let inner) = value, let next = inner[name] else { return nil }
            value = next
        }
        return value
    }

    private static func binary(
        _ op: BinaryOperator, _ leftSyntax: ExpressionSyntax, _ rightSyntax: ExpressionSyntax
    ) throws(ExpressionCompileError) -> Compiled {
        let left = try compile(leftSyntax)
        let right = try compile(rightSyntax)
        let l = left.evaluate
        let r = right.evaluate
        switch op {
        case .and, .or:
            try require(left, in: .bool, for: "'\(op.rawValue)'", syntax: leftSyntax)
            try require(right, in: .bool, for: "'\(op.rawValue)'", syntax: rightSyntax)
            let isAnd = op == .and
            return Compiled(
                evaluate: { fields in
                    let leftValue = try l(fields)
                    guard case .bool(let first) = leftValue else {
                        throw ExpressionEvaluationError("'\(op.rawValue)' needs true or false, got \(describe(leftValue))")
                    }
                    // Short-circuit: the right side is not evaluated when the left decides.
                    if first != isAnd { return .bool(first) }
                    let rightValue = try r(fields)
                    guard case .bool(let second) = rightValue else {
                        throw ExpressionEvaluationError("'\(op.rawValue)' needs true or false, got \(describe(rightValue))")
                    }
                    return .bool(second)
                }, types: .bool, constant: nil)
        case .coalesce:
            return Compiled(
                evaluate: { fields in
                    let value = try l(fields)
                    if case .null = value { return try r(fields) }
                    return value
                }, types: left.types.subtracting(.null).union(right.types), constant: nil)
        case .equal, .notEqual:
            let negate = op == .notEqual
            return Compiled(
                evaluate: { fields in .bool(equal(try l(fields), try r(fields)) != negate) }, types: .bool, constant: nil)
        case .less, .lessOrEqual, .greater, .greaterOrEqual:
            let comparable: ExpressionTypes = [.int, .float, .string]
            try require(left, in: comparable, for: "'\(op.rawValue)'", syntax: leftSyntax)
            try require(right, in: comparable, for: "'\(op.rawValue)'", syntax: rightSyntax)
            if left.types.isSubset(of: .number) && right.types.isSubset(of: .string)
                || left.types.isSubset(of: .string) && right.types.isSubset(of: .number)
            {
                throw ExpressionCompileError(
                    "'\(op.rawValue)' compares numbers with numbers or strings with strings, not \(left.types.description) with \(right.types.description)",
                    at: rightSyntax.offset)
            }
            return Compiled(
                evaluate: { fields in
                    let order = try compare(try l(fields), try r(fields), op)
                    switch op {
                    case .less: return .bool(order < 0)
                    case .lessOrEqual: return .bool(order <= 0)
                    case .greater: return .bool(order > 0)
                    default: return .bool(order >= 0)
                    }
                }, types: .bool, constant: nil)
        case .add, .subtract, .multiply, .divide, .remainder:
            let allowed: ExpressionTypes = op == .add ? [.int, .float, .string] : .number
            try require(left, in: allowed, for: "'\(op.rawValue)'", syntax: leftSyntax)
            try require(right, in: allowed, for: "'\(op.rawValue)'", syntax: rightSyntax)
            if left.types.isSubset(of: .number) && right.types.isSubset(of: .string)
                || left.types.isSubset(of: .string) && right.types.isSubset(of: .number)
            {
                throw ExpressionCompileError(
                    "'+' adds two numbers or joins two strings, not \(left.types.description) and \(right.types.description) (convert one with to_string or to_float)",
                    at: rightSyntax.offset)
            }
            var types: ExpressionTypes
            switch op {
            case .divide: types = .float
            case .add:
                types = left.types.intersection(allowed).union(right.types.intersection(allowed))
                if types.contains(.float) || types.contains(.int) { types.insert(.float) }
            default:
                types = left.types.intersection(.number).union(right.types.intersection(.number))
                if types.contains(.float) { types.insert(.float) }
            }
            return Compiled(evaluate: { fields in try arithmetic(op, try l(fields), try r(fields)) }, types: types, constant: nil)
        }
    }

    /// `==`: numbers compare by value whatever their kind (1 == 1.0); other values only equal their own type.
    static func equal(_ left: Value, _ right: Value) -> Bool {
        switch (left, right) {
        case (.int(let a), .int(let b)): return a == b
        case (.double(let a), .double(let b)): return a == b
        case (.int(let a), .double(let b)): return Double(a) == b
        case (.double(let a), .int(let b)): return a == Double(b)
        case (.string(let a), .string(let b)): return a == b
        case (.bool(let a), .bool(let b)): return a == b
        case (.null, .null): return true
        default: return left == right
        }
    }

    /// The order of two numbers or two strings (-1, 0, 1); anything else is an error.
    static func compare(_ left: Value, _ right: Value, _ op: BinaryOperator) throws -> Int {
        switch (left, right) {
        case (.int(let a), .int(let b)): return a < b ? -1 : (a == b ? 0 : 1)
        case (.double(let a), .double(let b)): return try order(a, b, op)
        case (.int(let a), .double(let b)): return try order(Double(a), b, op)
        case (.double(let a), .int(let b)): return try order(a, Double(b), op)
        case (.string(let a), .string(let b)): return a < b ? -1 : (a == b ? 0 : 1)
        default:
            throw ExpressionEvaluationError("'\(op.rawValue)' cannot compare \(describe(left)) with \(describe(right))")
        }
    }

    private static func order(_ a: Double, _ b: Double, _ op: BinaryOperator) throws -> Int {
        if a.isNaN || b.isNaN { throw ExpressionEvaluationError("'\(op.rawValue)' cannot compare NaN") }
        return a < b ? -1 : (a == b ? 0 : 1)
    }

    static func arithmetic(_ op: BinaryOperator, _ left: Value, _ right: Value) throws -> Value {
        switch (left, right) {
        case (.int(let a), .int(let b)):
            let result: (Int64, Bool)
            switch op {
            case .add: result = a.addingReportingOverflow(b)
            case .subtract: result = a.subtractingReportingOverflow(b)
            case .multiply: result = a.multipliedReportingOverflow(by: b)
            case .divide:
                guard b != 0 else { throw ExpressionEvaluationError("division by zero") }
                return .double(Double(a) / Double(b))
            default:
                guard b != 0 else { throw ExpressionEvaluationError("remainder of a division by zero") }
                result = a.remainderReportingOverflow(dividingBy: b)
            }
            guard !result.1 else { throw ExpressionEvaluationError("integer overflow in '\(op.rawValue)'") }
            return .int(result.0)
        case (.string(let a), .string(let b)) where op == .add:
            return .string(a + b)
        default:
            guard let a = number(left), let b = number(right) else {
                throw ExpressionEvaluationError(
                    "'\(op.rawValue)' needs \(op == .add ? "two numbers or two strings" : "numbers"), got \(describe(left)) and \(describe(right))")
            }
            switch op {
            case .add: return .double(a + b)
            case .subtract: return .double(a - b)
            case .multiply: return .double(a * b)
            case .divide:
                guard b != 0 else { throw ExpressionEvaluationError("division by zero") }
                return .double(a / b)
            default:
                guard b != 0 else { throw ExpressionEvaluationError("remainder of a division by zero") }
                return .double(fmod(a, b))
            }
        }
    }

    @inline(__always)
    static func number(_ value: Value) -> Double? {
        switch value {
        case .int(let number): return Double(number)
        case .double(let number): return number
        default: return nil
        }
    }

    /// A value for an error message: its type and a bounded excerpt (`string "abc"`, `null`).
    static func describe(_ value: Value) -> String {
        switch value {
        case .null: return "null (a missing field?)"
        case .array, .object: return value.typeName
        default: return "\(value.typeName) \(String(value.jsonText.prefix(40)))"
        }
    }
}
