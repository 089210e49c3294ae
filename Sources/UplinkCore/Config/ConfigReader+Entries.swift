public import UplinkYAML

extension ConfigReader {
    /// One entry of a mapping option (`key: value`) or one item of a list option (`- key`), with its location,
    /// so a plugin can report a problem with one entry where it is written.
    public struct Entry: Sendable {
        public var key: String
        /// The entry's value; nil for a list item or a mapping entry without a value (`key:`).
        public var value: String?
        /// Where the key (or the list item) is written.
        public var mark: YAMLMark
    }

    /// The entries of an option written either as a mapping of strings (`{temp: temperature}`) or as a list of
    /// strings (`[temp, hum]`); nil when the option is absent. Entries that are not strings are reported.
    public func entries(_ name: String) -> [Entry]? {
        guard let node = value(name) else { return nil }
        if let items = node.sequence {
            var result: [Entry] = []
            for item in items {
                guard let text = item.scalar else {
                    diagnostics.error("items of '\(prefix)\(name)' must be strings", file: file, at: item.mark)
                    continue
                }
                result.append(Entry(key: text, value: nil, mark: item.mark))
            }
            return result
        }
        if let pairs = node.mapping {
            var result: [Entry] = []
            for pair in pairs {
                guard let key = pair.key.scalar, pair.value.isNull || pair.value.scalar != nil else {
                    diagnostics.error(
                        "entries of '\(prefix)\(name)' must be 'key: value' strings", file: file, at: pair.key.mark)
                    continue
                }
                result.append(Entry(key: key, value: pair.value.isNull ? nil : pair.value.scalar, mark: pair.key.mark))
            }
            return result
        }
        error("option '\(prefix)\(name)' must be a mapping or a list, not \(node.kindDescription)", at: name)
        return nil
    }

    /// Records an error at one entry of an option.
    public func error(_ message: String, at entry: Entry) {
        diagnostics.error(message, file: file, at: entry.mark)
    }
}
