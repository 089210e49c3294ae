internal import CYAML

/// Parses YAML text with libyaml into a ``YAMLNode`` tree.
///
/// Anchors and aliases are resolved while parsing (an alias becomes a copy of its anchored node, keeping the
/// alias's own mark), and merge keys (`<<: *defaults`) are applied, so configuration readers never see them.
///
/// Bounded work: the document as expanded (every alias counted at the size of what it copies) may hold at most
/// ``maxExpandedNodes`` nodes and ``maxExpandedBytes`` bytes of scalars, so a "billion laughs" file of a few
/// hundred bytes is refused at the alias that crosses the limit, before anything is copied.
///
/// A key written twice in one mapping is an error (YAML says keys are unique); a key that a merge key (`<<`)
/// brings in is overridden by the mapping's own key without error, as the YAML 1.1 merge-key type says.
public enum YAMLParser {
    /// Parses the first document of `bytes`. An empty stream gives an empty mapping. The first problem found,
    /// a duplicate key included, is thrown.
    public static func parse(_ bytes: [UInt8], file: String) throws(YAMLError) -> YAMLNode {
        var problems: [YAMLError] = []
        let root = try parse(bytes, file: file, problems: &problems)
        if let first = problems.first { throw first }
        return root
    }

    /// Parses the first document of `bytes`, appending to `problems` what does not stop parsing (a key written
    /// twice: the first one is kept), so a loader can report all of them in one pass. Syntax errors and the
    /// expansion limits are thrown.
    public static func parse(_ bytes: [UInt8], file: String, problems: inout [YAMLError]) throws(YAMLError) -> YAMLNode {
        var builder = Builder(file: file, bytes: bytes)
        let root = try builder.parse(bytes)
        // In the order they are written (an inner mapping ends, and is checked, before the one around it).
        problems += builder.problems.sorted { ($0.mark.line, $0.mark.column) < ($1.mark.line, $1.mark.column) }
        return root
    }

    /// Parses a UTF-8 string; a convenience for tests and inline configs.
    public static func parse(_ text: String, file: String = "<inline>") throws(YAMLError) -> YAMLNode {
        try parse(Array(text.utf8), file: file)
    }

    /// The most nodes a document may hold once its aliases are expanded. A large pipeline has a few thousand.
    public static let maxExpandedNodes = 100_000
    /// The most bytes of scalars a document may hold once its aliases are expanded (the size limit of a
    /// configuration file).
    public static let maxExpandedBytes = 16 << 20
}

extension YAMLParser {
    /// How much of the expanded document a node stands for: itself and everything under it.
    fileprivate struct Size {
        var nodes = 0
        var bytes = 0

        static func += (total: inout Size, size: Size) {
            total.nodes &+= size.nodes
            total.bytes &+= size.bytes
        }
    }

    fileprivate struct Frame {
        var isMapping: Bool
        var mark: YAMLMark
        var tag: String?
        var anchor: String?
        var items: [YAMLNode] = []
        var size = Size(nodes: 1, bytes: 0)
    }

