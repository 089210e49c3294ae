internal import CPCRE2

/// A regular expression whose every match is bounded: PCRE2 (Perl syntax, named captures `(?<name>…)` and
/// `(?P<name>…)`) with a match limit, so a pattern that backtracks exponentially on some line, such as
/// `^(?<x>(a+)+)$` on `aaaaaaaaaaaaaaaaaaaaaab`, gives up after ``maxSteps`` steps instead of stalling the
/// pipeline for minutes (Swift's `Regex` cannot be bounded or interrupted). The one regex engine of the agent:
/// the `json` transform's regex mode, `multiline.start_pattern` and the expression language's `matches`.
///
/// A step is one of PCRE2's backtracking points (its "match limit", over the whole search of a line: on 3,000
/// `a`s, an unanchored `(a+)+c` gives up as fast as an anchored one); ordinary patterns on ordinary lines take
/// tens to hundreds. Backtracking memory is bounded too (8 MiB). Lines are UTF-8 bytes; invalid UTF-8 in a line
/// never matches a character but is not an error.
///
/// Two forms. ``Compiled`` is the pattern itself (PCRE2's code, read-only once compiled and JIT-compiled) and is
/// `Sendable`; its ``Compiled/firstMatch(in:)`` allocates its scratch per call, so any thread may call it. A
/// `BoundedRegex` adds PCRE2's per-match scratch (the match data, which also holds the captures) to a
/// ``Compiled``, allocated once: it is not `Sendable`, and a task that matches every line (a `json` stage, a
/// tail) owns its own, so the hot path allocates nothing per line.
public final class BoundedRegex {
    /// The default step budget of one match.
    public static let defaultMaxSteps: UInt32 = 100_000

    public struct Invalid: Error, Sendable, CustomStringConvertible {
        /// PCRE2's reason, such as "missing closing parenthesis".
        public var reason: String
        /// Where in the pattern PCRE2 found the problem, in Unicode scalars from 0 (PCRE2 reports UTF-8 bytes).
        public var offset: Int
        public var description: String { "\(reason) at character \(offset + 1)" }
    }

    public enum Outcome: Equatable, Sendable {
        case matched
        case noMatch
        /// The line needed more than `maxSteps` steps (or nested too deep): neither a match nor a mismatch.
        case overBudget
    }

    /// A compiled pattern, shareable between threads.
    ///
    /// `@unchecked Sendable` because it holds C pointers Swift cannot check: PCRE2 documents a compiled pattern
    /// (after `pcre2_jit_compile`) and a match context as read-only during a match, so they may be used by
    /// several threads at once; nothing here changes them after `init`, and the scratch a match writes (the
    /// match data) is never shared: each ``firstMatch(in:)`` call, or each ``BoundedRegex``, has its own.
    public final class Compiled: @unchecked Sendable {
        public let source: String
        public let maxSteps: UInt32
        /// The named captures in the order they are written, with their group numbers.
        public let names: [(name: String, group: Int)]
        fileprivate let code: OpaquePointer
        fileprivate let context: OpaquePointer

        public init(_ source: String, maxSteps: UInt32 = BoundedRegex.defaultMaxSteps) throws(Invalid) {
            self.source = source
            self.maxSteps = max(1, maxSteps)
            var errorCode: Int32 = 0
            var errorOffset = 0
            let compiled = Array(source.utf8).withUnsafeBufferPointer { pattern in
                pcre2_compile_8(
                    pattern.baseAddress, pattern.count, UInt32(PCRE2_UTF | PCRE2_MATCH_INVALID_UTF), &errorCode,
                    &errorOffset, nil)
            }
            guard let compiled else {
                // PCRE2's offset counts UTF-8 bytes; people (and expression columns) count characters.
                let scalars = String(decoding: source.utf8.prefix(errorOffset), as: UTF8.self).unicodeScalars.count
                throw Invalid(reason: BoundedRegex.message(errorCode), offset: scalars)
            }
            // JIT when the platform has it: several times faster, and the match limit still applies.
            _ = pcre2_jit_compile_8(compiled, UInt32(PCRE2_JIT_COMPLETE))
            guard let context = pcre2_match_context_create_8(nil) else {
                pcre2_code_free_8(compiled)
                throw Invalid(reason: "out of memory compiling the pattern", offset: 0)
            }
            pcre2_set_match_limit_8(context, self.maxSteps)
            // Nested groups backtrack through memory too: bound it (bytes) as well as the steps.
            pcre2_set_heap_limit_8(context, 8 << 10)  // KiB
            code = compiled
            self.context = context
            names = BoundedRegex.names(of: compiled)
        }

