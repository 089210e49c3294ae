import IoTCore
import Logging
import UplinkCore

/// The device and endpoint of a configured `iotcore_http` sink, for one-shot commands (`uplink auth`,
/// `uplink publish`) that reuse a pipeline's settings instead of repeating credentials on the command line.
public struct IoTCoreTarget: Sendable {
    public let sinkID: String
    let settings: IoTCoreSinkSettings
    let stateDirectory: String

    /// The `iotcore_http` sinks of a topology, in config order.
    public static func all(in topology: Topology) -> [IoTCoreTarget] {
        topology.nodes.compactMap { node in
            guard case .sink(let stage) = node.stage, let settings = settings(of: stage) else { return nil }
            return IoTCoreTarget(sinkID: node.id, settings: settings, stateDirectory: topology.global.dataDirectory + "/" + node.id)
        }
    }

    private static func settings<S: SinkStage>(of stage: S) -> IoTCoreSinkSettings? {
        (stage as? IoTCoreSink<S.Input>)?.settings
    }

    public var productSN: String { settings.credentials.productSN }
    public var deviceSN: String { settings.credentials.deviceSN }
    public var defaultTopic: String { settings.topic }

    /// Runs `body` with a client for this sink (starting the embedded emulator first when configured).
    public func withClient<T: Sendable>(logger: Logger, _ body: (IoTCoreClient) async throws -> T) async throws -> T {
        try FileIO.makeDirectories(stateDirectory, mode: 0o700)
        return try await settings.withClient(stateDirectory: stateDirectory, logger: logger, body)
    }
}
