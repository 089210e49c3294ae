import HTTPTypes
import Hummingbird
import HummingbirdCore
public import Logging
import NIOCore
import UplinkYAML
public import ServiceLifecycle
import Synchronization
public import UplinkCore

#if canImport(Glibc)
import Glibc
#endif

/// What the API serves: a running pipeline's components and readiness. A seam so tests can serve any set of
/// components.
public struct OperationsTarget: Sendable {
    public var components: @Sendable () -> [ComponentStatus]
    public var isReady: @Sendable () -> Bool
    public var startedAt: ContinuousClock.Instant

    public init(
        components: @escaping @Sendable () -> [ComponentStatus], isReady: @escaping @Sendable () -> Bool,
        startedAt: ContinuousClock.Instant = .now
    ) {
        self.components = components
        self.isReady = isReady
        self.startedAt = startedAt
    }

    /// Serves `pipeline`.
    public init(pipeline: Pipeline) {
        self.init(components: { pipeline.componentStatuses }, isReady: { pipeline.isReady })
    }
}

/// The API listener (`api:` in the configuration), a `Service` that runs next to the pipeline:
///
/// | route | answer |
/// |---|---|
/// | `GET /metrics` | Prometheus text (see ``PrometheusExporter``) |
/// | `GET /health` | 200 or 503 with a JSON reason (see ``HealthReport``) |
/// | `GET /ready` | 200 once every component started, 503 before and while draining |
/// | `GET /api/components` | a ``ComponentsSnapshot`` as JSON, for `uplink top` |
/// | `GET /tap/<component_id>?limit=N` | newline-delimited JSON of events leaving the component, streamed |
///
/// On graceful shutdown taps are ended first, so no open stream holds the listener up.
///
/// Every client is bounded, so that nothing a local process (or a web page, through DNS rebinding) does to
/// the API can take memory or descriptors from the pipeline:
/// - at most `api.max_connections` connections (``ConnectionLimiter``), a request head within
///   `api.header_timeout` of its first byte, no connection idle beyond `api.idle_timeout`
///   (``ConnectionDeadlineHandler``);
/// - at most ``maxTaps`` tap streams at once; each reads from a queue bounded in bytes
///   (``TapPoint/defaultQueueBytes``) and writes only when its socket is writable, so a client that stops
///   reading loses its own copies (`uplink_tap_dropped_events_total`);
/// - a `Host` header naming another machine is refused (``HostAllowList``).
/// Each limit is counted when hit (``APIServerStatistics``).
public final class APIServer: Service, Sendable {
    /// Tap streams open at once, at most: each costs the pipeline a copy of up to
    /// ``TapPoint/maxEventsPerChunk`` events per chunk.
    public static let maxTaps = 8

    let configuration: APIConfig
    let target: OperationsTarget
    let exporter: PrometheusExporter
    let logger: Logger
    let onListening: @Sendable (Int) -> Void
    /// What the limits did; `/metrics` includes it.
    public let statistics = APIServerStatistics()
    /// Serialises the check of ``maxTaps`` with the attach that follows it.
    private let tapAdmission = Mutex(())

