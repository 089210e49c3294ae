public import UplinkCore
public import UplinkYAML

/// One test of a `tests:` list: events fed to a chain of transforms, and conditions on what comes out.
///
/// ```yaml
/// tests:
///   - name: a CSV reading becomes one property post
///     input:
///       lines: ["1524448722000,26.5,57"]   # raw events; or records: [{temp: 26.5}]; or messages: [{topic: /a, body: x}]
///       timestamp: 1524448722000           # when the events were "read" (ms); this is the default
///     through: [readings, properties]     # transforms run in this order; `component: readings` for one
///     expect:
///       count: 1                           # events leaving the last one
///       dropped: 0                         # events the transforms dropped (dead letters included)
///       events:                            # conditions on the first events, in order
///         - topic: /$system/abcdefgh12345678/device001/tmodel/property/post
///           json: {Params: {temp: {Value: 26.5}}}   # the event's JSON contains this
///       all:                               # conditions every event meets
///         contains: '"hum"'
/// ```
///
/// Conditions: `json` (subset match: extra keys are ignored), `text` (the whole one-line text), `contains`
/// (a substring or a list of them), `not_contains`, `topic` (messages).
public struct ConfigTestCase: Sendable {
    public enum Input: Sendable {
        case lines([String])
        case records([Fields])
        case messages([(topic: String?, body: [UInt8])])

        var kind: EventKind {
            switch self {
            case .lines: return .raw
            case .records: return .record
            case .messages: return .message
            }
        }

        var count: Int {
            switch self {
            case .lines(let lines): return lines.count
            case .records(let records): return records.count
            case .messages(let messages): return messages.count
            }
        }
    }

    /// What one event must satisfy.
    public struct Condition: Sendable {
        public var topic: String?
        public var text: String?
        public var contains: [String] = []
        public var notContains: [String] = []
        public var json: Value?

        public init() {}

        /// The condition as the user wrote it, for failure reports.
        var description: String {
            var parts: [String] = []
            if let topic { parts.append("topic: \(topic)") }
            if let text { parts.append("text: \(text)") }
            for piece in contains { parts.append("contains: \(piece)") }
            for piece in notContains { parts.append("not_contains: \(piece)") }
            if let json { parts.append("json: \(json.jsonText)") }
            return parts.joined(separator: ", ")
        }
    }

    public var name: String
    public var file: String
    public var mark: YAMLMark
    public var input: Input
    public var timestamp: Int64
    /// Transform ids, in order.
    public var through: [String]
    public var expectedCount: Int?
    public var expectedDropped: Int?
    public var events: [Condition]
    public var all: Condition?

    /// The default `input.timestamp`: fixed, so outputs with a time field are the same on every run.
    public static let defaultTimestamp: Int64 = 1_524_448_722_000

    /// Reads the `tests:` lists of a configuration, reporting located errors for what it cannot read.
    public static func parse(_ nodes: [ConfigTestsNode], diagnostics: DiagnosticCollector) -> [ConfigTestCase] {
        var cases: [ConfigTestCase] = []
        for tests in nodes {
            guard let items = tests.node.sequence else {
                diagnostics.error(
                    "'tests' must be a list of tests, each with name, input, through (or component) and expect",
                    file: tests.file, at: tests.node.mark)
                continue
            }
            for item in items {
                if let parsed = parse(item, file: tests.file, diagnostics: diagnostics) { cases.append(parsed) }
            }
        }
        return cases
    }

    static let keys = ["name", "input", "through", "component", "expect"]
    static let inputKeys = ["lines", "records", "messages", "timestamp"]
    static let expectKeys = ["count", "dropped", "events", "all"]
    static let conditionKeys = ["topic", "text", "contains", "not_contains", "json"]

