/// The regular expressions of `matches(s, "regex")`: compiled once at load, matched in time linear in the input.
///
/// Swift's `Regex` backtracks, so a pattern such as `(a+)+$` takes exponential time on a crafted input; one record
/// must not stall a pipeline. This is a Thompson automaton run as a Pike VM (as RE2 and Go's `regexp` do): every
/// input character advances all live states at once, so a match costs at most (characters × instructions) steps,
/// and a program holds at most ``maxInstructions``. No backreferences or lookaround, which need backtracking.
///
/// Syntax: literals, `.` (any character but a newline), classes `[a-z0-9_]` and `[^…]`, `\d \D \w \W \s \S`,
/// escapes `\. \\ \n \t` and other punctuation, anchors `^ $`, groups `( )` and `(?: )`, alternation `|`,
/// quantifiers `* + ? {n} {n,} {n,m}` (lazy forms accepted: for a yes/no answer they are the same), and a
/// leading `(?i)` for case-insensitive matching. A match may start anywhere unless the pattern begins with `^`.
public struct BoundedRegex: Sendable {
    /// Instructions a pattern may compile to (counted repetitions are expanded).
    public static let maxInstructions = 2000

    public struct SyntaxError: Error, Sendable, CustomStringConvertible {
        public var message: String
        /// The offset of the problem in the pattern, in Unicode scalars.
        public var offset: Int
        public var description: String { message }
    }

    enum Instruction: Sendable {
        case scalar(Unicode.Scalar)
        case any
        case set(CharacterSet)
        case split(Int, Int)
        case jump(Int)
        case lineStart
        case lineEnd
        case match
    }

    /// A bracket expression or shorthand class: ranges, possibly negated.
    struct CharacterSet: Sendable {
        var ranges: [ClosedRange<UInt32>]
        var negated: Bool

        func contains(_ scalar: Unicode.Scalar) -> Bool {
            let value = scalar.value
            var found = false
            for range in ranges where range.contains(value) {
                found = true
                break
            }
            return found != negated
        }
    }

    let program: [Instruction]
    let caseInsensitive: Bool
    public let pattern: String

    public init(_ pattern: String) throws(SyntaxError) {
        self.pattern = pattern
        var parser = RegexParser(Array(pattern.unicodeScalars))
        caseInsensitive = parser.consumeCaseInsensitiveFlag()
        let tree = try parser.parseAll()
        var program: [Instruction] = []
        try RegexParser.emit(tree, into: &program, caseInsensitive: caseInsensitive)
        program.append(.match)
        guard program.count <= Self.maxInstructions else {
            throw SyntaxError(
                message: "the pattern is too large (\(program.count) instructions, at most \(Self.maxInstructions)); use smaller counted repetitions",
                offset: 0)
        }
        self.program = program
    }

    /// Whether the pattern matches somewhere in `text`.
    public func matches(_ text: String) -> Bool {
        let count = program.count
        var current: [Int] = []
        var next: [Int] = []
        current.reserveCapacity(count)
        next.reserveCapacity(count)
        // The input position at which each instruction was last added, so a state joins a list at most once.
        var seen = [Int](repeating: -1, count: count)
        var stack: [Int] = []
        let scalars = text.unicodeScalars
        var position = 0
        var index = scalars.startIndex
        var previous: Unicode.Scalar? = nil

        func addThread(_ start: Int, to list: inout [Int], at position: Int, previous: Unicode.Scalar?, next scalar: Unicode.Scalar?) -> Bool {
            stack.removeAll(keepingCapacity: true)
            stack.append(start)
            while let pc = stack.popLast() {
                if seen[pc] == position { continue }
                seen[pc] = position
                switch program[pc] {
                case .jump(let target): stack.append(target)
                case .split(let first, let second):
                    stack.append(second)
                    stack.append(first)
                case .lineStart:
                    if previous == nil || previous == "\n" { stack.append(pc + 1) }
                case .lineEnd:
                    if scalar == nil || scalar == "\n" { stack.append(pc + 1) }
                case .match: return true
                case .scalar, .any, .set: list.append(pc)
                }
            }
            return false
        }

        while true {
            let scalar: Unicode.Scalar? = index < scalars.endIndex ? scalars[index] : nil
            // Unanchored search: a match may begin at every position.
            if addThread(0, to: &current, at: position, previous: previous, next: scalar) { return true }
            guard let scalar else { return false }
            next.removeAll(keepingCapacity: true)
            let nextIndex = scalars.index(after: index)
            let following: Unicode.Scalar? = nextIndex < scalars.endIndex ? scalars[nextIndex] : nil
            for pc in current {
                let advances: Bool
                switch program[pc] {
                case .scalar(let expected): advances = caseInsensitive ? Self.fold(scalar) == expected : scalar == expected
                case .any: advances = scalar != "\n"
                case .set(let set): advances = set.contains(caseInsensitive ? Self.fold(scalar) : scalar) || (caseInsensitive && set.contains(scalar))
                default: advances = false
                }
                if advances && addThread(pc + 1, to: &next, at: position + 1, previous: scalar, next: following) {
                    return true
                }
            }
            swap(&current, &next)
            previous = scalar
            index = nextIndex
            position += 1
        }
    }