        deinit {
            pcre2_match_context_free_8(context)
            pcre2_code_free_8(code)
        }

        /// Whether the pattern matches somewhere in `text`. Allocates the match's scratch for this call (one
        /// small allocation), so it is safe from any thread; a task matching every line uses a ``BoundedRegex``.
        public func firstMatch(in text: String) -> Outcome {
            // Only whether it matched is read: one pair of offsets is enough scratch.
            guard let matchData = pcre2_match_data_create_8(1, nil) else { return .overBudget }
            defer { pcre2_match_data_free_8(matchData) }
            var text = text
            return text.withUTF8 { BoundedRegex.match(self, $0, matchData) }
        }
    }

    public let compiled: Compiled
    private let matchData: OpaquePointer

    public var source: String { compiled.source }
    public var maxSteps: UInt32 { compiled.maxSteps }
    /// The named captures in the order they are written, with their group numbers.
    public var names: [(name: String, group: Int)] { compiled.names }

    /// Compiles `source` for one task.
    public convenience init(_ source: String, maxSteps: UInt32 = BoundedRegex.defaultMaxSteps) throws(Invalid) {
        try self.init(Compiled(source, maxSteps: maxSteps))
    }

    /// A task's own matcher of an already compiled pattern (the pattern is shared, the scratch is not).
    public init(_ compiled: Compiled) throws(Invalid) {
        guard let matchData = pcre2_match_data_create_from_pattern_8(compiled.code, nil) else {
            throw Invalid(reason: "out of memory compiling the pattern", offset: 0)
        }
        self.compiled = compiled
        self.matchData = matchData
    }

    deinit {
        pcre2_match_data_free_8(matchData)
    }

    /// Looks for the first match in `line`; afterwards ``captured(_:)`` reads its groups.
    public func firstMatch(in line: UnsafeBufferPointer<UInt8>) -> Outcome {
        Self.match(compiled, line, matchData)
    }

    public func firstMatch(in line: ArraySlice<UInt8>) -> Outcome {
        line.withUnsafeBufferPointer { firstMatch(in: $0) }
    }

    /// The byte range of `group` in the last matched line, or nil when it took no part in the match.
    public func captured(_ group: Int) -> Range<Int>? {
        guard group < Int(pcre2_get_ovector_count_8(matchData)) else { return nil }
        let vector = pcre2_get_ovector_pointer_8(matchData)!
        let start = vector[2 * group]
        let end = vector[2 * group + 1]
        // PCRE2_UNSET is ~0.
        guard start != ~0, end != ~0, start <= end else { return nil }
        return start..<end
    }

    private static func match(_ compiled: Compiled, _ line: UnsafeBufferPointer<UInt8>, _ matchData: OpaquePointer)
        -> Outcome
    {
        // An empty line still needs a valid pointer.
        let empty: UInt8 = 0
        let result = withUnsafePointer(to: empty) { fallback in
            pcre2_match_8(compiled.code, line.baseAddress ?? fallback, line.count, 0, 0, matchData, compiled.context)
        }
        // 0 means a match whose offsets did not all fit the scratch (the one-pair form): still a match.
        if result >= 0 { return .matched }
        switch result {
        case PCRE2_ERROR_NOMATCH, PCRE2_ERROR_PARTIAL: return .noMatch
        default: return .overBudget  // the match, depth or heap limit: the line was too costly to decide
        }
    }

