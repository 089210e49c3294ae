public import UplinkYAML

/// Values some components publish for others at build time: the IoT-Core sink shares its ProductSN and
/// DeviceSN so thing-model and shadow transforms do not repeat them.
///
/// Each sink writes into its own instance. A transform reads a view the topology builder merged from the sinks
/// downstream of it (following the edges through other transforms), so on a gateway with two devices each
/// transform speaks for the device it feeds, not for whichever sink happened to be built last. Where those sinks
/// disagree the key has no value but a ``Conflict`` the transform reports.
public final class SharedSettings: @unchecked Sendable {
    // Written only while the topology is built (single-threaded), read-only afterwards.
    private var values: [String: String] = [:]
    private var conflicts: [String: Conflict] = [:]

    /// Two components downstream of a reader that published different values under one key.
    public struct Conflict: Sendable, Hashable, CustomStringConvertible {
        /// A component that published a value: its id, where it is written, and the value.
        public struct Publisher: Sendable, Hashable {
            public var id: String
            public var file: String
            public var mark: YAMLMark
            public var value: String

            public init(id: String, file: String, mark: YAMLMark, value: String) {
                self.id = id
                self.file = file
                self.mark = mark
                self.value = value
            }

            var located: String { "'\(id)' (\(file):\(mark.line):\(mark.column))" }
        }

        public var first: Publisher
        public var second: Publisher

        /// `'dev1' (gateway.yaml:30:3) has 'device001' and 'dev2' (gateway.yaml:38:3) has 'device002'`.
        public var description: String {
            "\(first.located) has '\(first.value)' and \(second.located) has '\(second.value)'"
        }
    }

    public init() {}

    public subscript(key: String) -> String? {
        get { values[key] }
        set { values[key] = newValue }
    }

    /// Why `key` has no value although components downstream published one: they disagree.
    public func conflict(for key: String) -> Conflict? { conflicts[key] }

    /// What several publishers shared, merged for one reader: a key they agree on keeps its value, a key on
    /// which two of them differ becomes a conflict naming the first two that do. `publishers` are in
    /// configuration order, so the message names the same two sinks on every run.
    static func merged(_ publishers: [(id: String, file: String, mark: YAMLMark, settings: SharedSettings)])
        -> SharedSettings
    {
        let merged = SharedSettings()
        var firstPublisher: [String: Conflict.Publisher] = [:]
        for publisher in publishers {
            for (key, value) in publisher.settings.values.sorted(by: { $0.key < $1.key }) {
                let current = Conflict.Publisher(id: publisher.id, file: publisher.file, mark: publisher.mark, value: value)
                guard let first = firstPublisher[key] else {
                    firstPublisher[key] = current
                    merged.values[key] = value
                    continue
                }
                if first.value != value, merged.conflicts[key] == nil {
                    merged.values[key] = nil
                    merged.conflicts[key] = Conflict(first: first, second: current)
                }
            }
        }
        return merged
    }

    /// Every value, sorted by key, for fingerprints.
    var canonical: String {
        values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\u{1}")
    }
}
