/// Environment-variable interpolation in scalar values: `${VAR}`, `${VAR:-default}`, `${VAR:?message}`,
/// and `$$` for a literal `$`.
///
/// Interpolation happens per scalar after parsing, not on the raw text, so a value can never inject YAML
/// structure and every error still points at the scalar that asked for the variable.
public struct Interpolator: Sendable {
    public var environment: [String: String]

    public init(environment: [String: String]) {
        self.environment = environment
    }

    /// Interpolates every scalar value (keys are left alone) and returns the errors found, all of them.
    public func interpolate(_ node: inout YAMLNode, file: String, errors: inout [YAMLError]) {
        switch node.kind {
        case .scalar(let value, let style):
            guard value.utf8.contains(UInt8(ascii: "$")) else { return }
            do {
                let result = try expand(value)
                // A plain scalar that came entirely from a variable keeps plain style, so `${PORT}` can be a number.
                node.kind = .scalar(result, style)
            } catch {
                errors.append(YAMLError(file: file, mark: node.mark, message: error.message))
            }
        case .sequence(var items):
            for index in items.indices { interpolate(&items[index], file: file, errors: &errors) }
            node.kind = .sequence(items)
        case .mapping(var pairs):
            for index in pairs.indices { interpolate(&pairs[index].value, file: file, errors: &errors) }
            node.kind = .mapping(pairs)
        }
    }

    public struct Failure: Error, Sendable {
        public var message: String
    }

    /// Expands one string.
    public func expand(_ text: String) throws(Failure) -> String {
        var output = ""
        var scalars = Substring(text)
        while let dollar = scalars.firstIndex(of: "$") {
            output += scalars[..<dollar]
            let afterDollar = scalars.index(after: dollar)
            guard afterDollar < scalars.endIndex else {
                output += "$"
                scalars = scalars[afterDollar...]
                break
            }
            if scalars[afterDollar] == "$" {
                output += "$"
                scalars = scalars[scalars.index(after: afterDollar)...]
                continue
            }
            guard scalars[afterDollar] == "{" else {
                output += "$"
                scalars = scalars[afterDollar...]
                continue
            }
            guard let close = scalars[afterDollar...].firstIndex(of: "}") else {
                throw Failure(message: "unterminated '${' in \"\(text)\"")
            }
            let body = scalars[scalars.index(after: afterDollar)..<close]
            output += try resolve(body)
            scalars = scalars[scalars.index(after: close)...]
        }
        output += scalars
        return output
    }

    private func resolve(_ body: Substring) throws(Failure) -> String {
        var name = body
        var fallback: Substring?
        var requiredMessage: Substring?
        if let colon = body.firstIndex(of: ":") {
            name = body[..<colon]
            let operatorStart = body.index(after: colon)
            guard operatorStart < body.endIndex else {
                throw Failure(message: "'${\(body)}' needs ':-default' or ':?message' after the colon")
            }
            let rest = body[body.index(after: operatorStart)...]
            switch body[operatorStart] {
            case "-": fallback = rest
            case "?": requiredMessage = rest
            default: throw Failure(message: "'${\(body)}' needs ':-default' or ':?message' after the colon")
            }
        }
        guard !name.isEmpty, name.allSatisfy({ $0 == "_" || $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
            throw Failure(message: "'${\(body)}' is not a valid environment variable name")
        }
        if let value = environment[String(name)], !value.isEmpty { return value }
        if let fallback { return String(fallback) }
        if let requiredMessage {
            let why = requiredMessage.isEmpty ? "is required" : String(requiredMessage)
            throw Failure(message: "environment variable \(name) is not set: \(why)")
        }
        if environment[String(name)] != nil { return "" }
        throw Failure(message: "environment variable \(name) is not set (use ${\(name):-default} for a default)")
    }
}
