public import Logging

/// The role a component plays in the graph.
public enum ComponentRole: String, Sendable, CaseIterable, Hashable {
    case source, transform, sink

    /// The top-level YAML section holding components of this role.
    public var section: String { rawValue + "s" }
}

/// What a running component is given besides its events.
public struct ComponentContext: Sendable {
    /// The component's id from the config (`sources.<id>`).
    public let id: String
    /// The plugin type (`stdin`, `file`, …).
    public let type: String
    public let role: ComponentRole
    /// A logger already tagged with `component_id`, `component_type` and `component_kind`.
    public let logger: Logger
    public let metrics: ComponentMetrics
    /// The pipeline's state directory (`data_dir`), where checkpoints, tokens and buffers live.
    public let dataDirectory: String

    public init(
        id: String,
        type: String,
        role: ComponentRole,
        logger: Logger,
        metrics: ComponentMetrics,
        dataDirectory: String
    ) {
        self.id = id
        self.type = type
        self.role = role
        self.logger = logger
        self.metrics = metrics
        self.dataDirectory = dataDirectory
    }

    /// This component's own state directory (created on first use, mode 0700), so plugins never collide.
    public func stateDirectory() throws -> String {
        let path = dataDirectory + "/" + id
        try FileIO.makeDirectories(path, mode: 0o700)
        return path
    }
}
