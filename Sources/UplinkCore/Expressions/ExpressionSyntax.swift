/// An expression as written, parsed: what the compiler turns into closures. Offsets count Unicode scalars from
/// the start of the expression, so an error can be placed at `file:line:column`.
indirect enum ExpressionSyntax {
    case literal(Value, offset: Int)
    /// `.a.b."c d"`: the field names from the record's top level down.
    case path([String], offset: Int)
    case unary(UnaryOperator, ExpressionSyntax, offset: Int)
    /// `offset` is the operator's.
    case binary(BinaryOperator, ExpressionSyntax, ExpressionSyntax, offset: Int)
    case call(String, [ExpressionSyntax], offset: Int)

    var offset: Int {
        switch self {
        case .literal(_, let offset), .path(_, let offset), .unary(_, _, let offset), .call(_, _, let offset):
            return offset
        case .binary(_, let left, _, _):
            return left.offset
        }
    }

    /// How the node is written, for messages (`.temp`, `"abc"`, `round(…)`).
    var shortText: String {
        switch self {
        case .literal(let value, _): return value.jsonText
        case .path(let names, _): return ExpressionSyntax.pathText(names)
        case .unary(let op, let operand, _): return op.rawValue + operand.shortText
        case .binary(let op, _, _, _): return "the '\(op.rawValue)' expression"
        case .call(let name, _, _): return name + "(…)"
        }
    }

    static func pathText(_ names: [String]) -> String {
        names.map { name in
            let plain = !name.isEmpty && name.unicodeScalars.allSatisfy { ExpressionLexer.isIdentifier($0) }
                && !ExpressionLexer.isDigit(name.unicodeScalars.first!)
            return "." + (plain ? name : Value.string(name).jsonText)
        }.joined()
    }
}

enum UnaryOperator: String {
    case not = "!"
    case negate = "-"
}

enum BinaryOperator: String {
    case add = "+", subtract = "-", multiply = "*", divide = "/", remainder = "%"
    case equal = "==", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
    case and = "&&", or = "||", coalesce = "??"

    /// Binding strength, Swift's order: `||` < `&&` < comparison < `??` < `+ -` < `* / %`.
    var precedence: Int {
        switch self {
        case .or: return 1
        case .and: return 2
        case .equal, .notEqual, .less, .lessOrEqual, .greater, .greaterOrEqual: return 3
        case .coalesce: return 4
        case .add, .subtract: return 5
        case .multiply, .divide, .remainder: return 6
        }
    }

    var isComparison: Bool { precedence == 3 }
}

/// A problem found while reading or checking an expression, at an offset (in Unicode scalars) inside it.
public struct ExpressionCompileError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var offset: Int

    public init(_ message: String, at offset: Int) {
        self.message = message
        self.offset = offset
    }

    public var description: String { message }
}

struct ExpressionToken {
    enum Kind: Equatable {
        case identifier(String)
        case string(String)
        case integer(Int64)
        case float(Double)
        case dot
        case leftParenthesis, rightParenthesis, comma
        case binary(BinaryOperator)
        case not
        case end
    }

    var kind: Kind
    var offset: Int
}

/// Splits an expression into tokens.
struct ExpressionLexer {
    static func isIdentifier(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "_" || isDigit(scalar) || (scalar.value | 0x20 >= 0x61 && scalar.value | 0x20 <= 0x7A)
    }

    static func isDigit(_ scalar: Unicode.Scalar) -> Bool { scalar.value >= 0x30 && scalar.value <= 0x39 }

    /// Expressions longer than this are refused: a configuration, not a program.
    static let maxLength = 4096