    fileprivate struct Builder {
        let file: String
        /// The text, to explain some of libyaml's errors by the byte they point at.
        let bytes: [UInt8]
        var anchors: [String: (node: YAMLNode, size: Size)] = [:]
        var stack: [Frame] = []
        var root: YAMLNode?
        var documents = 0
        /// The document's size so far, aliases counted at the size of what they copy.
        var expanded = Size()
        var problems: [YAMLError] = []

        init(file: String, bytes: [UInt8]) {
            self.file = file
            self.bytes = bytes
        }

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
            // libyaml says "found character that cannot start any token" for a tab where indentation goes.
            if mark.index < bytes.count, bytes[Int(mark.index)] == 0x09 {
                message = "a tab where indentation or a value should start: tabs are not allowed for indentation in YAML; use spaces"
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
                let size = Size(nodes: 1, bytes: scalar.length)
                try grow(by: size, at: mark)
                try add(node, size: size, anchor: Self.string(scalar.anchor))
            case YAML_ALIAS_EVENT:
                let name = Self.string(event.data.alias.anchor) ?? ""
                guard let (anchored, size) = anchors[name] else {
                    throw YAMLError(file: file, mark: mark, message: "unknown alias '*\(name)'")
                }
                // Counted before the copy: the copy itself is cheap (shared storage), but every later pass over
                // the tree (interpolation, conversion to values) pays for the expanded size.
                try grow(by: size, at: mark)
                var node = anchored
                node.mark = mark
                try add(node, size: size, anchor: nil)
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
                try grow(by: Size(nodes: 1, bytes: 0), at: frame.mark)
                let node: YAMLNode
                if frame.isMapping {
                    node = YAMLNode(.mapping(try pairs(of: frame)), mark: frame.mark, tag: frame.tag)
                } else {
                    node = YAMLNode(.sequence(frame.items), mark: frame.mark, tag: frame.tag)
                }
                try add(node, size: frame.size, anchor: frame.anchor)
            default:
                break
            }
            return false
        }

        /// Adds `size` to the expanded document, or refuses it past the limits.
        mutating func grow(by size: Size, at mark: YAMLMark) throws(YAMLError) {
            expanded += size
            if expanded.nodes > YAMLParser.maxExpandedNodes {
                throw YAMLError(
                    file: file, mark: mark,
                    message: "the document would hold more than \(YAMLParser.maxExpandedNodes) nodes once its aliases are expanded (aliases nested in aliases multiply); write the values out or use fewer levels of aliases")
            }
            if expanded.bytes > YAMLParser.maxExpandedBytes {
                throw YAMLError(
                    file: file, mark: mark,
                    message: "the document would hold more than \(YAMLParser.maxExpandedBytes >> 20) MiB of text once its aliases are expanded (aliases nested in aliases multiply)")
            }
        }

        mutating func add(_ node: YAMLNode, size: Size, anchor: String?) throws(YAMLError) {
            if let anchor { anchors[anchor] = (node, size) }
            if stack.isEmpty {
                root = node
            } else {
                stack[stack.count - 1].items.append(node)
                stack[stack.count - 1].size += size
            }
        }

        /// Pairs up a mapping's items and applies merge keys: explicit keys win over merged ones, and of
        /// several merged mappings the first wins, as the YAML merge-key spec says. A key written twice is a
        /// problem (recorded; the first one is kept).
        mutating func pairs(of frame: Frame) throws(YAMLError) -> [YAMLPair] {
            var explicit: [YAMLPair] = []
            var explicitKeys: [String: YAMLMark] = [:]
            var merged: [YAMLPair] = []
            var mergedKeys = Set<String>()
            var index = 0
            while index + 1 < frame.items.count {
                let key = frame.items[index]
                let value = frame.items[index + 1]
                index += 2
                if case .scalar("<<", .plain) = key.kind, key.tag == nil {
                    let sources: [YAMLNode] = value.sequence ?? [value]
                    for source in sources {
                        guard let sourcePairs = source.mapping else {
                            throw YAMLError(file: file, mark: source.mark, message: "a merge key '<<' takes a mapping or a list of mappings")
                        }
                        for pair in sourcePairs {
                            if let name = pair.key.scalar, !mergedKeys.insert(name).inserted { continue }
                            merged.append(pair)
                        }
                    }
                    continue
                }
                if let name = key.scalar {
                    if let first = explicitKeys[name] {
                        problems.append(
                            YAMLError(
                                file: file, mark: key.mark,
                                message: "key '\(name)' is written twice in this mapping (first at line \(first.line), column \(first.column)); YAML keys are unique"))
                        continue
                    }
                    explicitKeys[name] = key.mark
                }
                explicit.append(YAMLPair(key: key, value: value))
            }
            if merged.isEmpty { return explicit }
            let inherited = merged.filter { pair in explicitKeys[pair.key.scalar ?? ""] == nil }
            return inherited + explicit
        }
    }
}
