public import UplinkCore

/// What `GET /api/components` answers and `uplink top` polls: every component's counters at one instant.
///
/// ```json
/// {"uptime_seconds":12.5,"ready":true,"components":[{"id":"cloud","type":"iotcore_http","kind":"sink",
///  "state":"running","received_events":10,"received_bytes":900,"sent_events":10,"sent_bytes":900,
///  "dropped_events":0,"errors":0,"buffer_events":0,"buffer_fill":0,"failing":null,
///  "concurrency_limit":8,"max_concurrency":32,"requests_in_flight":5}]}
/// ```
/// The last three only for a component that reports them (an `iotcore_http` sink's adaptive concurrency);
/// `"fused":true` for a transform that runs in its producer's task, without an input channel of its own.
public struct ComponentsSnapshot: Sendable, Equatable {
    public struct Component: Sendable, Equatable {
        public var id: String
        public var type: String
        public var kind: String
        public var state: String
        public var receivedEvents: Int
        public var receivedBytes: Int
        public var sentEvents: Int
        public var sentBytes: Int
        public var droppedEvents: Int
        public var errors: Int
        /// Events waiting in the input buffer; nil for sources.
        public var bufferEvents: Int?
        /// How full the input buffer is, 0 to 1; nil for sources.
        public var bufferFill: Double?
        /// Why the component is failing right now, if it is.
        public var failing: String?
        /// Requests the component may have in flight now (an adaptive limit); nil when it has none.
        public var concurrencyLimit: Int?
        /// The ceiling of ``concurrencyLimit``.
        public var maxConcurrency: Int?
        /// Requests on the wire now.
        public var requestsInFlight: Int?
        /// A transform fused into its producer (``ComponentStatus/fused``): it has no input buffer.
        public var fused: Bool

        public init(
            id: String, type: String, kind: String, state: String, receivedEvents: Int = 0, receivedBytes: Int = 0,
            sentEvents: Int = 0, sentBytes: Int = 0, droppedEvents: Int = 0, errors: Int = 0,
            bufferEvents: Int? = nil, bufferFill: Double? = nil, failing: String? = nil,
            concurrencyLimit: Int? = nil, maxConcurrency: Int? = nil, requestsInFlight: Int? = nil, fused: Bool = false
        ) {
            self.id = id
            self.type = type
            self.kind = kind
            self.state = state
            self.receivedEvents = receivedEvents
            self.receivedBytes = receivedBytes
            self.sentEvents = sentEvents
            self.sentBytes = sentBytes
            self.droppedEvents = droppedEvents
            self.errors = errors
            self.bufferEvents = bufferEvents
            self.bufferFill = bufferFill
            self.failing = failing
            self.concurrencyLimit = concurrencyLimit
            self.maxConcurrency = maxConcurrency
            self.requestsInFlight = requestsInFlight
            self.fused = fused
        }
    }

    public var uptimeSeconds: Double
    public var ready: Bool
    public var components: [Component]

    public init(uptimeSeconds: Double, ready: Bool, components: [Component]) {
        self.uptimeSeconds = uptimeSeconds
        self.ready = ready
        self.components = components
    }

    /// The pipeline's components now.
    public init(_ statuses: [ComponentStatus], uptime: Duration, ready: Bool) {
        self.uptimeSeconds = uptime.seconds
        self.ready = ready
        self.components = statuses.map { status in
            let snapshot = status.metrics.snapshot
            let report = status.metrics.report()
            func gauge(_ name: String) -> Int? {
                for sample in report.samples where sample.name == name && sample.labels.isEmpty {
                    if case .gauge(let value) = sample.value { return Int(value) }
                }
                return nil
            }
            return Component(
                id: status.id, type: status.type, kind: status.role.rawValue, state: status.metrics.state.name,
                receivedEvents: snapshot.receivedEvents, receivedBytes: snapshot.receivedBytes,
                sentEvents: snapshot.sentEvents, sentBytes: snapshot.sentBytes,
                droppedEvents: snapshot.droppedEvents + (status.buffer?.droppedFull ?? 0), errors: snapshot.errors,
                bufferEvents: status.buffer?.events, bufferFill: status.buffer?.fillRatio,
                failing: report.failure?.reason,
                concurrencyLimit: gauge(Self.concurrencyLimitGauge), maxConcurrency: gauge(Self.maxConcurrencyGauge),
                requestsInFlight: gauge(Self.requestsInFlightGauge), fused: status.fused)
        }
    }

