internal import CYAML

/// Parses YAML text with libyaml into a ``YAMLNode`` tree.
///
/// Anchors and aliases are resolved while parsing (an alias becomes a copy of its anchored node, keeping the
/// alias's own mark), and merge keys (`<<: *defaults`) are applied, so configuration readers never see them.
public enum YAMLParser {
    /// Parses the first document of `bytes`. An empty stream gives an empty mapping.
    public static func parse(_ bytes: [UInt8], file: String) throws(YAMLError) -> YAMLNode {
        var builder = Builder(file: file)
        return try builder.parse(bytes)
    }

    /// Parses a UTF-8 string; a convenience for tests and inline configs.
    public static func parse(_ text: String, file: String = "<inline>") throws(YAMLError) -> YAMLNode {
        try parse(Array(text.utf8), file: file)
    }

    /// The most aliases one document may expand, so a "billion laughs" file cannot exhaust memory.
    static let maxAliasExpansions = 10_000
}

extension YAMLParser {
    fileprivate struct Frame {
        var isMapping: Bool
        var mark: YAMLMark
        var tag: String?
        var anchor: String?
        var items: [YAMLNode] = []
    }

    fileprivate struct Builder {
        let file: String
        var anchors: [String: YAMLNode] = [:]
        var stack: [Frame] = []
        var root: YAMLNode?
        var documents = 0
        var aliasExpansions = 0

        init(file: String) { self.file = file }

        mutating func parse(_ bytes: [UInt8]) throws(YAMLError) -> YAMLNode {
            var parser = yaml_parser_t()
            guard yaml_parser_initialize(&parser) == 1 else {
                throw YAMLError(file: file, mark: YAMLMark(line: 1, column: 1), message: "cannot initialise the YAML parser")
            }
            defer { yaml_parser_delete(&parser) }
            // An empty buffer still needs a valid pointer for libyaml.
            let storage = bytes.isEmpty ? [0] : bytes
            return try storage.withUnsafeBufferPointer { (buffer) throws(YAMLError) -> YAMLNode in
                yaml_parser_set_input_string(&parser, buffer.baseAddress, bytes.count)
                var done = false
                while !done {
                    var event = yaml_event_t()
                    guard yaml_parser_parse(&parser, &event) == 1 else {
                        throw parserError(parser)
                    }
                    defer { yaml_event_delete(&event) }
                    done = try handle(&event)
                }
                return root ?? YAMLNode(.mapping([]), mark: YAMLMark(line: 1, column: 1))
            }
        }

        func parserError(_ parser: yaml_parser_t) -> YAMLError {
            let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
            let mark = parser.problem_mark
            var message = problem
            if let context = parser.context.map({ String(cString: $0) }) {
                message = "\(problem) \(context)"
            }
            return YAMLError(
                file: file,
                mark: YAMLMark(line: Int(mark.line) + 1, column: Int(mark.column) + 1),
                message: message
            )
        }

        static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
            guard let pointer else { return nil }
            return String(cString: UnsafeRawPointer(pointer).assumingMemoryBound(to: CChar.self))
        }

        /// Returns true at the end of the stream.
        mutating func handle(_ event: inout yaml_event_t) throws(YAMLError) -> Bool {
            let mark = YAMLMark(line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1)
            switch event.type {
            case YAML_STREAM_END_EVENT:
                return true
            case YAML_DOCUMENT_START_EVENT:
                documents += 1
                if documents > 1 {
                    throw YAMLError(file: file, mark: mark, message: "only one YAML document per file is supported")
                }
            case YAML_SCALAR_EVENT:
                let scalar = event.data.scalar
                let value: String
                if let pointer = scalar.value {
                    let buffer = UnsafeBufferPointer(start: pointer, count: scalar.length)
                    value = String(decoding: buffer, as: UTF8.self)
                } else {
                    value = ""
                }
                let style: YAMLScalarStyle
                switch scalar.style {
                case YAML_SINGLE_QUOTED_SCALAR_STYLE: style = .singleQuoted
                case YAML_DOUBLE_QUOTED_SCALAR_STYLE: style = .doubleQuoted
                case YAML_LITERAL_SCALAR_STYLE: style = .literal
                case YAML_FOLDED_SCALAR_STYLE: style = .folded
                default: style = .plain
                }
                let node = YAMLNode(.scalar(value, style), mark: mark, tag: Self.string(scalar.tag))
                try add(node, anchor: Self.string(scalar.anchor))
            case YAML_ALIAS_EVENT:
                let name = Self.string(event.data.alias.anchor) ?? ""
                guard var node = anchors[name] else {
                    throw YAMLError(file: file, mark: mark, message: "unknown alias '*\(name)'")
                }
                aliasExpansions += 1
                if aliasExpansions > YAMLParser.maxAliasExpansions {
                    throw YAMLError(file: file, mark: mark, message: "too many alias expansions")
                }
                node.mark = mark
                try add(node, anchor: nil)
            case YAML_SEQUENCE_START_EVENT:
                let start = event.data.sequence_start
                stack.append(
                    Frame(isMapping: false, mark: mark, tag: Self.string(start.tag), anchor: Self.string(start.anchor))
                )
            case YAML_MAPPING_START_EVENT:
                let start = event.data.mapping_start
                stack.append(
                    Frame(isMapping: true, mark: mark, tag: Self.string(start.tag), anchor: Self.string(start.anchor))
                )
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                let frame = stack.removeLast()
                let node: YAMLNode
                if frame.isMapping {
                    node = YAMLNode(.mapping(try pairs(of: frame)), mark: frame.mark, tag: frame.tag)
                } else {
                    node = YAMLNode(.sequence(frame.items), mark: frame.mark, tag: frame.tag)
                }
                try add(node, anchor: frame.anchor)
            default:
                break
            }
            return false
        }

        mutating func add(_ node: YAMLNode, anchor: String?) throws(YAMLError) {
            if let anchor { anchors[anchor] = node }
            if stack.isEmpty {
                root = node
            } else {
                stack[stack.count - 1].items.append(node)
            }
        }

        /// Pairs up a mapping's items and applies merge keys: explicit keys win over merged ones, and of
        /// several merged mappings the first wins, as the YAML merge-key spec says.
        func pairs(of frame: Frame) throws(YAMLError) -> [YAMLPair] {
            var explicit: [YAMLPair] = []
            var merged: [YAMLPair] = []
            var index = 0
            while index + 1 < frame.items.count {
                let key = frame.items[index]
                let value = frame.items[index + 1]
                index += 2
                if case .scalar("<<", .plain) = key.kind {
                    let sources: [YAMLNode] = value.sequence ?? [value]
                    for source in sources {
                        guard let sourcePairs = source.mapping else {
                            throw YAMLError(file: file, mark: source.mark, message: "a merge key '<<' takes a mapping or a list of mappings")
                        }
                        for pair in sourcePairs where !merged.contains(where: { $0.key.scalar == pair.key.scalar }) {
                            merged.append(pair)
                        }
                    }
                    continue
                }
                explicit.append(YAMLPair(key: key, value: value))
            }
            let inherited = merged.filter { pair in !explicit.contains(where: { $0.key.scalar == pair.key.scalar }) }
            return inherited + explicit
        }
    }
}