    static func tokens(_ text: String) throws(ExpressionCompileError) -> [ExpressionToken] {
        let scalars = Array(text.unicodeScalars)
        guard scalars.count <= maxLength else {
            throw ExpressionCompileError("the expression is longer than \(maxLength) characters", at: 0)
        }
        var tokens: [ExpressionToken] = []
        var index = 0
        func at(_ offset: Int) -> Unicode.Scalar? { index + offset < scalars.count ? scalars[index + offset] : nil }
        while index < scalars.count {
            let scalar = scalars[index]
            let start = index
            switch scalar {
            case " ", "\t", "\n", "\r":
                index += 1
            case "(": tokens.append(.init(kind: .leftParenthesis, offset: start)); index += 1
            case ")": tokens.append(.init(kind: .rightParenthesis, offset: start)); index += 1
            case ",": tokens.append(.init(kind: .comma, offset: start)); index += 1
            case ".":
                if let next = at(1), isDigit(next) {
                    throw ExpressionCompileError("a number needs a digit before its '.': write 0.\(next)", at: start)
                }
                tokens.append(.init(kind: .dot, offset: start))
                index += 1
            case "+", "-", "*", "/", "%":
                let op: BinaryOperator = [
                    "+": .add, "-": .subtract, "*": .multiply, "/": .divide, "%": .remainder,
                ][scalar]!
                tokens.append(.init(kind: .binary(op), offset: start))
                index += 1
            case "=", "!", "<", ">":
                if at(1) == "=" {
                    let op: BinaryOperator = ["=": .equal, "!": .notEqual, "<": .lessOrEqual, ">": .greaterOrEqual][scalar]!
                    tokens.append(.init(kind: .binary(op), offset: start))
                    index += 2
                } else if scalar == "=" {
                    throw ExpressionCompileError("'=' is not an operator; did you mean '=='?", at: start)
                } else if scalar == "!" {
                    tokens.append(.init(kind: .not, offset: start))
                    index += 1
                } else {
                    tokens.append(.init(kind: .binary(scalar == "<" ? .less : .greater), offset: start))
                    index += 1
                }
            case "&", "|":
                guard at(1) == scalar else {
                    throw ExpressionCompileError("'\(scalar)' is not an operator; did you mean '\(scalar)\(scalar)'?", at: start)
                }
                tokens.append(.init(kind: .binary(scalar == "&" ? .and : .or), offset: start))
                index += 2
            case "?":
                guard at(1) == "?" else {
                    throw ExpressionCompileError("'?' is not an operator; did you mean '??' (a default for a missing value)?", at: start)
                }
                tokens.append(.init(kind: .binary(.coalesce), offset: start))
                index += 2
            case "\"":
                tokens.append(.init(kind: .string(try string(scalars, &index)), offset: start))
            case "'":
                throw ExpressionCompileError("strings are written in double quotes: \"text\"", at: start)
            default:
                if isDigit(scalar) {
                    tokens.append(.init(kind: try number(scalars, &index), offset: start))
                } else if isIdentifier(scalar) {
                    while index < scalars.count && isIdentifier(scalars[index]) { index += 1 }
                    var name = ""
                    name.unicodeScalars.append(contentsOf: scalars[start..<index])
                    tokens.append(.init(kind: .identifier(name), offset: start))
                } else {
                    throw ExpressionCompileError("unexpected character '\(scalar)'", at: start)
                }
            }
        }
        tokens.append(.init(kind: .end, offset: scalars.count))
        return tokens
    }

