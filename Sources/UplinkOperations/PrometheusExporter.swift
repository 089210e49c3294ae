public import Prometheus
public import UplinkCore

/// Renders the pipeline's metrics in the Prometheus text format when `/metrics` is scraped.
///
/// The engine keeps plain atomics (``ComponentMetrics``), updated once per chunk; nothing is exported on the
/// data path. At each scrape the exporter reads every component's snapshot, its input buffer and its own
/// report, sets them on a fresh `PrometheusCollectorRegistry` (swift-prometheus) and emits it. Histograms
/// arrive as cumulative bucket counts, which a swift-prometheus histogram cannot be set from, so they are
/// written in the same text format here. Metrics recorded through swift-metrics (by Swift plugins) are in
/// `metricsRegistry` when ``bootstrapSwiftMetrics()`` installed it, and follow.
///
/// Every component's series carry `component_id`, `component_type` and `component_kind`:
///
/// | name | type | |
/// |---|---|---|
/// | `uplink_component_received_events_total` | counter | events read from the input |
/// | `uplink_component_received_bytes_total` | counter | |
/// | `uplink_component_sent_events_total` | counter | events sent downstream (sinks: delivered) |
/// | `uplink_component_sent_bytes_total` | counter | |
/// | `uplink_component_dropped_events_total` | counter | with `reason`: ``DropReason`` |
/// | `uplink_component_errors_total` | counter | |
/// | `uplink_component_up` | gauge | 1 while running |
/// | `uplink_buffer_events`, `uplink_buffer_max_events` | gauge | input buffer fill level and capacity |
/// | `uplink_buffer_bytes`, `uplink_buffer_max_bytes` | gauge | disk buffers |
/// | `uplink_tap_dropped_events_total` | counter | copies a slow `uplink tap` reader missed |
/// | `uplink_tap_queued_bytes` | gauge | event text waiting in the component's tap readers' queues |
///
/// plus what components report themselves (`uplink_iotcore_*`, `uplink_file_*`, `uplink_serial_*`), and the
/// API listener's own series (``APIServerStatistics``).
public struct PrometheusExporter: Sendable {
    /// Where swift-metrics records land, when the process bootstrapped it (see ``bootstrapSwiftMetrics()``).
    public let metricsRegistry: PrometheusCollectorRegistry?

    public init(metricsRegistry: PrometheusCollectorRegistry? = nil) {
        self.metricsRegistry = metricsRegistry
    }

    /// The text of one scrape; `listener` holds the API listener's own series.
    public func render(
        _ components: [ComponentStatus], uptime: Duration? = nil, listener: [MetricSample] = []
    ) -> [UInt8] {
        var families = MetricFamilies()
        if let uptime {
            families.add(
                MetricSample(
                    name: "uplink_uptime_seconds", help: "Seconds since the pipeline started.",
                    value: .gauge(uptime.seconds)))
        }
        for component in components {
            let labels = [
                ("component_id", component.id), ("component_type", component.type),
                ("component_kind", component.role.rawValue),
            ]
            for sample in Self.commonSamples(component) {
                families.add(sample, componentLabels: labels)
            }
            for sample in component.metrics.report().samples {
                families.add(sample, componentLabels: labels)
            }
        }
        for sample in listener { families.add(sample) }
        var output = families.emit()
        if let metricsRegistry { metricsRegistry.emit(into: &output) }
        return output
    }

