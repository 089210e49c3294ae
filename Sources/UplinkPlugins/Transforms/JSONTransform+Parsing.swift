#if canImport(Glibc)
import Glibc
#endif
import UplinkCore

extension JSONTransform {
    /// Splits a CSV line into `cells` (whose storage is reused from line to line); returns the problem when the
    /// line is malformed.
    ///
    /// RFC 4180 quoting: a cell may be quoted (`"a,b"`), a quote inside a quoted cell is doubled (`""`). Unquoted
    /// cells are slices of the line, so splitting allocates only for a quoted cell with a doubled quote.
    ///
    /// A record is one line: a quoted cell that does not close on its line (RFC 4180 allows a newline inside
    /// quotes) is refused, and so is a quote inside an unquoted cell, which is where the rest of such a record
    /// lands. Both reasons say so, so neither half becomes a silently wrong record.
    static func splitCSV(
        _ line: ArraySlice<UInt8>, delimiter: UInt8, into cells: inout [ArraySlice<UInt8>]
    ) -> String? {
        let quote = UInt8(ascii: "\"")
        cells.removeAll(keepingCapacity: true)
        var index = line.startIndex
        let end = line.endIndex
        // Most lines hold no quote at all: one vectorised search spares the cell loop a test per byte.
        let hasQuote = line.withUnsafeBufferPointer { bytes in
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return false }
            return memchr(base, Int32(quote), bytes.count) != nil
        }
        while true {
            if index < end && line[index] == quote {
                index += 1
                let start = index
                var unescaped: [UInt8]?
                var closed = false
                while index < end {
                    if line[index] == quote {
                        if index + 1 < end && line[index + 1] == quote {
                            if unescaped == nil { unescaped = Array(line[start..<index]) }
                            unescaped!.append(quote)
                            index += 2
                            continue
                        }
                        closed = true
                        break
                    }
                    unescaped?.append(line[index])
                    index += 1
                }
                guard closed else {
                    return "unterminated quoted cell in column \(cells.count + 1) (a quoted cell must close on its line: newlines inside quotes are not supported)"
                }
                cells.append(unescaped.map { $0[...] } ?? line[start..<index])
                index += 1
                if index == end { return nil }
                guard line[index] == delimiter else {
                    return "unexpected character after the quoted cell in column \(cells.count)"
                }
                index += 1
            } else {
                let start = index
                while index < end && line[index] != delimiter {
                    if hasQuote && line[index] == quote {
                        return "a quote inside the unquoted cell in column \(cells.count + 1) (quote the whole cell and double the quote; a line that continues a quoted newline is not supported)"
                    }
                    index += 1
                }
                cells.append(line[start..<index])
                if index == end { return nil }
                index += 1
            }
        }
    }

    /// Parses `key=value` pairs into `fields`; returns the problem when the line is malformed.
    ///
    /// Pairs are separated by `pairDelimiter` (a space means any run of spaces and tabs); spaces around keys and
    /// values are ignored. A value may be double-quoted (`msg="disk full"`, with `\"` and `\\` escapes). A key
    /// that appears twice keeps its last value. More than `maxFields` distinct keys is a problem.
    static func splitPairs(
        _ line: ArraySlice<UInt8>, pairDelimiter: UInt8, kvDelimiter: UInt8, maxFields: Int = .max,
        into fields: inout Fields
    ) -> String? {
        let quote = UInt8(ascii: "\"")
        let backslash = UInt8(ascii: "\\")
        let whitespaceSeparated = pairDelimiter == UInt8(ascii: " ")
        @inline(__always) func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }
        @inline(__always) func endsValue(_ byte: UInt8) -> Bool {
            whitespaceSeparated ? isSpace(byte) : byte == pairDelimiter
        }
        var index = line.startIndex
        let end = line.endIndex
        while true {
            while index < end && isSpace(line[index]) { index += 1 }
            if index == end { return nil }
            if !whitespaceSeparated && line[index] == pairDelimiter {
                index += 1
                continue
            }
            let keyStart = index
            while index < end && line[index] != kvDelimiter && !endsValue(line[index]) { index += 1 }
            var keyEnd = index
            while keyEnd > keyStart && isSpace(line[keyEnd - 1]) { keyEnd -= 1 }
            guard index < end, line[index] == kvDelimiter else {
                return "'\(String(decoding: line[keyStart..<keyEnd].prefix(64), as: UTF8.self))' is not a key\(Character(Unicode.Scalar(kvDelimiter)))value pair"
            }
            guard keyEnd > keyStart else { return "a pair has an empty key" }
            let key = String(decoding: line[keyStart..<keyEnd], as: UTF8.self)
            if fields.count >= maxFields && fields[key] == nil {
                return "the line has more than max_fields (\(maxFields)) pairs"
            }
            index += 1
            if !whitespaceSeparated {
                while index < end && isSpace(line[index]) { index += 1 }
            }
            if index < end && line[index] == quote {
                index += 1
                var value: [UInt8] = []
                var closed = false
                while index < end {
                    let byte = line[index]
                    index += 1
                    if byte == quote {
                        closed = true
                        break
                    }
                    if byte == backslash && index < end && (line[index] == quote || line[index] == backslash) {
                        value.append(line[index])
                        index += 1
                        continue
                    }
                    value.append(byte)
                }
                guard closed else { return "unterminated quoted value of '\(key)'" }
                fields[key] = .string(String(decoding: value, as: UTF8.self))
                while index < end && isSpace(line[index]) { index += 1 }
                guard index == end || whitespaceSeparated || line[index] == pairDelimiter else {
                    return "unexpected character after the quoted value of '\(key)'"
                }
            } else {
                let valueStart = index
                while index < end && !endsValue(line[index]) { index += 1 }
                var valueEnd = index
                while valueEnd > valueStart && isSpace(line[valueEnd - 1]) { valueEnd -= 1 }
                fields[key] = .string(String(decoding: line[valueStart..<valueEnd], as: UTF8.self))
            }
        }
    }
}

