extension Topology {
    /// The pipeline as a Graphviz DOT digraph: sources as boxes, transforms as ellipses, sinks as
    /// double octagons; each edge labelled with the kind of events it carries.
    public var dot: String {
        var lines = ["digraph uplink {", "  rankdir=LR;"]
        for node in nodes {
            let shape: String
            switch node.role {
            case .source: shape = "box"
            case .transform: shape = "ellipse"
            case .sink: shape = "doubleoctagon"
            }
            lines.append("  \"\(Self.escape(node.id))\" [shape=\(shape), label=\"\(Self.escape(node.id))\\n(\(Self.escape(node.type)))\"];")
        }
        for node in nodes {
            for input in node.inputReferences {
                let label = Self.escape(edgeLabel(input))
                lines.append("  \"\(Self.escape(input.id))\" -> \"\(Self.escape(node.id))\" [label=\"\(label)\"];")
            }
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }

    /// The pipeline as a Mermaid flowchart, for Markdown documents.
    public var mermaid: String {
        var lines = ["flowchart LR"]
        var names: [String: String] = [:]
        for (index, node) in nodes.enumerated() {
            let name = "n\(index)"
            names[node.id] = name
            let label = "\(node.id)<br/>(\(node.type))".replacingQuotes
            switch node.role {
            case .source: lines.append("  \(name)[\"\(label)\"]")
            case .transform: lines.append("  \(name)([\"\(label)\"])")
            case .sink: lines.append("  \(name)[[\"\(label)\"]]")
            }
        }
        for node in nodes {
            for input in node.inputReferences {
                guard let from = names[input.id], let to = names[node.id] else { continue }
                lines.append("  \(from) -->|\(edgeLabel(input).replacingQuotes)| \(to)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The kind of events on an edge, after the output's name when it leaves a named output (`alarms: record`).
    private func edgeLabel(_ input: InputReference) -> String {
        let kind = node(input.id)?.outputKind?.rawValue ?? "?"
        return input.output.map { "\($0): \(kind)" } ?? kind
    }

    private static func escape(_ text: String) -> String {
        var result = ""
        for character in text {
            if character == "\"" || character == "\\" { result.append("\\") }
            result.append(character)
        }
        return result
    }
}

extension String {
    fileprivate var replacingQuotes: String { String(map { $0 == "\"" ? "'" : $0 }) }
}
