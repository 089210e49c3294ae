import UplinkYAML

/// Canonical text of a YAML subtree: what it says, not where. Two nodes with the same text configure the
/// same thing, which is how a reload tells an unchanged component from a changed one.
enum Fingerprint {
    static func canonical(_ node: YAMLNode, skippingKeys skipped: Set<String> = []) -> String {
        var text = ""
        append(node, to: &text, skipping: skipped)
        return text
    }

    private static func append(_ node: YAMLNode, to text: inout String, skipping skipped: Set<String>) {
        if let tag = node.tag { text += "!\(tag.utf8.count):\(tag)" }
        switch node.kind {
        case .scalar(let value, let style):
            // Quoting decides whether `5` is a number or a string; block styles are strings like quotes.
            text += style == .plain ? "p" : "q"
            text += "\(value.utf8.count):\(value)"
        case .sequence(let items):
            text += "[\(items.count)"
            for item in items { append(item, to: &text, skipping: []) }
            text += "]"
        case .mapping(let pairs):
            // Later duplicates win when options are read, so only the last value of a key counts.
            var last: [String: YAMLNode] = [:]
            var others: [YAMLPair] = []
            for pair in pairs {
                if let key = pair.key.scalar { last[key] = pair.value } else { others.append(pair) }
            }
            text += "{"
            for key in last.keys.sorted() where !skipped.contains(key) {
                text += "\(key.utf8.count):\(key)="
                append(last[key]!, to: &text, skipping: [])
            }
            for pair in others {
                append(pair.key, to: &text, skipping: [])
                text += "="
                append(pair.value, to: &text, skipping: [])
            }
            text += "}"
        }
    }
}
