#if canImport(Glibc)
import Glibc
#endif

/// A second, typed compilation of the expressions most records see (numeric conditions, arithmetic on number
/// fields, a field against a string literal): closures that return a plain number or truth value instead of a
/// ``Value``, read fields where they are (no copy, no retain of a payload), and dispatch on nothing generic.
///
/// It only ever answers what the general compilation (``ExpressionCompiler``) would answer. Whenever a record takes
/// it off its happy path (a field that is missing, null or not a number where one is needed, an integer overflow, a
/// division by zero, a NaN in an order comparison), it gives up with `.fallback` and the expression is evaluated
/// again by the general closures, which give the value or the exact error they always gave. Expressions have no
/// side effects, so evaluating one twice is only slower. Each fast closure mirrors one general rule (see
/// ``ExpressionCompiler/arithmetic(_:_:_:)``, ``ExpressionCompiler/compare(_:_:_:)``,
/// ``ExpressionCompiler/equal(_:_:)``); `ExpressionFastPathTests` checks them against each other on generated
/// expressions and records.
enum ExpressionFastPath {
    /// A number the fast path computed; `.null` for a missing or null field (only `??` takes it), `.fallback` for
    /// anything it does not handle.
    enum Number {
        case int(Int64)
        case double(Double)
        case null
        case fallback
    }

    enum Truth {
        case isFalse
        case isTrue
        case fallback

        @inline(__always) init(_ flag: Bool) { self = flag ? .isTrue : .isFalse }
    }

    typealias NumberEvaluator = @Sendable (Fields) -> Number
    typealias TruthEvaluator = @Sendable (Fields) -> Truth

    enum Compiled {
        case number(NumberEvaluator)
        case truth(TruthEvaluator)
    }

    /// The fast form of an expression the general compiler accepted (so its types are already checked), nil when
    /// its top does not have one.
    static func compile(_ syntax: ExpressionSyntax) -> Compiled? {
        // A lone field or literal is one step in the general form already (and a field's type is not known).
        switch syntax {
        case .path, .literal: return nil
        default: break
        }
        if let truth = truth(syntax) { return .truth(truth) }
        if let number = number(syntax) { return .number(number) }
        return nil
    }

    // MARK: Numbers

    static func number(_ syntax: ExpressionSyntax) -> NumberEvaluator? {
        switch syntax {
        case .literal(.int(let value), _): return { _ in .int(value) }
        case .literal(.double(let value), _): return { _ in .double(value) }
        case .literal: return nil
        case .path(let names, _): return numberPath(names)
        case .unary(.negate, let operandSyntax, _):
            guard let inner = operand(operandSyntax) else { return nil }
            return { fields in
                switch inner.value(fields) {
                case .int(let value): return value == .min ? .fallback : .int(-value)
                case .double(let value): return .double(-value)
                default: return .fallback
                }
            }
        case .unary(.not, _, _): return nil
        case .binary(let op, let leftSyntax, let rightSyntax, _):
            switch op {
            case .add, .subtract, .multiply, .divide, .remainder:
                guard let left = operand(leftSyntax), let right = operand(rightSyntax) else { return nil }
                return arithmetic(op, left, right)
            case .coalesce:
                guard let left = operand(leftSyntax), let right = operand(rightSyntax) else { return nil }
                return { fields in
                    let value = left.value(fields)
                    if case .null = value { return right.value(fields) }
                    return value
                }
            default: return nil
            }
        case .call(let name, let argumentSyntax, _):
            switch (name, argumentSyntax.count) {
            case ("round", 1), ("round", 2):
                guard let value = operand(argumentSyntax[0]) else { return nil }
                let digits: Operand
                if argumentSyntax.count == 2 {
                    guard let given = operand(argumentSyntax[1]) else { return nil }
                    digits = given
                } else {
                    digits = .constant(.int(0))
                }
                return { fields in
                    guard case .int(let places) = digits.value(fields), (0...15).contains(places) else { return .fallback }
                    switch value.value(fields) {
                    case .int(let number): return .int(number)
                    case .double(let number): return .double(ExpressionFunctions.round(number, places: Int(places)))
                    default: return .fallback
                    }
                }
            case ("abs", 1):
                guard let value = operand(argumentSyntax[0]) else { return nil }
                return { fields in
                    switch value.value(fields) {
                    case .int(let number): return number == .min ? .fallback : .int(Swift.abs(number))
                    case .double(let number): return .double(Swift.abs(number))
                    default: return .fallback
                    }
                }
            case ("to_float", 1):
                guard let value = operand(argumentSyntax[0]) else { return nil }
                return { fields in
                    switch value.value(fields) {
                    case .int(let number): return .double(Double(number))
                    case .double(let number): return .double(number)
                    default: return .fallback
                    }
                }
            default: return nil
            }
        }
    }