    /// The metrics every component has, under the same names.
    static func commonSamples(_ component: ComponentStatus) -> [MetricSample] {
        let snapshot = component.metrics.snapshot
        var samples = [
            MetricSample(
                name: "uplink_component_received_events_total", help: "Events the component received.",
                value: .counter(Double(snapshot.receivedEvents))),
            MetricSample(
                name: "uplink_component_received_bytes_total", help: "Bytes of the events the component received.",
                value: .counter(Double(snapshot.receivedBytes))),
            MetricSample(
                name: "uplink_component_sent_events_total",
                help: "Events the component sent downstream (a sink: delivered).",
                value: .counter(Double(snapshot.sentEvents))),
            MetricSample(
                name: "uplink_component_sent_bytes_total", help: "Bytes of the events the component sent.",
                value: .counter(Double(snapshot.sentBytes))),
            MetricSample(
                name: "uplink_component_errors_total", help: "Errors the component counted.",
                value: .counter(Double(snapshot.errors))),
            MetricSample(
                name: "uplink_component_up", help: "1 while the component runs.",
                value: .gauge(component.metrics.state == .running ? 1 : 0)),
            MetricSample(
                name: "uplink_tap_dropped_events_total",
                help: "Event copies a slow `uplink tap` reader missed (the pipeline itself lost nothing).",
                value: .counter(Double(component.metrics.tap.droppedCopies))),
            MetricSample(
                name: "uplink_tap_queued_bytes",
                help: "Bytes of event copies waiting in the component's tap readers' bounded queues.",
                value: .gauge(Double(component.metrics.tap.queuedBytes))),
        ]
        for reason in DropReason.allCases {
            var count = snapshot.droppedByReason[reason] ?? 0
            // The input buffer's own drops belong to the component it feeds.
            if reason == .channelFull, let buffer = component.buffer { count += buffer.droppedFull }
            samples.append(
                MetricSample(
                    name: "uplink_component_dropped_events_total", help: "Events the component dropped, by reason.",
                    labels: [("reason", reason.rawValue)], value: .counter(Double(count))))
        }
        if let buffer = component.buffer {
            samples.append(
                MetricSample(
                    name: "uplink_buffer_events", help: "Events waiting in the component's input buffer.",
                    value: .gauge(Double(buffer.events))))
            if let maxEvents = buffer.maxEvents {
                samples.append(
                    MetricSample(
                        name: "uplink_buffer_max_events", help: "Capacity of the component's memory buffer in events.",
                        value: .gauge(Double(maxEvents))))
            }
            if let bytes = buffer.bytes {
                samples.append(
                    MetricSample(
                        name: "uplink_buffer_bytes", help: "Bytes in the component's disk buffer.",
                        value: .gauge(Double(bytes))))
            }
            if let maxBytes = buffer.maxBytes {
                samples.append(
                    MetricSample(
                        name: "uplink_buffer_max_bytes", help: "Capacity of the component's disk buffer in bytes.",
                        value: .gauge(Double(maxBytes))))
            }
            if buffer.kind == .disk {
                samples.append(
                    MetricSample(
                        name: "uplink_buffer_damaged_records_total",
                        help: "Records of the disk buffer found damaged and skipped.",
                        value: .counter(Double(buffer.damagedRecords))))
            }
        }
        return samples
    }
}

/// The samples of one scrape, grouped by name, checked, then emitted through swift-prometheus (counters and
/// gauges) or as text (histograms).
///
/// swift-prometheus stops the process when one name is registered with two types, two help texts, or with and
/// without labels; samples come from plugins too, so a conflicting one is dropped here instead.
struct MetricFamilies {
    private struct Family {
        var help: String
        var kind: Kind
        var labeled: Bool
        var series: [(labels: [(String, String)], value: MetricSample.Value)] = []
    }

    private enum Kind: Equatable { case counter, gauge, histogram }

    private var families: [String: Family] = [:]
    private var order: [String] = []
    /// Names of samples left out for a conflict, for the caller's log.
    private(set) var rejected: Set<String> = []

    mutating func add(_ sample: MetricSample, componentLabels: [(String, String)] = []) {
        let kind: Kind
        switch sample.value {
        case .counter: kind = .counter
        case .gauge: kind = .gauge
        case .histogram: kind = .histogram
        }
        var labels = componentLabels
        for (name, value) in sample.labels where !labels.contains(where: { $0.0 == name }) && name != "le" {
            labels.append((name, value))
        }
        guard PrometheusText.isValidName(sample.name), labels.allSatisfy({ PrometheusText.isValidName($0.0) }) else {
            rejected.insert(sample.name)
            return
        }
        if var family = families[sample.name] {
            guard family.kind == kind, family.labeled == !labels.isEmpty else {
                rejected.insert(sample.name)
                return
            }
            family.series.append((labels, sample.value))
            families[sample.name] = family
        } else {
            order.append(sample.name)
            families[sample.name] = Family(
                help: sample.help, kind: kind, labeled: !labels.isEmpty, series: [(labels, sample.value)])
        }
    }

    func emit() -> [UInt8] {
        let registry = PrometheusCollectorRegistry()
        var histograms: [UInt8] = []
        for name in order {
            guard let family = families[name] else { continue }
            // The first help text of a name wins, so swift-prometheus never sees two.
            let descriptor = MetricNameDescriptor(metricName: name, unitName: "", helpText: family.help)
            for series in family.series {
                switch series.value {
                case .counter(let value):
                    let counter = registry.makeCounter(descriptor: descriptor, labels: series.labels)
                    // Whole counts print as integers.
                    if value >= 0 && value < 9e15 && value == value.rounded() {
                        counter.increment(by: Int64(value))
                    } else {
                        counter.increment(by: max(0, value))
                    }
                case .gauge(let value):
                    registry.makeGauge(descriptor: descriptor, labels: series.labels).set(value)
                case .histogram:
                    break
                }
            }
            if family.kind == .histogram {
                PrometheusText.appendHistogramFamily(
                    name: name, help: family.help,
                    series: family.series.compactMap { series in
                        if case .histogram(let value) = series.value { return (series.labels, value) }
                        return nil
                    }, to: &histograms)
            }
        }
        var output: [UInt8] = []
        registry.emit(into: &output)
        output += histograms
        return output
    }
}

extension Duration {
    /// Seconds as a floating-point number.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
