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
        case enumeration([String])
        /// A nested mapping with its own options.
        case mapping([OptionSpec])
        /// A mapping of free keys (for example `env:` of a command) with string values.
        case stringMap
        /// Anything; the plugin validates it.
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
            case .enumeration(let values): return values.joined(separator: " | ")
            case .mapping: return "mapping"
            case .stringMap: return "mapping of strings"
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