    /// ASCII case folding: enough for tags, levels and host names.
    static func fold(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
        if scalar.value >= 0x41 && scalar.value <= 0x5A { return Unicode.Scalar(scalar.value + 0x20)! }
        return scalar
    }
}

/// Parses a pattern into a tree, and emits the tree as instructions.
struct RegexParser {
    indirect enum Node {
        case empty
        case scalar(Unicode.Scalar)
        case any
        case set(BoundedRegex.CharacterSet)
        case lineStart
        case lineEnd
        case concatenation([Node])
        case alternation([Node])
        case repetition(Node, min: Int, max: Int?)
    }

    typealias SyntaxError = BoundedRegex.SyntaxError

    let scalars: [Unicode.Scalar]
    var position = 0
    var depth = 0

    init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }

    mutating func consumeCaseInsensitiveFlag() -> Bool {
        let flag: [Unicode.Scalar] = ["(", "?", "i", ")"]
        guard scalars.count >= 4, Array(scalars[0..<4]) == flag else { return false }
        position = 4
        return true
    }

    mutating func parseAll() throws(SyntaxError) -> Node {
        let node = try parseAlternation()
        if position < scalars.count {
            throw SyntaxError(message: "unmatched ')' in the pattern", offset: position)
        }
        return node
    }

    private var peek: Unicode.Scalar? { position < scalars.count ? scalars[position] : nil }

    private mutating func parseAlternation() throws(SyntaxError) -> Node {
        var branches = [try parseConcatenation()]
        while peek == "|" {
            position += 1
            branches.append(try parseConcatenation())
        }
        return branches.count == 1 ? branches[0] : .alternation(branches)
    }

    private mutating func parseConcatenation() throws(SyntaxError) -> Node {
        var items: [Node] = []
        while let scalar = peek, scalar != "|", scalar != ")" {
            let atom = try parseAtom()
            items.append(try parseQuantifiers(atom))
        }
        return items.count == 1 ? items[0] : .concatenation(items)
    }

    private mutating func parseQuantifiers(_ atom: Node) throws(SyntaxError) -> Node {
        var node = atom
        while let scalar = peek {
            let start = position
            var bounds: (Int, Int?)
            switch scalar {
            case "*": bounds = (0, nil); position += 1
            case "+": bounds = (1, nil); position += 1
            case "?": bounds = (0, 1); position += 1
            case "{":
                guard let counted = try parseCount() else { return node }
                bounds = counted
            default: return node
            }
            if case .lineStart = node { throw SyntaxError(message: "nothing to repeat before '\(scalar)'", offset: start) }
            if case .lineEnd = node { throw SyntaxError(message: "nothing to repeat before '\(scalar)'", offset: start) }
            if case .empty = node { throw SyntaxError(message: "nothing to repeat before '\(scalar)'", offset: start) }
            if peek == "?" { position += 1 }  // lazy: the same for a yes/no answer
            node = .repetition(node, min: bounds.0, max: bounds.1)
        }
        return node
    }

    /// `{n}`, `{n,}`, `{n,m}`; nil (and nothing consumed) when the brace is not a count, which is then a literal.
    private mutating func parseCount() throws(SyntaxError) -> (Int, Int?)? {
        let start = position
        var index = position + 1
        func number(_ index: inout Int) -> Int? {
            var value = 0
            var digits = 0
            while index < scalars.count, scalars[index].value >= 0x30, scalars[index].value <= 0x39 {
                value = value * 10 + Int(scalars[index].value - 0x30)
                digits += 1
                index += 1
                if value > 1000 { return 1001 }
            }
            return digits > 0 ? value : nil
        }
        guard let low = number(&index) else { return nil }
        var high: Int? = low
        if index < scalars.count && scalars[index] == "," {
            index += 1
            high = number(&index)
        }
        guard index < scalars.count && scalars[index] == "}" else { return nil }
        position = index + 1
        if let high, high < low { throw SyntaxError(message: "a count {\(low),\(high)} must not decrease", offset: start) }
        if low > 1000 || (high ?? 0) > 1000 { throw SyntaxError(message: "a count above 1000 is too large", offset: start) }
        return (low, high)
    }

    private mutating func parseAtom() throws(SyntaxError) -> Node {
        let start = position
        let scalar = scalars[position]
        position += 1
        switch scalar {
        case ".": return .any
        case "^": return .lineStart
        case "$": return .lineEnd
        case "(":
            depth += 1
            guard depth <= 32 else { throw SyntaxError(message: "groups are nested too deeply", offset: start) }
            if peek == "?" {
                guard position + 1 < scalars.count, scalars[position + 1] == ":" else {
                    throw SyntaxError(
                        message: "only non-capturing groups '(?:' are supported after '(?' (no lookaround or flags here)",
                        offset: start)
                }
                position += 2
            }
            let inner = try parseAlternation()
            guard peek == ")" else { throw SyntaxError(message: "missing ')' for the group opened here", offset: start) }
            position += 1
            depth -= 1
            return inner
        case "[": return .set(try parseBracket(start: start))
        case "\\": return try parseEscape(start: start)
        case "*", "+", "?": throw SyntaxError(message: "nothing to repeat before '\(scalar)'", offset: start)
        default: return .scalar(scalar)
        }
    }

    private mutating func parseEscape(start: Int) throws(SyntaxError) -> Node {
        guard let next = peek else { throw SyntaxError(message: "the pattern ends with a lone '\\'", offset: start) }
        position += 1
        if let set = Self.shorthand(next) { return .set(set) }
        if let literal = Self.escapedLiteral(next) { return .scalar(literal) }
        throw SyntaxError(message: "unsupported escape '\\\(next)' in the pattern", offset: start)
    }

    static func shorthand(_ scalar: Unicode.Scalar) -> BoundedRegex.CharacterSet? {
        let digits: [ClosedRange<UInt32>] = [0x30...0x39]
        let word: [ClosedRange<UInt32>] = [0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x5F...0x5F]
        let space: [ClosedRange<UInt32>] = [0x09...0x0D, 0x20...0x20]
        switch scalar {
        case "d": return .init(ranges: digits, negated: false)
        case "D": return .init(ranges: digits, negated: true)
        case "w": return .init(ranges: word, negated: false)
        case "W": return .init(ranges: word, negated: true)
        case "s": return .init(ranges: space, negated: false)
        case "S": return .init(ranges: space, negated: true)
        default: return nil
        }
    }

    static func escapedLiteral(_ scalar: Unicode.Scalar) -> Unicode.Scalar? {
        switch scalar {
        case "n": return "\n"
        case "t": return "\t"
        case "r": return "\r"
        default:
            // Any escaped punctuation stands for itself: \. \\ \( \[ \{ \* \+ \? \| \^ \$ \/ \- …
            if scalar.isASCII && !scalar.properties.isAlphabetic && !(scalar.value >= 0x30 && scalar.value <= 0x39) {
                return scalar
            }
            return nil
        }
    }

    private mutating func parseBracket(start: Int) throws(SyntaxError) -> BoundedRegex.CharacterSet {
        var set = BoundedRegex.CharacterSet(ranges: [], negated: false)
        if peek == "^" {
            set.negated = true
            position += 1
        }
        var first = true
        while true {
            guard let scalar = peek else { throw SyntaxError(message: "missing ']' for the class opened here", offset: start) }
            if scalar == "]" && !first {
                position += 1
                return set
            }
            first = false
            position += 1
            var low = scalar
            if scalar == "\\" {
                guard let escaped = peek else { throw SyntaxError(message: "missing ']' for the class opened here", offset: start) }
                position += 1
                if let shorthand = Self.shorthand(escaped), !shorthand.negated {
                    set.ranges += shorthand.ranges
                    continue
                }
                guard let literal = Self.escapedLiteral(escaped) else {
                    throw SyntaxError(message: "unsupported escape '\\\(escaped)' in a class", offset: position - 2)
                }
                low = literal
            }
            if peek == "-", position + 1 < scalars.count, scalars[position + 1] != "]" {
                position += 1
                var high = scalars[position]
                position += 1
                if high == "\\" {
                    guard let escaped = peek, let literal = Self.escapedLiteral(escaped) else {
                        throw SyntaxError(message: "unsupported range end in a class", offset: position - 1)
                    }
                    position += 1
                    high = literal
                }
                guard low.value <= high.value else {
                    throw SyntaxError(message: "the range \(low)-\(high) is reversed", offset: position - 3)
                }
                set.ranges.append(low.value...high.value)
            } else {
                set.ranges.append(low.value...low.value)
            }
        }
    }

    /// Emits `node` at the end of `program`; bails out once the program is past the limit.
    static func emit(_ node: Node, into program: inout [BoundedRegex.Instruction], caseInsensitive: Bool) throws(SyntaxError) {
        guard program.count <= BoundedRegex.maxInstructions else {
            throw SyntaxError(
                message: "the pattern is too large (more than \(BoundedRegex.maxInstructions) instructions); use smaller counted repetitions",
                offset: 0)
        }
        switch node {
        case .empty: break
        case .scalar(let scalar): program.append(.scalar(caseInsensitive ? BoundedRegex.fold(scalar) : scalar))
        case .any: program.append(.any)
        case .set(let set): program.append(.set(set))
        case .lineStart: program.append(.lineStart)
        case .lineEnd: program.append(.lineEnd)
        case .concatenation(let items):
            for item in items { try emit(item, into: &program, caseInsensitive: caseInsensitive) }
        case .alternation(let branches):
            // split L1, next; L1: branch; jump end; next: split …
            var jumps: [Int] = []
            for (index, branch) in branches.enumerated() {
                if index < branches.count - 1 {
                    let split = program.count
                    program.append(.split(split + 1, 0))
                    try emit(branch, into: &program, caseInsensitive: caseInsensitive)
                    jumps.append(program.count)
                    program.append(.jump(0))
                    program[split] = .split(split + 1, program.count)
                } else {
                    try emit(branch, into: &program, caseInsensitive: caseInsensitive)
                }
            }
            for jump in jumps { program[jump] = .jump(program.count) }
        case .repetition(let inner, let min, let max):
            for _ in 0..<min { try emit(inner, into: &program, caseInsensitive: caseInsensitive) }
            if let max {
                // Each optional copy: split into it or past all of them.
                var splits: [Int] = []
                for _ in min..<max {
                    splits.append(program.count)
                    program.append(.split(program.count + 1, 0))
                    try emit(inner, into: &program, caseInsensitive: caseInsensitive)
                }
                for split in splits { program[split] = .split(split + 1, program.count) }
            } else {
                // L: split body, end; body; jump L
                let loop = program.count
                program.append(.split(loop + 1, 0))
                try emit(inner, into: &program, caseInsensitive: caseInsensitive)
                program.append(.jump(loop))
                program[loop] = .split(loop + 1, program.count)
            }
        }
    }
}
