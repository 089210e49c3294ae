import Synchronization

/// The counters every component reports, under the same names for all (Vector's component spec):
/// events and bytes received and sent, events dropped (by reason), and errors. Updated once per chunk, not per
/// event.
///
/// Besides the common set, a component can publish its own metrics (``counter(_:help:labels:)``,
/// ``gauge(_:help:labels:)``, or a ``addReporter(_:)`` closure called only when someone reads them) and say
/// that it is failing (``ComponentReport/failure``), which the `/health` endpoint turns into an answer.
/// Nothing here formats or exports: the API listener reads snapshots when it is asked.
public final class ComponentMetrics: Sendable {
    public let receivedEvents = Atomic<Int>(0)
    public let receivedBytes = Atomic<Int>(0)
    public let sentEvents = Atomic<Int>(0)
    public let sentBytes = Atomic<Int>(0)
    /// Every dropped event, whatever the reason (the sum of the per-reason counters).
    public let droppedEvents = Atomic<Int>(0)
    public let errors = Atomic<Int>(0)

    // One atomic per reason rather than a dictionary: a drop stays lock-free.
    private let droppedChannelFull = Atomic<Int>(0)
    private let droppedConsumerGone = Atomic<Int>(0)
    private let droppedDeadLetter = Atomic<Int>(0)
    private let droppedParseError = Atomic<Int>(0)
    private let droppedProcessingError = Atomic<Int>(0)
    private let droppedPolicy = Atomic<Int>(0)
    private let droppedFiltered = Atomic<Int>(0)
    private let droppedUnmatched = Atomic<Int>(0)
    private let droppedDeadband = Atomic<Int>(0)
    private let droppedThrottled = Atomic<Int>(0)

    private let stateValue = Atomic<Int>(ComponentState.pending.rawValue)
    private let extras = Mutex(Extras())

    /// Where `uplink tap` attaches: events leaving this component (through its ``Outbox``) are copied to
    /// attached readers. One atomic load per chunk while nobody is attached.
    public let tap = TapPoint()
    private let outputTaps = Mutex<[String: TapPoint]>([:])

    /// The taps of the component's named outputs that readers have asked for so far.
    public var outputTapPoints: [TapPoint] { outputTaps.withLock { Array($0.values) } }

    /// Where `uplink tap <id>.<output>` attaches to one named output of the component (``NamedOutputStage``).
    public func tap(output name: String) -> TapPoint {
        outputTaps.withLock { taps in
            if let existing = taps[name] { return existing }
            let tap = TapPoint()
            taps[name] = tap
            return tap
        }
    }

    private struct Extras {
        var counters: [ExtraCounter] = []
        var gauges: [ExtraGauge] = []
        var reporters: [@Sendable () -> ComponentReport] = []
    }

    public init() {}

    public func received(events: Int, bytes: Int) {
        receivedEvents.add(events, ordering: .relaxed)
        receivedBytes.add(bytes, ordering: .relaxed)
    }

    public func sent(events: Int, bytes: Int) {
        sentEvents.add(events, ordering: .relaxed)
        sentBytes.add(bytes, ordering: .relaxed)
    }

    /// Counts events that will never reach the next component, and why.
    public func dropped(_ events: Int, reason: DropReason = .policy) {
        droppedEvents.add(events, ordering: .relaxed)
        switch reason {
        case .channelFull: droppedChannelFull.add(events, ordering: .relaxed)
        case .consumerGone: droppedConsumerGone.add(events, ordering: .relaxed)
        case .deadLetter: droppedDeadLetter.add(events, ordering: .relaxed)
        case .parseError: droppedParseError.add(events, ordering: .relaxed)
        case .processingError: droppedProcessingError.add(events, ordering: .relaxed)
        case .policy: droppedPolicy.add(events, ordering: .relaxed)
        case .filtered: droppedFiltered.add(events, ordering: .relaxed)
        case .unmatched: droppedUnmatched.add(events, ordering: .relaxed)
        case .deadband: droppedDeadband.add(events, ordering: .relaxed)
        case .throttled: droppedThrottled.add(events, ordering: .relaxed)
        }
    }

    public func error(_ count: Int = 1) {
        errors.add(count, ordering: .relaxed)
    }

    /// Events dropped for `reason` so far.
    public func droppedEvents(reason: DropReason) -> Int {
        switch reason {
        case .channelFull: return droppedChannelFull.load(ordering: .relaxed)
        case .consumerGone: return droppedConsumerGone.load(ordering: .relaxed)
        case .deadLetter: return droppedDeadLetter.load(ordering: .relaxed)
        case .parseError: return droppedParseError.load(ordering: .relaxed)
        case .processingError: return droppedProcessingError.load(ordering: .relaxed)
        case .policy: return droppedPolicy.load(ordering: .relaxed)
        case .filtered: return droppedFiltered.load(ordering: .relaxed)
        case .unmatched: return droppedUnmatched.load(ordering: .relaxed)
        case .deadband: return droppedDeadband.load(ordering: .relaxed)
        case .throttled: return droppedThrottled.load(ordering: .relaxed)
        }
    }