    /// An operand of a numeric node, read inline by that node's closure: a constant or a top-level field costs no
    /// closure call of its own (in `.t * 9 / 5 + 32` that is five of the eight calls).
    enum Operand: Sendable {
        case constant(Number)
        case field(Fields.LookupName)
        case computed(NumberEvaluator)

        @inline(__always)
        func value(_ fields: Fields) -> Number {
            switch self {
            case .constant(let number): return number
            case .field(let name): return fields.withFirstValue(named: name, ExpressionFastPath.number(of:)) ?? .null
            case .computed(let evaluate): return evaluate(fields)
            }
        }
    }

    static func operand(_ syntax: ExpressionSyntax) -> Operand? {
        switch syntax {
        case .literal(.int(let value), _): return .constant(.int(value))
        case .literal(.double(let value), _): return .constant(.double(value))
        // A negative literal (`-40` is `-` applied to 40): folded, as the negation closure would give it every time.
        case .unary(.negate, .literal(.int(let value), _), _) where value != .min: return .constant(.int(-value))
        case .unary(.negate, .literal(.double(let value), _), _): return .constant(.double(-value))
        case .path(let names, _) where names.count == 1: return .field(Fields.LookupName(names[0]))
        default: return number(syntax).map(Operand.computed)
        }
    }

    private static func numberPath(_ names: [String]) -> NumberEvaluator {
        if names.count == 1 {
            let name = Fields.LookupName(names[0])
            return { fields in fields.withFirstValue(named: name, number(of:)) ?? .null }
        }
        return { fields in ExpressionCompiler.lookup(names, in: fields).map(number(of:)) ?? .null }
    }

    @inline(__always)
    static func number(of value: Value) -> Number {
        switch value {
        case .int(let number): return .int(number)
        case .double(let number): return .double(number)
        case .null: return .null
        default: return .fallback
        }
    }

    /// ``ExpressionCompiler/arithmetic(_:_:_:)`` on numbers; what it throws for is `.fallback`.
    private static func arithmetic(_ op: BinaryOperator, _ left: Operand, _ right: Operand) -> NumberEvaluator
    {
        switch op {
        case .add:
            return { fields in
                let a = left.value(fields)
                let b = right.value(fields)
                if case .int(let x) = a, case .int(let y) = b {
                    let (sum, overflow) = x.addingReportingOverflow(y)
                    return overflow ? .fallback : .int(sum)
                }
                guard let (x, y) = doubles(a, b) else { return .fallback }
                return .double(x + y)
            }
        case .subtract:
            return { fields in
                let a = left.value(fields)
                let b = right.value(fields)
                if case .int(let x) = a, case .int(let y) = b {
                    let (difference, overflow) = x.subtractingReportingOverflow(y)
                    return overflow ? .fallback : .int(difference)
                }
                guard let (x, y) = doubles(a, b) else { return .fallback }
                return .double(x - y)
            }
        case .multiply:
            return { fields in
                let a = left.value(fields)
                let b = right.value(fields)
                if case .int(let x) = a, case .int(let y) = b {
                    let (product, overflow) = x.multipliedReportingOverflow(by: y)
                    return overflow ? .fallback : .int(product)
                }
                guard let (x, y) = doubles(a, b) else { return .fallback }
                return .double(x * y)
            }
        case .divide:
            return { fields in
                let a = left.value(fields)
                let b = right.value(fields)
                if case .int(let x) = a, case .int(let y) = b {
                    return y == 0 ? .fallback : .double(Double(x) / Double(y))
                }
                guard let (x, y) = doubles(a, b), y != 0 else { return .fallback }
                return .double(x / y)
            }
        default:
            return { fields in
                let a = left.value(fields)
                let b = right.value(fields)
                if case .int(let x) = a, case .int(let y) = b {
                    guard y != 0 else { return .fallback }
                    let (remainder, overflow) = x.remainderReportingOverflow(dividingBy: y)
                    return overflow ? .fallback : .int(remainder)
                }
                guard let (x, y) = doubles(a, b), y != 0 else { return .fallback }
                return .double(fmod(x, y))
            }
        }
    }