    /// - Parameter onListening: called with the bound port (useful with port 0).
    public init(
        configuration: APIConfig, target: OperationsTarget, exporter: PrometheusExporter = PrometheusExporter(),
        logger: Logger, onListening: @escaping @Sendable (Int) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.target = target
        self.exporter = exporter
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        let configuration = self.configuration
        let logger = self.logger
        let onListening = self.onListening
        let target = self.target
        // Hummingbird's own start line and per-request logs would repeat ours; its warnings still show.
        var serverLogger = logger
        serverLogger.logLevel = max(logger.logLevel, .warning)
        let limiter = ConnectionLimiter(maxConnections: configuration.maxConnections, statistics: statistics)
        let deadlines = (header: configuration.headerTimeout, idle: configuration.idleTimeout)
        let server = HTTPServerBuilder { responder in
            LimitedHTTPChannel(
                base: HTTP1Channel(
                    responder: responder,
                    configuration: HTTP1Channel.Configuration(
                        additionalChannelHandlers: [
                            ConnectionDeadlineHandler(
                                limiter: limiter, headerTimeout: deadlines.header, idleTimeout: deadlines.idle)
                        ])),
                limiter: limiter)
        }
        let application = Application(
            router: makeRouter(),
            server: server,
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.host, port: configuration.port), serverName: "uplink"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.port
                var bound = configuration
                bound.port = port
                logger.info(
                    "API listening",
                    metadata: ["api.address": "\(bound.address)", "api.port": "\(port)"])
                onListening(port)
            },
            logger: serverLogger)
        do {
            try await withGracefulShutdownHandler {
                try await application.run()
            } onGracefulShutdown: {
                for component in target.components() {
                    component.metrics.tap.detachAll()
                    for tap in component.metrics.outputTapPoints { tap.detachAll() }
                }
            }
        } catch let error as IOError {
            // A port in use or an address not on this machine: say which setting to change.
            throw APIServerError(
                description: "cannot listen on \(configuration.address) (api.address): \(String(cString: strerror(error.errnoCode)))")
        }
    }

    func makeRouter() -> Router<APIRequestContext> {
        let router = Router(context: APIRequestContext.self)
        router.add(middleware: HostCheckMiddleware(allowList: HostAllowList(configuration: configuration), statistics: statistics))
        let target = self.target
        let exporter = self.exporter
        let statistics = self.statistics
        let unhealthyAfter = configuration.unhealthyAfter
        router.get("/metrics") { _, _ -> Response in
            let text = exporter.render(
                target.components(), uptime: .now - target.startedAt, listener: statistics.samples)
            return Self.response(.ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: text)
        }
        router.get("/health") { _, _ -> Response in
            let report = HealthReport.evaluate(target.components(), unhealthyAfter: unhealthyAfter)
            return Self.response(report.isHealthy ? .ok : .serviceUnavailable, body: report.json)
        }
        router.get("/ready") { _, _ -> Response in
            let ready = target.isReady()
            return Self.response(
                ready ? .ok : .serviceUnavailable, body: Array(#"{"ready":\#(ready)}"#.utf8) + [0x0A])
        }
        router.get("/api/components") { _, _ -> Response in
            let snapshot = ComponentsSnapshot(target.components(), uptime: .now - target.startedAt, ready: target.isReady())
            return Self.response(.ok, body: snapshot.json)
        }
        router.get("/tap/:component") { request, context -> Response in
            let id = context.parameters.get("component") ?? ""
            // `split.alarms` taps the named output `alarms` of `split` (ids cannot contain a dot).
            let reference = InputReference(parsing: id, mark: YAMLMark(line: 0, column: 0))
            guard let component = target.components().first(where: { $0.id == reference.id }) else {
                let ids = target.components().map(\.id)
                let hint = ValueParsing.suggestion(for: reference.id, among: ids).map { "; did you mean '\($0)'?" } ?? ""
                return Self.error(.notFound, "no component '\(id)'\(hint) (components: \(ids.joined(separator: ", ")))")
            }
            guard component.role != .sink else {
                return Self.error(.badRequest, "'\(id)' is a sink: no events leave it; tap one of its inputs")
            }
            let limit = request.uri.queryParameters.get("limit", as: Int.self)
            if let limit, limit <= 0 { return Self.error(.badRequest, "limit must be at least 1") }
            let tap: TapPoint
            if let output = reference.output {
                guard component.outputNames.contains(output) else {
                    let outputs = component.outputNames.map { reference.id + "." + $0 }
                    let hint = ValueParsing.suggestion(for: output, among: component.outputNames)
                        .map { "; did you mean '\(reference.id).\($0)'?" } ?? ""
                    return Self.error(
                        .notFound,
                        outputs.isEmpty
                            ? "'\(reference.id)' has no named outputs: tap '\(reference.id)'"
                            : "'\(reference.id)' has no output '\(output)'\(hint) (outputs: \(outputs.joined(separator: ", ")))")
                }
                tap = component.metrics.tap(output: output)
            } else if !component.outputNames.isEmpty {
                let outputs = component.outputNames.map { reference.id + "." + $0 }.joined(separator: ", ")
                return Self.error(.badRequest, "'\(id)' sends through named outputs: tap one of \(outputs)")
            } else {
                tap = component.metrics.tap
            }
            guard let stream = self.attachTap(tap, limit: limit, among: target.components()) else {
                statistics.refused(.taps)
                return Self.error(
                    .serviceUnavailable, "\(Self.maxTaps) taps are open already, the most at once; try again later")
            }
            var headers = HTTPFields()
            headers[.contentType] = "application/x-ndjson"
            // A client that stops reading must leave its events in the tap's bounded queue, where further copies
            // are dropped, and never in the agent's memory. A write waits while the socket cannot take more, but
            // it is handed to the event loop as a task without waiting, and a busy loop falls behind: 8 such
            // streams grew the agent by 2.5 MB/s. Waiting for the loop after each write (its tasks run in order)
            // keeps one line per stream in flight.
            let eventLoop = context.channel.eventLoop
            let body = ResponseBody { writer in
                for await event in stream {
                    var line = TapLine.encode(event, componentID: id)
                    line.append(0x0A)
                    try await writer.write(ByteBuffer(bytes: line))
                    try await eventLoop.submit {}.get()
                }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: headers, body: body)
        }
        return router
    }

    /// Attaches a reader to `tap` unless ``maxTaps`` streams are open over all `components`.
    func attachTap(_ tap: TapPoint, limit: Int?, among components: [ComponentStatus]) -> TapStream? {
        tapAdmission.withLock { _ in
            let open = components.reduce(0) { total, component in
                total + component.metrics.tap.attachedReaders
                    + component.metrics.outputTapPoints.reduce(0) { $0 + $1.attachedReaders }
            }
            guard open < Self.maxTaps else { return nil }
            return tap.attach(limit: limit)
        }
    }

    static func response(
        _ status: HTTPResponse.Status, contentType: String = "application/json", body: [UInt8]
    ) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    static func error(_ status: HTTPResponse.Status, _ message: String) -> Response {
        var body: [UInt8] = Array(#"{"error":"#.utf8)
        JSONWriter.appendString(message, to: &body)
        body += "}\n".utf8
        return response(status, body: body)
    }
}

/// One line of a tap stream: `{"component_id":"parse","kind":"record","topic":null,"event":{…}}`. A record's
/// (or a JSON body's) text is embedded as JSON; other text as a string.
public enum TapLine {
    public static func encode(_ event: TappedEvent, componentID: String) -> [UInt8] {
        var line: [UInt8] = Array(#"{"component_id":"#.utf8)
        JSONWriter.appendString(componentID, to: &line)
        line += #","kind":"#.utf8
        JSONWriter.appendString(event.kind.rawValue, to: &line)
        if let topic = event.topic {
            line += #","topic":"#.utf8
            JSONWriter.appendString(topic, to: &line)
        }
        line += #","event":"#.utf8
        let embeddable = !event.text.contains(0x0A) && (try? JSONReader.parse(event.text)) != nil
        if event.kind == .record || (event.kind == .message && embeddable) {
            line += event.text
        } else {
            JSONWriter.appendStringBytes(event.text, to: &line)
        }
        line.append(UInt8(ascii: "}"))
        return line
    }
}

/// The API listener could not start.
public struct APIServerError: Error, Sendable, CustomStringConvertible {
    public var description: String
}
