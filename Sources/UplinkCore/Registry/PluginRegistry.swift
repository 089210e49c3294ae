/// All plugin types the agent knows, by role and type name. One explicit list registers the built-ins;
/// a user's own `uplink` binary registers its plugins with one more line.
public struct PluginRegistry: Sendable {
    private var plugins: [ComponentRole: [String: PluginDescriptor]] = [:]

    public init() {}

    public init(_ descriptors: [PluginDescriptor]) {
        for descriptor in descriptors { register(descriptor) }
    }

    /// Adds or replaces a plugin type.
    public mutating func register(_ descriptor: PluginDescriptor) {
        plugins[descriptor.role, default: [:]][descriptor.type] = descriptor
    }

    public func descriptor(role: ComponentRole, type: String) -> PluginDescriptor? {
        plugins[role]?[type]
    }

    public func types(for role: ComponentRole) -> [String] {
        (plugins[role]?.keys).map { Array($0).sorted() } ?? []
    }

    /// The input-buffer defaults plugins declare (``PluginDescriptor/defaultBufferEvents``), by role and type, for
    /// ``ConfigLoader/defaultBufferEvents``.
    public var defaultBufferEvents: [ComponentRole: [String: Int]] {
        var defaults: [ComponentRole: [String: Int]] = [:]
        for (role, byType) in plugins {
            for (type, descriptor) in byType {
                if let events = descriptor.defaultBufferEvents { defaults[role, default: [:]][type] = events }
            }
        }
        return defaults
    }

    /// Every descriptor, sources first, then transforms, then sinks, each sorted by type.
    public var all: [PluginDescriptor] {
        ComponentRole.allCases.flatMap { role in
            types(for: role).compactMap { plugins[role]?[$0] }
        }
    }
}