/// The `pattern` of regex mode: its text, the names of its named captures, and the step budget of one line's
/// match, checked when the config is read.
///
/// The engine is PCRE2 through ``BoundedRegex`` (Perl syntax), whose compiled form is not `Sendable`: the stage
/// keeps the text and each run compiles its own ``Matcher``.
public struct LinePattern: Sendable, Equatable {
    public let source: String
    /// The named captures, in the order they are written: the fields a match produces.
    public let captureNames: [String]
    /// The most steps a match may take on one line (`max_match_steps`).
    public let maxSteps: UInt32

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    public init(_ source: String, maxSteps: UInt32 = 100_000) throws(Invalid) {
        let regex: BoundedRegex
        do {
            regex = try BoundedRegex(source, maxSteps: maxSteps)
        } catch {
            throw Invalid(description: "'pattern' is not a valid regular expression: \(error)")
        }
        self.source = source
        self.maxSteps = maxSteps
        captureNames = regex.names.map(\.name)
        if captureNames.isEmpty {
            throw Invalid(description: "'pattern' has no named capture such as (?<temperature>[0-9.]+): nothing would become a field")
        }
    }

    /// Whether the pattern repeats a group that repeats without bound, like `(a+)+` (see
    /// ``BoundedRegex/hasNestedQuantifier(_:)``).
    public var hasNestedQuantifier: Bool { BoundedRegex.hasNestedQuantifier(source) }

    /// A compiled pattern, for one task.
    public struct Matcher {
        let regex: BoundedRegex

        /// Adds the captures of the first match in `line` to `fields` (a capture that took no part in the match is
        /// left out); says whether the line matched, did not, or was too costly to decide.
        func match(_ line: ArraySlice<UInt8>, into fields: inout Fields) -> BoundedRegex.Outcome {
            let outcome = regex.firstMatch(in: line)
            guard outcome == .matched else { return outcome }
            let base = line.startIndex
            for (name, group) in regex.names {
                if let range = regex.captured(group) {
                    fields.append(name, .string(String(decoding: line[(base + range.lowerBound)..<(base + range.upperBound)], as: UTF8.self)))
                }
            }
            return .matched
        }
    }

    public func matcher() throws -> Matcher {
        Matcher(regex: try BoundedRegex(source, maxSteps: maxSteps))
    }
}
