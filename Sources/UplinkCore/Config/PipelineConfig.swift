public import UplinkYAML

/// A parsed configuration, before plugins are built: components with their raw option nodes and locations.
public struct PipelineConfig: Sendable {
    public var files: [String]
    public var components: [ComponentConfig]
    public var global: GlobalConfig
    /// Shared objects listed under `plugins:` in any of the files, to load before the topology is built.
    public var plugins: [PluginReference] = []
    /// The `tests:` lists of the files, for `uplink test`.
    public var tests: [ConfigTestsNode] = []
    /// The files that could not be read or parsed, or that misspell a section (`sorces:`). Their components
    /// are unknown, so the checks on the whole pipeline (no components, no sinks, an input that does not exist)
    /// would only add follow-on errors.
    public var unreadableFiles: [String] = []

    public init(files: [String] = [], components: [ComponentConfig] = [], global: GlobalConfig = GlobalConfig()) {
        self.files = files
        self.components = components
        self.global = global
    }
}

/// Settings for the whole agent.
public struct GlobalConfig: Sendable {
    /// Where checkpoints, tokens and buffers live.
    public var dataDirectory: String = "/var/lib/uplink"
    /// Where `data_dir` is written (the last file that sets it), for its errors; nil when it is the default.
    public var dataDirectoryLocation: (file: String, mark: YAMLMark)? = nil
    /// How long a graceful shutdown may take before what is still in flight is abandoned.
    public var shutdownTimeout: Duration = .seconds(30)
    /// The API listener (`api:`); nil when it is off, the default.
    public var api: APIConfig? = nil
    /// How often each component's counters are logged in one summary line; zero for never.
    public var summaryInterval: Duration = .seconds(60)

    public init() {}
}

/// One entry of the top-level `plugins:` list: a shared object to load, and where it is written.
public struct PluginReference: Sendable, Hashable {
    /// The path to open: as written when absolute, otherwise relative to the directory of `file`.
    public var path: String
    /// The path as written in the configuration, for messages.
    public var written: String
    /// The configuration file that lists it.
    public var file: String
    public var mark: YAMLMark

    public init(path: String, written: String, file: String, mark: YAMLMark) {
        self.path = path
        self.written = written
        self.file = file
        self.mark = mark
    }
}

/// One component as written in the config.
public struct ComponentConfig: Sendable {
    public var id: String
    public var role: ComponentRole
    public var type: String
    public var file: String
    /// Where the component's id is written.
    public var mark: YAMLMark
    /// Where its `type:` value is written.
    public var typeMark: YAMLMark
    public var inputs: [InputReference]
    public var buffer: BufferConfig
    /// The component's whole mapping, for its plugin's options.
    public var node: YAMLNode
}

/// One entry of `inputs:`, with its location for error messages: a component's id, or `<id>.<output>` for one
/// named output of a component that has them (a `route`).
public struct InputReference: Sendable, Hashable {
    /// The component's id.
    public var id: String
    public var mark: YAMLMark
    /// The named output read, nil for the component's default output.
    public var output: String? = nil

    public init(id: String, mark: YAMLMark, output: String? = nil) {
        self.id = id
        self.mark = mark
        self.output = output
    }

    /// Reads `id` or `id.output` (ids cannot contain a dot, so the first one separates them).
    public init(parsing text: String, mark: YAMLMark) {
        if let dot = text.firstIndex(of: ".") {
            self.init(id: String(text[..<dot]), mark: mark, output: String(text[text.index(after: dot)...]))
        } else {
            self.init(id: text, mark: mark)
        }
    }

    /// As written: `id` or `id.output`.
    public var reference: String { output.map { id + "." + $0 } ?? id }
}

/// The input edge of a transform or sink:
/// `buffer: { type: memory, max_events: 4096, max_size: 8MiB, when_full: block }` or
/// `buffer: { type: disk, max_size: 256MiB, when_full: block, fsync_interval: 500ms }` (sinks only).
public struct BufferConfig: Sendable, Hashable {
    public enum Kind: String, Sendable, CaseIterable { case memory, disk }

    public var kind: Kind = .memory
    public var maxEvents: Int = 4096
    /// Disk: bytes on disk before `when_full` applies.
    public var maxBytes: Int = 256 << 20
    /// Memory: payload bytes the channel holds before `when_full` applies, besides `maxEvents`; nil for none.
    public var memoryMaxBytes: Int? = nil
    public var whenFull: OverflowPolicy = .block
    public var fsyncInterval: Duration = .milliseconds(500)

    public init(maxEvents: Int = 4096, whenFull: OverflowPolicy = .block) {
        self.maxEvents = maxEvents
        self.whenFull = whenFull
    }

    static let options: [OptionSpec] = [
        OptionSpec("type", .enumeration(Kind.allCases.map(\.rawValue)), default: "memory", "memory, or disk (sinks only): survives restarts and power cuts"),
        OptionSpec("max_events", .int, default: "4096", "memory: events the input channel holds before `when_full` applies"),
        OptionSpec(
            "max_size", .size, default: "256MiB",
            "disk: bytes on disk before `when_full` applies; memory: payload bytes held (no default), whichever of max_events and max_size comes first"),
        OptionSpec(
            "when_full", .enumeration(OverflowPolicy.allCases.map(\.rawValue)), default: "block",
            "block back-pressures the producers; drop_newest or drop_oldest discard, counted"),
        OptionSpec("fsync_interval", .duration, default: "500ms", "disk: how often writes are made durable (and acknowledged upstream)"),
    ]
}

extension ComponentConfig {
    /// The options the engine reads for every transform and sink besides its plugin's own, for `uplink plugins`.
    public static var engineOptions: [OptionSpec] {
        [
            OptionSpec("inputs", .list(of: "component ids"), required: true, "the ids of the components it reads from (a route's named output as id.name)"),
            OptionSpec("buffer", .mapping(BufferConfig.options), "its input channel (a disk buffer only in front of a sink)"),
        ]
    }
}
