/// Where events came from: shared by every event of one file or device, so attaching it costs a
/// reference-count increment, not an allocation per event.
public final class EventOrigin: Sendable {
    /// The id of the source component.
    public let sourceID: String
    /// A file path, device path, or command, when the source has one.
    public let location: String?
    /// Source-specific metadata shared by the events of this origin, for example a command run's `pid` and
    /// `exit_code`. Empty for most sources.
    public let attributes: [String: String]

    public init(sourceID: String, location: String? = nil, attributes: [String: String] = [:]) {
        self.sourceID = sourceID
        self.location = location
        self.attributes = attributes
    }
}