    /// Two numbers of which at least one is a float, as floats (an int operand promoted); nil otherwise.
    @inline(__always)
    private static func doubles(_ a: Number, _ b: Number) -> (Double, Double)? {
        switch (a, b) {
        case (.double(let x), .double(let y)): return (x, y)
        case (.int(let x), .double(let y)): return (Double(x), y)
        case (.double(let x), .int(let y)): return (x, Double(y))
        default: return nil
        }
    }

    // MARK: Truth values

    static func truth(_ syntax: ExpressionSyntax) -> TruthEvaluator? {
        switch syntax {
        case .literal(.bool(let flag), _): return { _ in Truth(flag) }
        case .literal: return nil
        case .path(let names, _):
            if names.count == 1 {
                let field = Fields.LookupName(names[0])
                return { fields in
                    fields.withFirstValue(named: field) { value in
                        guard case .bool(let flag) = value else { return Truth.fallback }
                        return Truth(flag)
                    } ?? .fallback
                }
            }
            return { fields in
                guard case .bool(let flag)? = ExpressionCompiler.lookup(names, in: fields) else { return .fallback }
                return Truth(flag)
            }
        case .unary(.not, let operandSyntax, _):
            guard let operand = truth(operandSyntax) else { return nil }
            return { fields in
                switch operand(fields) {
                case .isTrue: return .isFalse
                case .isFalse: return .isTrue
                case .fallback: return .fallback
                }
            }
        case .unary(.negate, _, _): return nil
        case .binary(let op, let leftSyntax, let rightSyntax, _):
            switch op {
            case .and, .or:
                // Short-circuit as the general form does: the right side only when the left does not decide.
                let decides: Truth = op == .and ? .isFalse : .isTrue
                if let range = sameFieldComparisons(leftSyntax, rightSyntax, decides: decides) { return range }
                guard let left = truth(leftSyntax), let right = truth(rightSyntax) else { return nil }
                return { fields in
                    let first = left(fields)
                    if case .fallback = first { return .fallback }
                    if first == decides { return first }
                    return right(fields)
                }
            case .less, .lessOrEqual, .greater, .greaterOrEqual:
                guard let left = operand(leftSyntax), let right = operand(rightSyntax) else { return nil }
                return order(op, left, right)
            case .equal, .notEqual:
                let negate = op == .notEqual
                if let equal = stringEquality(leftSyntax, rightSyntax) ?? stringEquality(rightSyntax, leftSyntax) {
                    return { fields in Truth(equal(fields) != negate) }
                }
                guard let left = operand(leftSyntax), let right = operand(rightSyntax) else { return nil }
                return { fields in
                    switch (left.value(fields), right.value(fields)) {
                    case (.int(let a), .int(let b)): return Truth((a == b) != negate)
                    case (.double(let a), .double(let b)): return Truth((a == b) != negate)
                    case (.int(let a), .double(let b)): return Truth((Double(a) == b) != negate)
                    case (.double(let a), .int(let b)): return Truth((a == Double(b)) != negate)
                    default: return .fallback
                    }
                }
            case .coalesce:
                guard case .path(let names, _) = leftSyntax, let right = truth(rightSyntax) else { return nil }
                return { fields in
                    switch ExpressionCompiler.lookup(names, in: fields) {
                    case .bool(let flag)?: return Truth(flag)
                    case nil, .null?: return right(fields)
                    default: return .fallback
                    }
                }
            default: return nil
            }
        case .call(let name, let argumentSyntax, _):
            switch (name, argumentSyntax.count) {
            case ("exists", 1):
                guard case .path(let names, _) = argumentSyntax[0] else { return nil }
                if names.count == 1 {
                    let field = Fields.LookupName(names[0])
                    return { fields in Truth(fields.withFirstValue(named: field, { _ in true }) ?? false) }
                }
                return { fields in Truth(ExpressionCompiler.lookup(names, in: fields) != nil) }
            case ("starts_with", 2), ("ends_with", 2):
                guard case .path(let names, _) = argumentSyntax[0], names.count == 1,
                    case .literal(.string(let affix), _) = argumentSyntax[1]
                else { return nil }
                let field = Fields.LookupName(names[0])
                let isPrefix = name == "starts_with"
                return { fields in
                    fields.withFirstValue(named: field) { value in
                        guard case .string(let text) = value else { return Truth.fallback }
                        return Truth(isPrefix ? text.hasPrefix(affix) : text.hasSuffix(affix))
                    } ?? .fallback
                }
            default: return nil
            }
        }
    }

