import UplinkCore

/// A built `type: process` component, so tools can find the plugin behind it (`uplink plugins --config`
/// starts it to read its hello).
public protocol ProcessPluginStage: Sendable {
    var settings: ProcessPluginSettings { get }
    var role: ComponentRole { get }
}

extension ProcessPluginSettings {
    /// The origin `uplink plugins` shows for the `process` type.
    static let origin = "built-in: hosts process plugins"
}
