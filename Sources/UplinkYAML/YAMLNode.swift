/// A position in a YAML file, 1-based, as editors show it.
public struct YAMLMark: Sendable, Hashable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "\(line):\(column)" }
}

/// How a scalar was written. Quoted scalars are always strings; plain ones may be numbers or booleans.
public enum YAMLScalarStyle: Sendable, Hashable {
    case plain, singleQuoted, doubleQuoted, literal, folded
}

/// One node of a parsed YAML document. Every node keeps the mark where it starts, so configuration
/// errors found long after parsing can still name `file:line:column`.
public struct YAMLNode: Sendable {
    public enum Kind: Sendable {
        case scalar(String, YAMLScalarStyle)
        case sequence([YAMLNode])
        case mapping([YAMLPair])
    }

    public var kind: Kind
    public var mark: YAMLMark
    /// The explicit tag (`!!str`, `!custom`), when one was written.
    public var tag: String?

    public init(_ kind: Kind, mark: YAMLMark, tag: String? = nil) {
        self.kind = kind
        self.mark = mark
        self.tag = tag
    }

    /// The scalar's text, or nil for collections.
    public var scalar: String? {
        if case .scalar(let value, _) = kind { return value }
        return nil
    }

    public var sequence: [YAMLNode]? {
        if case .sequence(let items) = kind { return items }
        return nil
    }

    public var mapping: [YAMLPair]? {
        if case .mapping(let pairs) = kind { return pairs }
        return nil
    }

    /// True for a plain `~`, `null`, `Null`, `NULL` or empty plain scalar.
    public var isNull: Bool {
        guard case .scalar(let value, .plain) = kind, tag == nil else { return false }
        return value.isEmpty || value == "~" || value == "null" || value == "Null" || value == "NULL"
    }

    /// The value for a string key of a mapping; the last one wins, as in most YAML loaders.
    public subscript(key: String) -> YAMLNode? {
        guard let pairs = mapping else { return nil }
        return pairs.last(where: { $0.key.scalar == key })?.value
    }

    /// A short name of the node's kind, for error messages ("a mapping", "a list", "a string").
    public var kindDescription: String {
        switch kind {
        case .scalar: return isNull ? "null" : "a scalar"
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        }
    }
}

/// A key and its value in a mapping, both nodes so both keep their marks.
public struct YAMLPair: Sendable {
    public var key: YAMLNode
    public var value: YAMLNode

    public init(key: YAMLNode, value: YAMLNode) {
        self.key = key
        self.value = value
    }
}

/// A problem found while reading YAML, located in its file.
public struct YAMLError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var mark: YAMLMark
    public var message: String

    public init(file: String, mark: YAMLMark, message: String) {
        self.file = file
        self.mark = mark
        self.message = message
    }

    public var description: String { "\(file):\(mark.line):\(mark.column): \(message)" }
}
