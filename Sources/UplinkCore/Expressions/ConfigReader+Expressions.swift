public import UplinkYAML

extension ConfigReader {
    /// Compiles the expression written in the option `name` (a condition when `condition` is true); a problem is
    /// reported at its `file:line:column` inside the expression. Nil when absent or invalid.
    public func expression(_ name: String, condition: Bool = false) -> Expression? {
        guard let node = value(name) else { return nil }
        return expression(in: node, label: prefix + name, condition: condition)
    }

    /// Compiles the expression written in `node` (for example one value of a `set:` or `routes:` mapping);
    /// `label` names it in messages.
    public func expression(in node: YAMLNode, label: String, condition: Bool = false) -> Expression? {
        guard case .scalar(let text, _) = node.kind else {
            diagnostics.error("'\(label)' must be an expression (a string), not \(node.kindDescription)", file: file, at: node.mark)
            return nil
        }
        do throws(ExpressionCompileError) {
            let expression = condition ? try Expression(condition: text) : try Expression(text)
            for warning in expression.warnings {
                diagnostics.warning(
                    "'\(label)': \(warning.message)", file: file, at: Self.mark(ofOffset: warning.offset, in: text, node: node))
            }
            return expression
        } catch {
            diagnostics.error(
                "'\(label)': \(error.message)", file: file, at: Self.mark(ofOffset: error.offset, in: text, node: node))
            return nil
        }
    }

    /// Where the character at `offset` (in Unicode scalars) of a scalar's value is written in the file.
    ///
    /// The node's mark is where the scalar starts (at its opening quote, if quoted). Quoting widens some
    /// characters: `''` in single quotes, `\"` `\\` `\n` `\t` in double quotes. In a block scalar (`|`, `>`) the
    /// value starts on the next line; the column is then counted from the block's indentation, which the parsed
    /// value no longer holds, so it is exact for the line and approximate for the column.
    static func mark(ofOffset offset: Int, in text: String, node: YAMLNode) -> YAMLMark {
        guard case .scalar(_, let style) = node.kind else { return node.mark }
        let scalars = Array(text.unicodeScalars.prefix(offset))
        switch style {
        case .plain:
            return YAMLMark(line: node.mark.line, column: node.mark.column + scalars.count)
        case .singleQuoted:
            let quotes = scalars.filter { $0 == "'" }.count
            return YAMLMark(line: node.mark.line, column: node.mark.column + 1 + scalars.count + quotes)
        case .doubleQuoted:
            var width = 0
            for scalar in scalars {
                switch scalar {
                case "\"", "\\", "\n", "\t", "\r": width += 2
                case _ where scalar.value < 0x20: width += 4
                default: width += 1
                }
            }
            return YAMLMark(line: node.mark.line, column: node.mark.column + 1 + width)
        case .literal, .folded:
            let lastNewline = scalars.lastIndex(of: "\n")
            let lines = scalars.filter { $0 == "\n" }.count
            let column = lastNewline.map { scalars.count - $0 - 1 } ?? scalars.count
            return YAMLMark(line: node.mark.line + 1 + lines, column: node.mark.column + 2 + column)
        }
    }
}
