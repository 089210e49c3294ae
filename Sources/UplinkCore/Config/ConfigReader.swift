public import UplinkYAML

/// Reads a component's options from its YAML mapping into typed values.
///
/// Every accessor records a located diagnostic instead of throwing, and returns nil or the default, so one
/// pass reports every problem. ``finish()`` reports keys the plugin does not declare (with a "did you mean"
/// hint): a typo is never silently ignored.
public struct ConfigReader {
    public let node: YAMLNode
    public let file: String
    public let options: [OptionSpec]
    public let diagnostics: DiagnosticCollector
    /// Keys the engine handles for every component (`type`, `inputs`, `buffer`), allowed besides `options`.
    let engineKeys: Set<String>
    /// A dotted prefix for nested mappings, so messages say `buffer.max_events`.
    let prefix: String

    public init(
        node: YAMLNode,
        file: String,
        options: [OptionSpec],
        diagnostics: DiagnosticCollector,
        engineKeys: Set<String> = [],
        prefix: String = ""
    ) {
        self.node = node
        self.file = file
        self.options = options
        self.diagnostics = diagnostics
        self.engineKeys = engineKeys
        self.prefix = prefix
    }

    // MARK: Diagnostics

    /// Records an error at the option's value (or at the component when the option is absent).
    public func error(_ message: String, at name: String? = nil) {
        let mark = name.flatMap { pair(named: $0)?.value.mark } ?? node.mark
        diagnostics.error(message, file: file, at: mark)
    }

    public func warning(_ message: String, at name: String? = nil) {
        let mark = name.flatMap { pair(named: $0)?.value.mark } ?? node.mark
        diagnostics.warning(message, file: file, at: mark)
    }

    /// Reports undeclared keys and missing required options. Call once after reading.
    public func finish() {
        guard let pairs = node.mapping else { return }
        var known = Set(options.map(\.name)).union(engineKeys)
        for option in options where option.secret { known.insert(option.name + "_file") }
        var renamed: [String: String] = [:]
        for option in options {
            for old in option.deprecatedNames { renamed[old] = option.name }
        }
        var seen = Set<String>()
        for pair in pairs {
            guard let key = pair.key.scalar else {
                diagnostics.error("option names must be strings", file: file, at: pair.key.mark)
                continue
            }
            if !seen.insert(key).inserted {
                diagnostics.error("option '\(prefix)\(key)' is set twice", file: file, at: pair.key.mark)
            }
            if let current = renamed[key] {
                if pairs.contains(where: { $0.key.scalar == current }) {
                    diagnostics.error(
                        "option '\(prefix)\(key)' is the former name of '\(prefix)\(current)', which is set too: keep '\(prefix)\(current)'",
                        file: file, at: pair.key.mark)
                } else {
                    diagnostics.warning(
                        "option '\(prefix)\(key)' is deprecated: it is now called '\(prefix)\(current)'", file: file,
                        at: pair.key.mark)
                }
            } else if !known.contains(key) {
                var message = "unknown option '\(prefix)\(key)'"
                if let hint = ValueParsing.suggestion(for: key, among: known) {
                    message += "; did you mean '\(prefix)\(hint)'?"
                } else {
                    let names = options.map(\.name).sorted().joined(separator: ", ")
                    message += names.isEmpty ? "; this component takes no options" : " (options: \(names))"
                }
                diagnostics.error(message, file: file, at: pair.key.mark)
            }
        }
        for option in options where option.required {
            if pair(named: option.name) == nil && !(option.secret && pair(named: option.name + "_file") != nil) {
                let hint = option.secret ? " (or '\(prefix)\(option.name)_file')" : ""
                diagnostics.error(
                    "missing required option '\(prefix)\(option.name)'\(hint): \(option.description)",
                    file: file, at: node.mark)
            }
        }
    }

    // MARK: Raw access

    /// The option's entry, under its name or else under a former one (``OptionSpec/deprecatedNames``).
    func pair(named name: String) -> YAMLPair? {
        guard let pairs = node.mapping else { return nil }
        if let pair = pairs.last(where: { $0.key.scalar == name }) { return pair }
        guard let former = options.first(where: { $0.name == name })?.deprecatedNames, !former.isEmpty else { return nil }
        return pairs.last(where: { $0.key.scalar.map(former.contains) ?? false })
    }

    /// The raw node of an option, nil when absent or null.
    public func value(_ name: String) -> YAMLNode? {
        guard let value = pair(named: name)?.value, !value.isNull else { return nil }
        return value
    }

    public func contains(_ name: String) -> Bool { value(name) != nil }

    private func scalar(_ name: String, expected: String) -> (String, YAMLNode)? {
        guard let node = value(name) else { return nil }
        guard let text = node.scalar else {
            error("option '\(prefix)\(name)' must be \(expected), not \(node.kindDescription)", at: name)
            return nil
        }
        return (text, node)
    }

    // MARK: Typed accessors

    public func string(_ name: String) -> String? {
        scalar(name, expected: "a string")?.0
    }

    public func string(_ name: String, default fallback: String) -> String {
        string(name) ?? fallback
    }

