import UplinkYAML

extension Value {
    /// A YAML node as a JSON value: plain scalars that look like JSON literals become numbers, booleans and
    /// null; quoted or tagged scalars stay strings, so `"007"` is the string an operator wrote and `007` the
    /// number 7. Mapping keys that are not scalars become "".
    ///
    /// - Parameter integerUnderscores: also read `131_072` as an integer, as config options do.
    public init(yaml node: YAMLNode, integerUnderscores: Bool = false) {
        switch node.kind {
        case .scalar(let text, let style):
            guard style == .plain, node.tag == nil else {
                self = .string(text)
                return
            }
            if node.isNull {
                self = .null
                return
            }
            switch text {
            case "true", "True", "TRUE":
                self = .bool(true)
                return
            case "false", "False", "FALSE":
                self = .bool(false)
                return
            default: break
            }
            if let integer = Int64(integerUnderscores ? text.replacingUnderscores : text) {
                self = .int(integer)
            } else if text.first.map({ $0.isNumber || $0 == "-" || $0 == "+" || $0 == "." }) == true,
                let number = Double(text), number.isFinite
            {
                self = .double(number)
            } else {
                self = .string(text)
            }
        case .sequence(let items):
            self = .array(items.map { Value(yaml: $0, integerUnderscores: integerUnderscores) })
        case .mapping(let pairs):
            var fields = Fields()
            for pair in pairs {
                fields[pair.key.scalar ?? ""] = Value(yaml: pair.value, integerUnderscores: integerUnderscores)
            }
            self = .object(fields)
        }
    }
}