    private static func message(_ code: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let length = pcre2_get_error_message_8(code, &buffer, buffer.count)
        return length > 0 ? String(decoding: buffer.prefix(Int(length)), as: UTF8.self) : "error \(code)"
    }

    /// PCRE2's name table (sorted by name), put back in the order the groups are written.
    private static func names(of code: OpaquePointer) -> [(name: String, group: Int)] {
        var count: UInt32 = 0
        var entrySize: UInt32 = 0
        var table: UnsafePointer<UInt8>?
        pcre2_pattern_info_8(code, UInt32(PCRE2_INFO_NAMECOUNT), &count)
        pcre2_pattern_info_8(code, UInt32(PCRE2_INFO_NAMEENTRYSIZE), &entrySize)
        pcre2_pattern_info_8(code, UInt32(PCRE2_INFO_NAMETABLE), &table)
        guard count > 0, let table else { return [] }
        var names: [(name: String, group: Int)] = []
        for index in 0..<Int(count) {
            let entry = table + index * Int(entrySize)
            let group = Int(entry[0]) << 8 | Int(entry[1])
            let name = String(cString: entry + 2)
            names.append((name, group))
        }
        return names.sorted { $0.group < $1.group }
    }

    /// Whether the pattern repeats a group that itself repeats without bound, like `(a+)+`, `(a*)*` or
    /// `(?:\w+\s?)+$`: the shape that backtracks exponentially on a line that almost matches. A heuristic over
    /// the text, for a warning at validation; the step budget is what actually bounds the work.
    public static func hasNestedQuantifier(_ source: String) -> Bool {
        let bytes = Array(source.utf8)
        // For each open group: whether an unbounded quantifier appeared inside it.
        var groups: [Bool] = []
        var index = 0
        var inClass = false
        func unboundedQuantifier(at position: Int) -> Bool {
            guard position < bytes.count else { return false }
            switch bytes[position] {
            case UInt8(ascii: "+"), UInt8(ascii: "*"): return true
            case UInt8(ascii: "{"):
                // {n,} is unbounded; {n} and {n,m} are not.
                var cursor = position + 1
                while cursor < bytes.count, bytes[cursor] >= 0x30, bytes[cursor] <= 0x39 { cursor += 1 }
                return cursor + 1 < bytes.count && bytes[cursor] == UInt8(ascii: ",") && bytes[cursor + 1] == UInt8(ascii: "}")
            default: return false
            }
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\\") {
                index += 2
                if unboundedQuantifier(at: index), !groups.isEmpty { groups[groups.count - 1] = true }
                continue
            }
            if inClass {
                if byte == UInt8(ascii: "]") {
                    inClass = false
                    if unboundedQuantifier(at: index + 1), !groups.isEmpty { groups[groups.count - 1] = true }
                }
                index += 1
                continue
            }
            switch byte {
            case UInt8(ascii: "["):
                inClass = true
                // A ']' right after '[' or '[^' is a literal.
                if index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "^") { index += 1 }
                if index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "]") { index += 1 }
            case UInt8(ascii: "("):
                groups.append(false)
            case UInt8(ascii: ")"):
                let innerRepeats = groups.popLast() ?? false
                if innerRepeats && unboundedQuantifier(at: index + 1) { return true }
                // The group as a whole is one item of the group around it.
                if (innerRepeats || unboundedQuantifier(at: index + 1)), !groups.isEmpty { groups[groups.count - 1] = true }
            default:
                if byte != UInt8(ascii: "+") && byte != UInt8(ascii: "*") && unboundedQuantifier(at: index + 1),
                    !groups.isEmpty
                {
                    groups[groups.count - 1] = true
                }
            }
            index += 1
        }
        return false
    }
}