    /// A secret given inline (usually `${ENV}`) or as `NAME_file: /path`; the file's trailing newline is dropped.
    public func secret(_ name: String) -> String? {
        if let inline = string(name) { return inline }
        guard let path = string(name + "_file") else { return nil }
        do {
            var bytes = try FileIO.readFile(path, limit: 64 * 1024)
            while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
            return String(decoding: bytes, as: UTF8.self)
        } catch {
            self.error("cannot read '\(prefix)\(name)_file' \(path): \(error)", at: name + "_file")
            return nil
        }
    }

    public func int(_ name: String, range: ClosedRange<Int>? = nil) -> Int? {
        guard let (text, _) = scalar(name, expected: "an integer") else { return nil }
        guard let number = Int(text.replacingUnderscores) else {
            error("option '\(prefix)\(name)' must be an integer, got '\(text)'", at: name)
            return nil
        }
        if let range, !range.contains(number) {
            error("option '\(prefix)\(name)' must be between \(range.lowerBound) and \(range.upperBound), got \(number)", at: name)
            return nil
        }
        return number
    }

    public func int(_ name: String, default fallback: Int, range: ClosedRange<Int>? = nil) -> Int {
        int(name, range: range) ?? fallback
    }

    public func double(_ name: String) -> Double? {
        guard let (text, _) = scalar(name, expected: "a number") else { return nil }
        guard let number = Double(text), number.isFinite else {
            error("option '\(prefix)\(name)' must be a number, got '\(text)'", at: name)
            return nil
        }
        return number
    }

    public func bool(_ name: String) -> Bool? {
        guard let (text, _) = scalar(name, expected: "true or false") else { return nil }
        switch text {
        case "true", "True", "TRUE", "yes", "on": return true
        case "false", "False", "FALSE", "no", "off": return false
        default:
            error("option '\(prefix)\(name)' must be true or false, got '\(text)'", at: name)
            return nil
        }
    }

    public func bool(_ name: String, default fallback: Bool) -> Bool { bool(name) ?? fallback }

    public func duration(_ name: String) -> Duration? {
        guard let (text, _) = scalar(name, expected: "a duration") else { return nil }
        guard let duration = ValueParsing.duration(text) else {
            error("option '\(prefix)\(name)' must be a duration like 500ms, 2s, 1m or 1h, got '\(text)'", at: name)
            return nil
        }
        return duration
    }

    public func duration(_ name: String, default fallback: Duration) -> Duration { duration(name) ?? fallback }

    public func size(_ name: String) -> Int? {
        guard let (text, _) = scalar(name, expected: "a size") else { return nil }
        guard let size = ValueParsing.size(text) else {
            error("option '\(prefix)\(name)' must be a size like 131072, 128KiB or 1MB, got '\(text)'", at: name)
            return nil
        }
        return size
    }

    public func size(_ name: String, default fallback: Int) -> Int { size(name) ?? fallback }

    /// A list of strings; a single string is refused so `inputs: a, b` mistakes are caught.
    public func stringList(_ name: String) -> [String]? {
        guard let node = value(name) else { return nil }
        guard let items = node.sequence else {
            error("option '\(prefix)\(name)' must be a list (for example [a, b]), not \(node.kindDescription)", at: name)
            return nil
        }
        var result: [String] = []
        for item in items {
            guard let text = item.scalar else {
                diagnostics.error("items of '\(prefix)\(name)' must be strings", file: file, at: item.mark)
                continue
            }
            result.append(text)
        }
        return result
    }

    public func stringMap(_ name: String) -> [(String, String)]? {
        guard let node = value(name) else { return nil }
        guard let pairs = node.mapping else {
            error("option '\(prefix)\(name)' must be a mapping, not \(node.kindDescription)", at: name)
            return nil
        }
        var result: [(String, String)] = []
        for pair in pairs {
            guard let key = pair.key.scalar, let value = pair.value.scalar else {
                diagnostics.error("entries of '\(prefix)\(name)' must be 'key: value' strings", file: file, at: pair.key.mark)
                continue
            }
            result.append((key, value))
        }
        return result
    }

    public func enumeration<T: RawRepresentable & CaseIterable>(_ name: String, as type: T.Type = T.self) -> T?
    where T.RawValue == String {
        guard let (text, _) = scalar(name, expected: "a string") else { return nil }
        if let value = T(rawValue: text) { return value }
        let allowed = T.allCases.map(\.rawValue)
        var message = "option '\(prefix)\(name)' must be one of \(allowed.joined(separator: ", ")), got '\(text)'"
        if let hint = ValueParsing.suggestion(for: text, among: allowed) { message += "; did you mean '\(hint)'?" }
        error(message, at: name)
        return nil
    }

    public func enumeration<T: RawRepresentable & CaseIterable>(_ name: String, default fallback: T) -> T
    where T.RawValue == String {
        enumeration(name, as: T.self) ?? fallback
    }

    /// A nested mapping option, read with its own declared options.
    public func nested(_ name: String) -> ConfigReader? {
        guard let node = value(name) else { return nil }
        guard node.mapping != nil else {
            error("option '\(prefix)\(name)' must be a mapping, not \(node.kindDescription)", at: name)
            return nil
        }
        var children: [OptionSpec] = []
        if let spec = options.first(where: { $0.name == name }), case .mapping(let nestedOptions) = spec.type {
            children = nestedOptions
        }
        return ConfigReader(
            node: node, file: file, options: children, diagnostics: diagnostics, prefix: prefix + name + ".")
    }
}

extension String {
    /// Lets operators write `131_072`.
    var replacingUnderscores: String { String(filter { $0 != "_" }) }
}
