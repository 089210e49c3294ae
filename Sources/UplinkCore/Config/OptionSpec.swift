/// One option of a plugin: the static table that feeds `uplink plugins`, the unknown-key check and the docs,
/// as Fluent Bit's `config_map` does.
public struct OptionSpec: Sendable {
    public indirect enum ValueType: Sendable {
        case string
        case int
        case float
        case bool
        /// `500ms`, `2s`, `1m`, `1h`.
        case duration
        /// `131072`, `128KiB`, `1MB`.
        case size
        case stringList
        /// A list of strings of one kind: `.list(of: "field names")` prints `list of field names`.
        case list(of: String)
        case enumeration([String])
        /// A nested mapping with its own options.
        case mapping([OptionSpec])
        /// A mapping of free keys with values of one kind, as `uplink plugins` names them: `.map(key: "field
        /// name", value: "expression")` prints `map of field name to expression`.
        case map(key: String, value: String)
        /// Either of two shapes, for example a map or a list: `map of … to field name, or list of field names`.
        case either(ValueType, ValueType)
        /// Anything; the plugin validates it. Built-in plugins say what they take instead (a test checks).
        case any

        public var displayName: String {
            switch self {
            case .string: return "string"
            case .int: return "integer"
            case .float: return "number"
            case .bool: return "bool"
            case .duration: return "duration"
            case .size: return "size"
            case .stringList: return "list of strings"
            case .list(let items): return "list of \(items)"
            case .enumeration(let values): return values.joined(separator: " | ")
            case .mapping: return "mapping"
            case .map(let key, let value): return "map of \(key) to \(value)"
            case .either(let first, let second): return "\(first.displayName), or \(second.displayName)"
            case .any: return "any"
            }
        }
    }

    public var name: String
    public var type: ValueType
    public var defaultValue: String?
    public var required: Bool
    /// A secret may also be given as `NAME_file: /path`, read at load time and never printed.
    public var secret: Bool
    public var description: String
    /// Names the option had before: still read, with a warning that says which name to use.
    public var deprecatedNames: [String]

    public init(
        _ name: String,
        _ type: ValueType,
        default defaultValue: String? = nil,
        required: Bool = false,
        secret: Bool = false,
        deprecatedNames: [String] = [],
        _ description: String
    ) {
        self.deprecatedNames = deprecatedNames
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.required = required
        self.secret = secret
        self.description = description
    }
}
