@testable import UplinkCore

/// The expression language of `filter`, `route` and `remap` (docs/expressions.md): what an operator writes in a
/// configuration, compiled at load and evaluated per record. Input: a record choice, then the expression's text,
/// then (after a NUL) an optional JSON object used as the record instead.
///
/// Properties: no crash (an integer overflow, a division by zero, a NaN, a huge `round` must be errors, not
/// traps); the typed fast path and the general closures give the same value or both fail (the fast path only
/// answers what it can answer exactly); `test` agrees with the value for a condition; a compile error's offset
/// lies inside the text.
enum ExpressionFuzz {
    /// Records with the values the fast path must hand back: extremes, NaN-prone floats, nulls, strings that look
    /// like numbers, nested objects and arrays.
    static let records: [Fields] = {
        func fields(_ pairs: [(String, Value)]) -> Fields {
            var fields = Fields()
            for (name, value) in pairs { fields[name] = value }
            return fields
        }
        return [
            fields([("a", .int(2)), ("b", .double(21.5)), ("s", .string("plant-4")), ("t", .bool(true))]),
            fields([("a", .int(.max)), ("b", .int(.min)), ("s", .string(" 42 ")), ("t", .null)]),
            fields([("a", .double(.infinity)), ("b", .double(-0.0)), ("s", .string("")), ("t", .bool(false))]),
            fields([("a", .double(1e308)), ("b", .int(0)), ("s", .string("4.9")), ("n", .null)]),
            fields([
                ("a", .array([.int(1), .string("x"), .null])),
                ("b", .object(fields([("c", .int(-1)), ("d", .double(0.1))]))), ("s", .string("ÿ\u{0}é")),
            ]),
            Fields(),
        ]
    }()

    static func run(_ data: UnsafeBufferPointer<UInt8>) {
        var input = FuzzInput(data)
        var fields = input.pick(records)
        let rest = input.rest
        let text: ArraySlice<UInt8>
        if let nul = rest.firstIndex(of: 0) {
            text = rest[..<nul]
            if case .object(let object)? = try? JSONReader.parse(rest[(nul + 1)...]) { fields = object }
        } else {
            text = rest
        }
        let source = String(decoding: text, as: UTF8.self)

        let expression: Expression
        do {
            expression = try Expression(source)
        } catch {
            require(error.offset >= 0 && error.offset <= source.utf8.count + 2, "a compile error outside the text: \(error.offset) in \(source.utf8.count) bytes")
            return
        }
        // `now()` differs between two evaluations: only that nothing crashes can be checked for it.
        let timeDependent = source.contains("now")
        let general = Result { try expression.evaluateGenerally(fields) }
        let fast = Result { try expression.evaluate(fields) }
        if timeDependent { _ = try? expression.test(fields); return }
        switch (general, fast) {
        case (.success(let expected), .success(let got)):
            require(same(expected, got), "the fast path gave \(got), the general form \(expected): \(source)")
        case (.failure(let expected), .failure(let got)):
            require("\(expected)" == "\(got)", "the fast path failed with \(got), the general form with \(expected): \(source)")
        case (.success(let expected), .failure(let got)):
            require(false, "the fast path failed (\(got)) where the general form gave \(expected): \(source)")
        case (.failure(let expected), .success(let got)):
            require(false, "the fast path gave \(got) where the general form failed (\(expected)): \(source)")
        }
        // A condition: `test` agrees with the value (true, false, or an error for anything else).
        let truth = Result { try expression.test(fields) }
        switch (general, truth) {
        case (.success(.bool(let flag)), .success(let tested)):
            require(flag == tested, "test gave \(tested), the value is \(flag): \(source)")
        case (.success(.bool), .failure(let error)):
            require(false, "test failed (\(error)) on a bool value: \(source)")
        case (.success(let value), .success(let tested)):
            require(false, "test gave \(tested) for a non-bool value \(value): \(source)")
        case (.failure(let error), .success(let tested)):
            require(false, "test gave \(tested) where the value failed (\(error)): \(source)")
        case (.success, .failure), (.failure, .failure):
            break
        }
    }

    /// Equal values, with floats compared by their bits where `==` cannot (NaN, -0.0 against 0.0).
    static func same(_ a: Value, _ b: Value) -> Bool {
        switch (a, b) {
        case (.double(let x), .double(let y)): return x.bitPattern == y.bitPattern || (x.isNaN && y.isNaN)
        case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
        default: return a == b
        }
    }
}
