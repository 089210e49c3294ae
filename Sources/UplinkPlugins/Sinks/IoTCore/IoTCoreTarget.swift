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
        func make(_ settings: IoTCoreSinkSettings) throws -> IoTCoreClient {
            guard case .url(let url) = settings.endpoint else { throw PluginBuildError("no endpoint") }
            return try IoTCoreClient(
                configuration: IoTCoreClient.Configuration(
                    endpoint: url, credentials: settings.credentials, caFile: settings.caFile,
                    connectTimeout: settings.connectTimeout, requestTimeout: settings.requestTimeout,
                    maxInFlight: settings.concurrency, sendTimestamp: settings.sendTimestamp,
                    stateDirectory: stateDirectory, retry: settings.retry, renewBefore: settings.renewBefore),
                logger: logger)
        }
        if settings.endpoint == .embedded {
            var result: T?
            try await EmbeddedEmulator.run(credentials: settings.credentials, stateDirectory: stateDirectory, logger: logger) { url, caFile in
                var embedded = settings
                embedded.endpoint = .url(url)
                embedded.caFile = caFile
                let client = try make(embedded)
                defer { client.shutdown() }
                result = try await body(client)
            }
            return result!
        }
        let client = try make(settings)
        defer { client.shutdown() }
        return try await body(client)
    }
}