    /// The gauges an `iotcore_http` sink reports (IoTCoreSink+Metrics.swift) that `uplink top` shows.
    static let concurrencyLimitGauge = "uplink_iotcore_concurrency_limit"
    static let maxConcurrencyGauge = "uplink_iotcore_max_concurrency"
    static let requestsInFlightGauge = "uplink_iotcore_requests_in_flight"

    public var json: [UInt8] {
        var output: [UInt8] = []
        output += #"{"uptime_seconds":"#.utf8
        JSONWriter.appendDouble(uptimeSeconds, to: &output)
        output += #","ready":\#(ready)"#.utf8
        output += #","components":["#.utf8
        for (index, component) in components.enumerated() {
            if index > 0 { output.append(UInt8(ascii: ",")) }
            output += #"{"id":"#.utf8
            JSONWriter.appendString(component.id, to: &output)
            output += #","type":"#.utf8
            JSONWriter.appendString(component.type, to: &output)
            output += #","kind":"#.utf8
            JSONWriter.appendString(component.kind, to: &output)
            output += #","state":"#.utf8
            JSONWriter.appendString(component.state, to: &output)
            for (key, value) in [
                ("received_events", component.receivedEvents), ("received_bytes", component.receivedBytes),
                ("sent_events", component.sentEvents), ("sent_bytes", component.sentBytes),
                ("dropped_events", component.droppedEvents), ("errors", component.errors),
            ] {
                output += ",\"\(key)\":\(value)".utf8
            }
            if let events = component.bufferEvents { output += #","buffer_events":\#(events)"#.utf8 }
            if let fill = component.bufferFill {
                output += #","buffer_fill":"#.utf8
                JSONWriter.appendDouble(fill, to: &output)
            }
            output += #","failing":"#.utf8
            if let failing = component.failing {
                JSONWriter.appendString(failing, to: &output)
            } else {
                output += "null".utf8
            }
            for (key, value) in [
                ("concurrency_limit", component.concurrencyLimit), ("max_concurrency", component.maxConcurrency),
                ("requests_in_flight", component.requestsInFlight),
            ] {
                if let value { output += ",\"\(key)\":\(value)".utf8 }
            }
            if component.fused { output += #","fused":true"#.utf8 }
            output.append(UInt8(ascii: "}"))
        }
        output += "]}\n".utf8
        return output
    }

    /// Parses what ``json`` wrote.
    public static func parse(_ bytes: [UInt8]) throws -> ComponentsSnapshot {
        guard case .object(let root) = try JSONReader.parse(bytes), case .array(let items)? = root["components"]
        else { throw SnapshotError("not a components snapshot") }
        var components: [Component] = []
        for item in items {
            guard case .object(let fields) = item else { throw SnapshotError("a component is not an object") }
            func string(_ key: String) -> String {
                if case .string(let text)? = fields[key] { return text }
                return ""
            }
            func int(_ key: String) -> Int? {
                switch fields[key] {
                case .int(let number)?: return Int(number)
                case .double(let number)?: return Int(number)
                default: return nil
                }
            }
            var fill: Double?
            switch fields["buffer_fill"] {
            case .double(let number)?: fill = number
            case .int(let number)?: fill = Double(number)
            default: fill = nil
            }
            var failing: String?
            if case .string(let text)? = fields["failing"] { failing = text }
            var fused = false
            if case .bool(let flag)? = fields["fused"] { fused = flag }
            components.append(
                Component(
                    id: string("id"), type: string("type"), kind: string("kind"), state: string("state"),
                    receivedEvents: int("received_events") ?? 0, receivedBytes: int("received_bytes") ?? 0,
                    sentEvents: int("sent_events") ?? 0, sentBytes: int("sent_bytes") ?? 0,
                    droppedEvents: int("dropped_events") ?? 0, errors: int("errors") ?? 0,
                    bufferEvents: int("buffer_events"), bufferFill: fill, failing: failing,
                    concurrencyLimit: int("concurrency_limit"), maxConcurrency: int("max_concurrency"),
                    requestsInFlight: int("requests_in_flight"), fused: fused))
        }
        var uptime = 0.0
        switch root["uptime_seconds"] {
        case .double(let number)?: uptime = number
        case .int(let number)?: uptime = Double(number)
        default: break
        }
        var ready = false
        if case .bool(let flag)? = root["ready"] { ready = flag }
        return ComponentsSnapshot(uptimeSeconds: uptime, ready: ready, components: components)
    }
}

/// The API answered something that is not what `uplink top` expects.
public struct SnapshotError: Error, Sendable, CustomStringConvertible {
    public var description: String

    init(_ description: String) { self.description = description }
}