    // MARK: Life cycle

    /// Where the component is in its life; the engine sets it.
    public var state: ComponentState {
        ComponentState(rawValue: stateValue.load(ordering: .relaxed)) ?? .pending
    }

    /// Set by the engine when it starts and ends the component (and by test harnesses that run one).
    public func setState(_ state: ComponentState) {
        stateValue.store(state.rawValue, ordering: .relaxed)
    }

    // MARK: Component-specific metrics

    /// A counter of this component's own, registered once (for example `uplink_serial_reconnects_total`).
    /// Asking again for the same name and labels returns the same counter. The exporter adds the component's
    /// `component_id`, `component_type` and `component_kind` labels.
    public func counter(_ name: String, help: String, labels: [(String, String)] = []) -> ExtraCounter {
        extras.withLock { extras in
            if let existing = extras.counters.first(where: { $0.name == name && $0.labels.elementsEqual(labels, by: ==) }) {
                return existing
            }
            let counter = ExtraCounter(name: name, help: help, labels: labels)
            extras.counters.append(counter)
            return counter
        }
    }

    /// A gauge of this component's own, registered once (for example `uplink_buffer_bytes`).
    public func gauge(_ name: String, help: String, labels: [(String, String)] = []) -> ExtraGauge {
        extras.withLock { extras in
            if let existing = extras.gauges.first(where: { $0.name == name && $0.labels.elementsEqual(labels, by: ==) }) {
                return existing
            }
            let gauge = ExtraGauge(name: name, help: help, labels: labels)
            extras.gauges.append(gauge)
            return gauge
        }
    }

    /// Registers a closure that reports metrics kept elsewhere (a client's statistics, a histogram) and whether
    /// the component is failing. It is called when `/metrics` or `/health` is read, never on the data path, so
    /// it may take a lock; it must not block.
    public func addReporter(_ reporter: @escaping @Sendable () -> ComponentReport) {
        extras.withLock { $0.reporters.append(reporter) }
    }

    /// The component's own metrics and health now: registered counters and gauges, then every reporter's.
    public func report() -> ComponentReport {
        let (counters, gauges, reporters) = extras.withLock { ($0.counters, $0.gauges, $0.reporters) }
        var report = ComponentReport()
        for counter in counters {
            report.samples.append(
                MetricSample(name: counter.name, help: counter.help, labels: counter.labels, value: .counter(Double(counter.value))))
        }
        for gauge in gauges {
            report.samples.append(
                MetricSample(name: gauge.name, help: gauge.help, labels: gauge.labels, value: .gauge(Double(gauge.value))))
        }
        for reporter in reporters {
            let part = reporter()
            report.samples += part.samples
            if let failure = part.failure, report.failure == nil || failure.since < report.failure!.since {
                report.failure = failure
            }
        }
        return report
    }

    /// A consistent-enough snapshot for summaries and the API.
    public var snapshot: Snapshot {
        Snapshot(
            receivedEvents: receivedEvents.load(ordering: .relaxed),
            receivedBytes: receivedBytes.load(ordering: .relaxed),
            sentEvents: sentEvents.load(ordering: .relaxed),
            sentBytes: sentBytes.load(ordering: .relaxed),
            droppedEvents: droppedEvents.load(ordering: .relaxed),
            errors: errors.load(ordering: .relaxed),
            droppedByReason: Dictionary(uniqueKeysWithValues: DropReason.allCases.map { ($0, droppedEvents(reason: $0)) })
        )
    }

    public struct Snapshot: Sendable, Equatable {
        public var receivedEvents: Int
        public var receivedBytes: Int
        public var sentEvents: Int
        public var sentBytes: Int
        public var droppedEvents: Int
        public var errors: Int
        /// Dropped events by reason, every reason listed (zeros included).
        public var droppedByReason: [DropReason: Int]

        public init(
            receivedEvents: Int = 0, receivedBytes: Int = 0, sentEvents: Int = 0, sentBytes: Int = 0,
            droppedEvents: Int = 0, errors: Int = 0, droppedByReason: [DropReason: Int] = [:]
        ) {
            self.receivedEvents = receivedEvents
            self.receivedBytes = receivedBytes
            self.sentEvents = sentEvents
            self.sentBytes = sentBytes
            self.droppedEvents = droppedEvents
            self.errors = errors
            self.droppedByReason = droppedByReason
        }
    }
}

