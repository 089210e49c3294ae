extension Interpolator {
    /// The names of the environment variables `text` refers to (`${NAME}`, `${NAME:-default}`,
    /// `${NAME:?message}`), in order of appearance; `$$` is skipped. Malformed references are left out:
    /// ``expand(_:)`` reports them. Used to tell which variables feed secret options.
    public static func referencedVariables(in text: String) -> [String] {
        var names: [String] = []
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            let next = rest.index(after: dollar)
            guard next < rest.endIndex else { break }
            if rest[next] == "$" {
                rest = rest[rest.index(after: next)...]
                continue
            }
            guard rest[next] == "{", let close = rest[next...].firstIndex(of: "}") else {
                rest = rest[next...]
                continue
            }
            let body = rest[rest.index(after: next)..<close]
            let name = body.prefix { $0 != ":" }
            if !name.isEmpty, name.allSatisfy({ $0 == "_" || $0.isASCII && ($0.isLetter || $0.isNumber) }) {
                names.append(String(name))
            }
            rest = rest[rest.index(after: close)...]
        }
        return names
    }
}