    private static func string(_ scalars: [Unicode.Scalar], _ index: inout Int) throws(ExpressionCompileError) -> String {
        let start = index
        index += 1
        var text = String.UnicodeScalarView()
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == "\"" {
                index += 1
                return String(text)
            }
            if scalar == "\\" {
                guard index + 1 < scalars.count else { break }
                let escaped = scalars[index + 1]
                switch escaped {
                case "\"": text.append("\"")
                case "\\": text.append("\\")
                case "n": text.append("\n")
                case "t": text.append("\t")
                case "r": text.append("\r")
                default:
                    throw ExpressionCompileError(
                        "unknown escape '\\\(escaped)' in a string (\\\" \\\\ \\n \\t \\r; in a regex write \\\\\(escaped))",
                        at: index)
                }
                index += 2
                continue
            }
            text.append(scalar)
            index += 1
        }
        throw ExpressionCompileError("the string starting here has no closing '\"'", at: start)
    }

    private static func number(_ scalars: [Unicode.Scalar], _ index: inout Int) throws(ExpressionCompileError) -> ExpressionToken.Kind {
        let start = index
        var isFloat = false
        func digits() { while index < scalars.count && (isDigit(scalars[index]) || scalars[index] == "_") { index += 1 } }
        digits()
        if index + 1 < scalars.count && scalars[index] == "." && isDigit(scalars[index + 1]) {
            isFloat = true
            index += 1
            digits()
        }
        if index < scalars.count && (scalars[index] == "e" || scalars[index] == "E") {
            var next = index + 1
            if next < scalars.count && (scalars[next] == "+" || scalars[next] == "-") { next += 1 }
            if next < scalars.count && isDigit(scalars[next]) {
                isFloat = true
                index = next
                digits()
            }
        }
        if index < scalars.count && isIdentifier(scalars[index]) {
            throw ExpressionCompileError("a number cannot be followed by '\(scalars[index])'", at: index)
        }
        var text = ""
        text.unicodeScalars.append(contentsOf: scalars[start..<index].filter { $0 != "_" })
        if isFloat {
            guard let value = Double(text), value.isFinite else { throw ExpressionCompileError("'\(text)' is not a number", at: start) }
            return .float(value)
        }
        guard let value = Int64(text) else {
            throw ExpressionCompileError("the integer \(text) is too large (at most \(Int64.max))", at: start)
        }
        return .integer(value)
    }
}

/// Reads tokens into an ``ExpressionSyntax`` tree by precedence climbing.
struct ExpressionParser {
    private let tokens: [ExpressionToken]
    private var position = 0
    private var depth = 0

    /// Nesting deeper than this is refused, so parsing and evaluation stay within a small stack.
    static let maxDepth = 64

    static func parse(_ text: String) throws(ExpressionCompileError) -> ExpressionSyntax {
        var parser = ExpressionParser(tokens: try ExpressionLexer.tokens(text))
        if case .end = parser.current.kind {
            throw ExpressionCompileError("the expression is empty", at: 0)
        }
        let syntax = try parser.expression(minimumPrecedence: 1)
        guard case .end = parser.current.kind else {
            throw ExpressionCompileError("unexpected \(parser.describe(parser.current)) after a complete expression", at: parser.current.offset)
        }
        return syntax
    }

    private init(tokens: [ExpressionToken]) { self.tokens = tokens }

    private var current: ExpressionToken { tokens[position] }

    private func describe(_ token: ExpressionToken) -> String {
        switch token.kind {
        case .identifier(let name): return "'\(name)'"
        case .string(let text): return Value.string(text).jsonText
        case .integer(let value): return "\(value)"
        case .float(let value): return "\(value)"
        case .dot: return "'.'"
        case .leftParenthesis: return "'('"
        case .rightParenthesis: return "')'"
        case .comma: return "','"
        case .binary(let op): return "'\(op.rawValue)'"
        case .not: return "'!'"
        case .end: return "the end of the expression"
        }
    }

    private mutating func expression(minimumPrecedence: Int) throws(ExpressionCompileError) -> ExpressionSyntax {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else {
            throw ExpressionCompileError("the expression is nested too deeply (at most \(Self.maxDepth) levels)", at: current.offset)
        }
        var left = try unary()
        while case .binary(let op) = current.kind, op.precedence >= minimumPrecedence {
            let offset = current.offset
            position += 1
            // `??` groups to the right (a ?? b ?? c is a ?? (b ?? c)); the others to the left.
            let right = try expression(minimumPrecedence: op == .coalesce ? op.precedence : op.precedence + 1)
            if op.isComparison, case .binary(let next) = current.kind, next.isComparison {
                throw ExpressionCompileError(
                    "comparisons do not chain: write (a \(op.rawValue) b) && (b \(next.rawValue) c)", at: current.offset)
            }
            left = .binary(op, left, right, offset: offset)
        }
        return left
    }