    /// `.field == "text"`: true exactly when the field holds that string (``ExpressionCompiler/equal(_:_:)`` of any
    /// other value with a string is false, a missing field included), so this one never falls back.
    private static func stringEquality(_ pathSyntax: ExpressionSyntax, _ literalSyntax: ExpressionSyntax)
        -> (@Sendable (Fields) -> Bool)?
    {
        guard case .path(let names, _) = pathSyntax, case .literal(.string(let literal), _) = literalSyntax else { return nil }
        if names.count == 1 {
            let field = Fields.LookupName(names[0])
            return { fields in
                fields.withFirstValue(named: field) { value in
                    guard case .string(let text) = value else { return false }
                    return text == literal
                } ?? false
            }
        }
        return { fields in
            guard case .string(let text)? = ExpressionCompiler.lookup(names, in: fields) else { return false }
            return text == literal
        }
    }

    /// ``ExpressionCompiler/compare(_:_:_:)`` on numbers; a NaN (an error there) is `.fallback`.
    private static func order(_ op: BinaryOperator, _ left: Operand, _ right: Operand) -> TruthEvaluator {
        return { fields in compare(op, left.value(fields), right.value(fields)) }
    }

    @inline(__always)
    private static func compare(_ op: BinaryOperator, _ left: Number, _ right: Number) -> Truth {
        switch (left, right) {
        case (.int(let a), .int(let b)):
            switch op {
            case .less: return Truth(a < b)
            case .lessOrEqual: return Truth(a <= b)
            case .greater: return Truth(a > b)
            default: return Truth(a >= b)
            }
        case (.double(let a), .double(let b)): return decide(op, a, b)
        case (.int(let a), .double(let b)): return decide(op, Double(a), b)
        case (.double(let a), .int(let b)): return decide(op, a, Double(b))
        default: return .fallback
        }
    }

    /// An order comparison of one top-level field with a constant, the field on either side.
    private struct FieldComparison {
        let name: String
        let op: BinaryOperator
        let constant: Number
        let fieldFirst: Bool

        @inline(__always)
        func truth(_ value: Number) -> Truth {
            fieldFirst ? ExpressionFastPath.compare(op, value, constant) : ExpressionFastPath.compare(op, constant, value)
        }
    }

    private static func fieldComparison(_ syntax: ExpressionSyntax) -> FieldComparison? {
        guard case .binary(let op, let leftSyntax, let rightSyntax, _) = syntax,
            [.less, .lessOrEqual, .greater, .greaterOrEqual].contains(op)
        else { return nil }
        switch (operand(leftSyntax), operand(rightSyntax)) {
        case (.field(let name)?, .constant(let constant)?):
            return FieldComparison(name: name.text, op: op, constant: constant, fieldFirst: true)
        case (.constant(let constant)?, .field(let name)?):
            return FieldComparison(name: name.text, op: op, constant: constant, fieldFirst: false)
        default: return nil
        }
    }

    /// `&&` or `||` of two order comparisons of the same field with constants (a range, `.t > -40 && .t < 125`): the
    /// field is read once for both. Reading a field has no side effect, so that gives what two reads give; `decides`
    /// is the answer of the left side that makes the right one unread, as in the general short circuit.
    private static func sameFieldComparisons(
        _ leftSyntax: ExpressionSyntax, _ rightSyntax: ExpressionSyntax, decides: Truth
    ) -> TruthEvaluator? {
        guard let first = fieldComparison(leftSyntax), let second = fieldComparison(rightSyntax), first.name == second.name
        else { return nil }
        let field = Fields.LookupName(first.name)
        return { fields in
            let value = fields.withFirstValue(named: field, number(of:)) ?? .null
            let left = first.truth(value)
            if case .fallback = left { return .fallback }
            if left == decides { return left }
            return second.truth(value)
        }
    }

    @inline(__always)
    private static func decide(_ op: BinaryOperator, _ a: Double, _ b: Double) -> Truth {
        if a.isNaN || b.isNaN { return .fallback }
        switch op {
        case .less: return Truth(a < b)
        case .lessOrEqual: return Truth(a <= b)
        case .greater: return Truth(a > b)
        default: return Truth(a >= b)
        }
    }
}
