/// Everything the engine knows about a plugin type: what it is, what it accepts and produces, its options,
/// and how to build it from its config.
public struct PluginDescriptor: Sendable {
    /// What a plugin produces, for listings; the built stage's own type is what the topology checks.
    public enum Output: Sendable, Hashable {
        case none
        case kind(EventKind)
        /// Whatever kind its input is (for example a sampler or a filter).
        case sameAsInput
        /// The kind named by one of its options, or `default` (for example a process plugin's `output_kind`).
        case fromOption(String, default: EventKind)
    }

    public var type: String
    public var role: ComponentRole
    public var summary: String
    public var options: [OptionSpec]
    /// The kinds this plugin accepts as input; empty for sources.
    public var accepts: Set<EventKind>
    public var output: Output
    /// Where the plugin comes from, for `uplink plugins` (`built-in`, a package name, a shared object path).
    public var origin: String
    /// The `buffer.max_events` of this component's input channel when its configuration sets none (nil: the
    /// engine's 4096). Channels count events, so a consumer of large events (128 KB batches) declares a
    /// smaller one: its channel then holds a bounded number of bodies, not 4096 of them.
    public var defaultBufferEvents: Int?
    /// Whether the component keeps state in `<data_dir>/<id>` (checkpoints, a token cache, a counter) and so
    /// cannot run without it: validation then checks that `data_dir` can be created and written.
    public var keepsState: Bool
    public var build: @Sendable (PluginBuildContext) throws -> BuiltStage

    public init(
        type: String,
        role: ComponentRole,
        summary: String,
        options: [OptionSpec],
        accepts: Set<EventKind> = [],
        output: Output,
        origin: String = "built-in",
        defaultBufferEvents: Int? = nil,
        keepsState: Bool = false,
        build: @escaping @Sendable (PluginBuildContext) throws -> BuiltStage
    ) {
        self.defaultBufferEvents = defaultBufferEvents
        self.keepsState = keepsState
        self.type = type
        self.role = role
        self.summary = summary
        self.options = options
        self.accepts = accepts
        self.output = output
        self.origin = origin
        self.build = build
    }
}

/// What a plugin's factory gets: its id, its options, and the kind of events its inputs produce.
///
/// Factories read options and validate them, but do no I/O: `uplink validate` builds every component.
public struct PluginBuildContext {
    public let id: String
    public let config: ConfigReader
    /// The kind of events arriving on this component's inputs; nil for sources.
    public let inputKind: EventKind?
    public let dataDirectory: String
    /// Shared settings other components declared (for example the sink's device credentials), by name.
    public let shared: SharedSettings
    /// Whether to check, on this machine, the paths `run` opens at start (``TopologyBuilder/checksPaths``).
    public var checksPaths = true
}

/// A factory's refusal that is not tied to one option, reported at the component's location.
public struct PluginBuildError: Error, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    /// The factory reported its problems where they are written (``ConfigReader/error(_:at:)``) and only has to
    /// stop: the topology adds no message of its own.
    public static var reported: PluginBuildError { PluginBuildError("") }

    public var description: String { message }
}
