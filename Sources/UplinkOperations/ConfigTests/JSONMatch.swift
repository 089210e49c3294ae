public import UplinkCore
public import UplinkYAML

/// Comparisons of `uplink test` expectations with actual JSON: `expected` is a subset of `actual`.
public enum JSONMatch {
    /// Nil when `actual` contains `expected`: every key of an expected object is in the actual one with a
    /// matching value (other keys are ignored), arrays match element by element with the same length, numbers
    /// compare by value (26 matches 26.0), everything else is equal. Otherwise where and how they differ.
    public static func mismatch(expected: Value, actual: Value, path: String = "$") -> String? {
        switch (expected, actual) {
        case (.object(let wanted), .object(let found)):
            for field in wanted {
                guard let value = found[field.name] else { return "\(path).\(field.name): missing" }
                if let problem = mismatch(expected: field.value, actual: value, path: path + "." + field.name) {
                    return problem
                }
            }
            return nil
        case (.array(let wanted), .array(let found)):
            guard wanted.count == found.count else {
                return "\(path): expected \(wanted.count) items, got \(found.count)"
            }
            for (index, (left, right)) in zip(wanted, found).enumerated() {
                if let problem = mismatch(expected: left, actual: right, path: "\(path)[\(index)]") { return problem }
            }
            return nil
        case (.int(let left), .double(let right)) where Double(left) == right: return nil
        case (.double(let left), .int(let right)) where left == Double(right): return nil
        default:
            return expected == actual ? nil : "\(path): expected \(expected.jsonText), got \(actual.jsonText)"
        }
    }

    /// A YAML node as a JSON value (see `Value.init(yaml:)`): `"007"` is a string, `007` the number 7.
    public static func value(_ node: YAMLNode) -> Value {
        Value(yaml: node)
    }
}