    static func parse(_ node: YAMLNode, file: String, diagnostics: DiagnosticCollector) -> ConfigTestCase? {
        let before = diagnostics.diagnostics.filter({ $0.severity == .error }).count
        func error(_ message: String, _ at: YAMLNode) { diagnostics.error(message, file: file, at: at.mark) }
        guard node.mapping != nil else {
            error("a test must be a mapping with name, input, through (or component) and expect", node)
            return nil
        }
        checkKeys(node, allowed: keys, prefix: "", file: file, diagnostics: diagnostics)
        let name = node["name"]?.scalar ?? "test at line \(node.mark.line)"
        if node["name"] == nil { error("a test needs a 'name'", node) }

        var through: [String] = []
        if let list = node["through"] {
            if let items = list.sequence, !items.isEmpty, items.allSatisfy({ $0.scalar != nil }) {
                through = items.compactMap(\.scalar)
            } else {
                error("'through' must be a non-empty list of transform ids, in the order events pass them", list)
            }
            if node["component"] != nil { error("give either 'through' or 'component', not both", node["component"]!) }
        } else if let component = node["component"] {
            if let id = component.scalar { through = [id] } else { error("'component' must be a transform id", component) }
        } else {
            error("test '\(name)' needs 'through: [ids]' or 'component: id': the transforms to run", node)
        }

        var input = Input.lines([])
        var timestamp = defaultTimestamp
        if let inputNode = node["input"], inputNode.mapping != nil {
            checkKeys(inputNode, allowed: inputKeys, prefix: "input.", file: file, diagnostics: diagnostics)
            let given = ["lines", "records", "messages"].filter { inputNode[$0] != nil }
            if given.count != 1 {
                error("'input' needs exactly one of lines, records or messages", inputNode)
            } else if let lines = inputNode["lines"] {
                if let items = lines.sequence, items.allSatisfy({ $0.scalar != nil }) {
                    input = .lines(items.compactMap(\.scalar))
                } else {
                    error("'input.lines' must be a list of strings", lines)
                }
            } else if let records = inputNode["records"] {
                var fields: [Fields] = []
                for item in records.sequence ?? [] {
                    if case .object(let object) = JSONMatch.value(item) { fields.append(object) } else {
                        error("each of 'input.records' must be a mapping of fields", item)
                    }
                }
                if records.sequence == nil { error("'input.records' must be a list of mappings", records) }
                input = .records(fields)
            } else if let messages = inputNode["messages"] {
                var parsed: [(topic: String?, body: [UInt8])] = []
                for item in messages.sequence ?? [] {
                    guard item.mapping != nil, let body = item["body"] else {
                        error("each of 'input.messages' must be a mapping with 'body' (and 'topic')", item)
                        continue
                    }
                    // A mapping or list body is sent as its JSON; a scalar as its text.
                    let bytes: [UInt8] = body.scalar.map { Array($0.utf8) } ?? Array(JSONMatch.value(body).jsonText.utf8)
                    parsed.append((item["topic"]?.scalar, bytes))
                }
                if messages.sequence == nil { error("'input.messages' must be a list", messages) }
                input = .messages(parsed)
            }
            if let time = inputNode["timestamp"] {
                if let text = time.scalar, let value = Int64(text) { timestamp = value } else {
                    error("'input.timestamp' must be milliseconds since the Unix epoch", time)
                }
            }
        } else {
            error("test '\(name)' needs 'input' with lines, records or messages", node["input"] ?? node)
        }

        var expectedCount: Int?
        var expectedDropped: Int?
        var events: [Condition] = []
        var all: Condition?
        if let expect = node["expect"], expect.mapping != nil {
            checkKeys(expect, allowed: expectKeys, prefix: "expect.", file: file, diagnostics: diagnostics)
            for (key, target) in [("count", 0), ("dropped", 1)] {
                guard let value = expect[key] else { continue }
                if let text = value.scalar, let number = Int(text), number >= 0 {
                    if target == 0 { expectedCount = number } else { expectedDropped = number }
                } else {
                    error("'expect.\(key)' must be a number of events", value)
                }
            }
            if let list = expect["events"] {
                if let items = list.sequence {
                    events = items.compactMap { condition($0, prefix: "expect.events.", file: file, diagnostics: diagnostics) }
                } else {
                    error("'expect.events' must be a list of conditions, one per event in order", list)
                }
            }
            if let every = expect["all"] { all = condition(every, prefix: "expect.all.", file: file, diagnostics: diagnostics) }
            if expectedCount == nil && expectedDropped == nil && events.isEmpty && all == nil {
                error("'expect' needs at least one of count, dropped, events or all", expect)
            }
        } else {
            error("test '\(name)' needs 'expect' with count, dropped, events or all", node["expect"] ?? node)
        }
        guard diagnostics.diagnostics.filter({ $0.severity == .error }).count == before else { return nil }
        return ConfigTestCase(
            name: name, file: file, mark: node.mark, input: input, timestamp: timestamp, through: through,
            expectedCount: expectedCount, expectedDropped: expectedDropped, events: events, all: all)
    }

    static func condition(_ node: YAMLNode, prefix: String, file: String, diagnostics: DiagnosticCollector) -> Condition? {
        guard node.mapping != nil else {
            diagnostics.error(
                "a condition must be a mapping of \(conditionKeys.joined(separator: ", "))", file: file, at: node.mark)
            return nil
        }
        checkKeys(node, allowed: conditionKeys, prefix: prefix, file: file, diagnostics: diagnostics)
        var condition = Condition()
        condition.topic = node["topic"]?.scalar
        condition.text = node["text"]?.scalar
        for (key, path) in [("contains", \Condition.contains), ("not_contains", \Condition.notContains)] {
            guard let value = node[key] else { continue }
            if let text = value.scalar {
                condition[keyPath: path] = [text]
            } else if let items = value.sequence, items.allSatisfy({ $0.scalar != nil }) {
                condition[keyPath: path] = items.compactMap(\.scalar)
            } else {
                diagnostics.error("'\(prefix)\(key)' must be a string or a list of strings", file: file, at: value.mark)
            }
        }
        if let json = node["json"] { condition.json = JSONMatch.value(json) }
        return condition
    }

    static func checkKeys(
        _ node: YAMLNode, allowed: [String], prefix: String, file: String, diagnostics: DiagnosticCollector
    ) {
        for pair in node.mapping ?? [] {
            guard let key = pair.key.scalar, !allowed.contains(key) else { continue }
            var message = "unknown key '\(prefix)\(key)'"
            if let hint = ValueParsing.suggestion(for: key, among: allowed) {
                message += "; did you mean '\(prefix)\(hint)'?"
            } else {
                message += " (\(allowed.joined(separator: ", ")))"
            }
            diagnostics.error(message, file: file, at: pair.key.mark)
        }
    }
}