    private mutating func unary() throws(ExpressionCompileError) -> ExpressionSyntax {
        let token = current
        switch token.kind {
        case .not:
            position += 1
            depth += 1
            defer { depth -= 1 }
            guard depth <= Self.maxDepth else { throw ExpressionCompileError("the expression is nested too deeply", at: token.offset) }
            return .unary(.not, try unary(), offset: token.offset)
        case .binary(.subtract):
            position += 1
            // A literal number's sign belongs to the literal, so `-9223372036854775808` and `-1.5` are constants.
            if case .integer(let value) = current.kind {
                position += 1
                return .literal(.int(-value), offset: token.offset)
            }
            if case .float(let value) = current.kind {
                position += 1
                return .literal(.double(-value), offset: token.offset)
            }
            depth += 1
            defer { depth -= 1 }
            guard depth <= Self.maxDepth else { throw ExpressionCompileError("the expression is nested too deeply", at: token.offset) }
            return .unary(.negate, try unary(), offset: token.offset)
        default:
            return try primary()
        }
    }

    private mutating func primary() throws(ExpressionCompileError) -> ExpressionSyntax {
        let token = current
        switch token.kind {
        case .integer(let value):
            position += 1
            return .literal(.int(value), offset: token.offset)
        case .float(let value):
            position += 1
            return .literal(.double(value), offset: token.offset)
        case .string(let text):
            position += 1
            return .literal(.string(text), offset: token.offset)
        case .dot:
            return try path()
        case .leftParenthesis:
            position += 1
            let inner = try expression(minimumPrecedence: 1)
            guard case .rightParenthesis = current.kind else {
                throw ExpressionCompileError("expected ')' to close the '(' at column \(token.offset + 1) of the expression, found \(describe(current))", at: current.offset)
            }
            position += 1
            return inner
        case .identifier(let name):
            position += 1
            switch name {
            case "true": return .literal(.bool(true), offset: token.offset)
            case "false": return .literal(.bool(false), offset: token.offset)
            case "null": return .literal(.null, offset: token.offset)
            default: break
            }
            guard case .leftParenthesis = current.kind else {
                throw ExpressionCompileError("unknown name '\(name)': a field is written with a dot (.\(name)), a function with parentheses (\(name)(…))", at: token.offset)
            }
            position += 1
            var arguments: [ExpressionSyntax] = []
            if case .rightParenthesis = current.kind {
                position += 1
                return .call(name, arguments, offset: token.offset)
            }
            while true {
                arguments.append(try expression(minimumPrecedence: 1))
                if case .comma = current.kind {
                    position += 1
                    continue
                }
                guard case .rightParenthesis = current.kind else {
                    throw ExpressionCompileError("expected ',' or ')' in the arguments of \(name), found \(describe(current))", at: current.offset)
                }
                position += 1
                return .call(name, arguments, offset: token.offset)
            }
        default:
            throw ExpressionCompileError("expected a value, a field (.name) or a function call, found \(describe(token))", at: token.offset)
        }
    }

    private mutating func path() throws(ExpressionCompileError) -> ExpressionSyntax {
        let start = current.offset
        var names: [String] = []
        while case .dot = current.kind {
            let dot = current
            position += 1
            switch current.kind {
            case .identifier(let name), .string(let name):
                // A segment follows its dot directly: `. temp` is more likely a typo than a field.
                guard current.offset == dot.offset + 1 else {
                    throw ExpressionCompileError("a field name must follow its '.' directly", at: dot.offset)
                }
                names.append(name)
                position += 1
            default:
                throw ExpressionCompileError("expected a field name after '.', such as .temperature or .\"odd name\"", at: dot.offset)
            }
        }
        return .path(names, offset: start)
    }
}