/// Why events were dropped: the `reason` label of `uplink_component_dropped_events_total`. A small fixed set,
/// so dashboards can rely on it.
public enum DropReason: String, Sendable, CaseIterable, Hashable {
    /// A bounded buffer was full under a `drop_newest` / `drop_oldest` policy (or a serial line outran the
    /// pipeline).
    case channelFull = "channel_full"
    /// The downstream component stopped (it failed, or the pipeline is tearing down).
    case consumerGone = "consumer_gone"
    /// Written to a dead-letter file instead of being delivered.
    case deadLetter = "dead_letter"
    /// A transform could not interpret the event (or a plugin emitted an invalid one) and it was dropped.
    case parseError = "parse_error"
    /// A plugin failed to process a batch and gave it up.
    case processingError = "processing_error"
    /// Discarded on purpose by a component's own rules.
    case policy
    /// Failed a `filter` condition.
    case filtered
    /// Matched no route of a `route`, or went to a route output that no component reads.
    case unmatched
    /// Suppressed by `deadband`: no watched field moved past its band (a final answer, acknowledged).
    case deadband
    /// Over a `throttle` rate with `when_exceeded: drop` (a final answer, acknowledged).
    case throttled
}

/// Where a component is in its life.
public enum ComponentState: Int, Sendable, CaseIterable {
    /// Built, not started yet.
    case pending
    case running
    /// Ended normally (its input ended, or it was stopped).
    case finished
    /// Ended with an error: `/health` reports it.
    case failed

    /// The lowercase name used by the API.
    public var name: String {
        switch self {
        case .pending: return "pending"
        case .running: return "running"
        case .finished: return "finished"
        case .failed: return "failed"
        }
    }
}

/// A counter a component registered with ``ComponentMetrics/counter(_:help:labels:)``.
public final class ExtraCounter: Sendable {
    public let name: String
    public let help: String
    public let labels: [(String, String)]
    private let storage = Atomic<Int>(0)

    init(name: String, help: String, labels: [(String, String)]) {
        self.name = name
        self.help = help
        self.labels = labels
    }

    public func increment(by amount: Int = 1) { storage.add(amount, ordering: .relaxed) }

    public var value: Int { storage.load(ordering: .relaxed) }
}

/// A gauge a component registered with ``ComponentMetrics/gauge(_:help:labels:)``.
public final class ExtraGauge: Sendable {
    public let name: String
    public let help: String
    public let labels: [(String, String)]
    private let storage = Atomic<Int>(0)

    init(name: String, help: String, labels: [(String, String)]) {
        self.name = name
        self.help = help
        self.labels = labels
    }

    public func set(_ value: Int) { storage.store(value, ordering: .relaxed) }

    public func add(_ amount: Int) { storage.add(amount, ordering: .relaxed) }

    public var value: Int { storage.load(ordering: .relaxed) }
}

/// What a component reports beyond the common counters, when asked.
public struct ComponentReport: Sendable {
    /// Metrics with their own names; the exporter adds the component's labels.
    public var samples: [MetricSample]
    /// Set while the component cannot do its work (a sink whose requests keep failing).
    public var failure: Failure?

    public init(samples: [MetricSample] = [], failure: Failure? = nil) {
        self.samples = samples
        self.failure = failure
    }

    /// A component failing since `since`, and why (a short phrase; never a secret).
    public struct Failure: Sendable, Equatable {
        public var since: ContinuousClock.Instant
        public var reason: String

        public init(since: ContinuousClock.Instant, reason: String) {
            self.since = since
            self.reason = reason
        }
    }
}

/// One metric value, named the Prometheus way (`uplink_iotcore_requests_total`).
public struct MetricSample: Sendable {
    public enum Value: Sendable {
        case counter(Double)
        case gauge(Double)
        case histogram(HistogramValue)
    }

    public var name: String
    public var help: String
    public var labels: [(String, String)]
    public var value: Value

    public init(name: String, help: String, labels: [(String, String)] = [], value: Value) {
        self.name = name
        self.help = help
        self.labels = labels
        self.value = value
    }
}

/// A histogram's state: per-bucket counts (not cumulative), their upper bounds, the sum and the count.
public struct HistogramValue: Sendable, Equatable {
    /// Upper bounds, ascending; a last implicit `+Inf` bucket holds the rest.
    public var bounds: [Double]
    /// `bounds.count + 1` counts; `bucketCounts[i]` counts observations in `(bounds[i-1], bounds[i]]`.
    public var bucketCounts: [Int]
    public var sum: Double
    public var count: Int

    public init(bounds: [Double], bucketCounts: [Int], sum: Double, count: Int) {
        self.bounds = bounds
        self.bucketCounts = bucketCounts
        self.sum = sum
        self.count = count
    }
}
