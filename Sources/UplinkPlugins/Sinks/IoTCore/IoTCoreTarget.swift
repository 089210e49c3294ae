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
    /// The endpoint as configured (`embedded` for the in-process emulator), for messages.
    public var endpointDescription: String {
        switch settings.endpoint {
        case .url(let url): url
        case .embedded: "embedded"
        }
    }

    /// Runs `body` with a client for this sink (starting the embedded emulator first when configured).
    ///
    /// - Parameter oneShot: for commands that must end: no request waits longer than this, and a connection
    ///   that cannot be made or refused credentials end the call at once (``RetryPolicy/failFast``).
    public func withClient<T: Sendable>(
        logger: Logger, oneShot timeout: Duration? = nil, _ body: (IoTCoreClient) async throws -> T
    ) async throws -> T {
        try FileIO.makeDirectories(stateDirectory, mode: 0o700)
        var settings = self.settings
        if let timeout {
            settings.retry.failFast = true
            settings.connectTimeout = min(settings.connectTimeout, timeout)
            settings.requestTimeout = min(settings.requestTimeout, timeout)
        }
        return try await settings.withClient(stateDirectory: stateDirectory, logger: logger, body)
    }
}
