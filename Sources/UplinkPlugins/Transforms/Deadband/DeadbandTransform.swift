import UplinkCore

/// `deadband` (report by exception): passes a record only when one of `fields` moved by more than its band since
/// the last record it passed for the same `group_by` key.
///
/// A band is absolute (`temp: 0.5`) or a percentage of the last passed value (`hum: 2%`). The first record of a
/// key always passes; with `max_interval`, one passes anyway once that long (by the records' own timestamps)
/// has gone by since the last one passed for its key (a heartbeat). A field that is missing or not a number
/// neither triggers nor resets its band. What is suppressed is counted (`reason="suppressed"`) and answered as
/// final, so a tail checkpoint moves past it. Memory is bounded: at most `max_groups` keys are remembered; a
/// record of a new key beyond that passes, counted (`uplink_deadband_groups_full_total`).
public struct DeadbandTransform: TransformStage {
    public typealias Input = Record
    public typealias Output = Record

    public struct Band: Sendable, Equatable {
        public var field: String
        public var amount: Double
        /// The amount is a percentage of the last passed value.
        public var percent: Bool

        public init(field: String, amount: Double, percent: Bool = false) {
            self.field = field
            self.amount = amount
            self.percent = percent
        }
    }

    public static let descriptor = PluginDescriptor(
        type: "deadband", role: .transform,
        summary: "Report by exception: passes a record only when a field moved past its band (absolute or %) since the last one passed for its key.",
        options: [
            OptionSpec("fields", .stringMap, required: true, "field: band, absolute (temp: 0.5) or a percentage of the last passed value (hum: 2%)"),
            OptionSpec("group_by", .stringList, "fields whose values form the key each band is tracked for (e.g. [sensor]); none: one key"),
            OptionSpec("max_interval", .duration, "pass a record anyway once this long (by record time) has gone by since the last one passed for its key"),
            OptionSpec("max_groups", .int, default: "10000", "keys remembered at most; a record of a new key beyond that passes, counted"),
        ],
        accepts: [.record], output: .kind(.record)
    ) { context in
        .transform(try DeadbandTransform(config: context.config))
    }

    public var bands: [Band]
    public var groupBy: [String]
    /// Milliseconds; nil for no heartbeat.
    public var maxInterval: Int64?
    public var maxGroups: Int

    public init(bands: [Band], groupBy: [String] = [], maxInterval: Duration? = nil, maxGroups: Int = 10_000) {
        self.bands = bands
        self.groupBy = groupBy
        self.maxInterval = maxInterval.map { Int64($0.components.seconds) * 1000 + $0.components.attoseconds / 1_000_000_000_000_000 }
        self.maxGroups = maxGroups
    }

    init(config: ConfigReader) throws {
        var bands: [Band] = []
        let entries = config.stringMap("fields")
        for (field, text) in entries ?? [] {
            let trimmed = String(text.filter { $0 != " " })
            let percent = trimmed.hasSuffix("%")
            guard let amount = Double(percent ? String(trimmed.dropLast()) : trimmed), amount.isFinite, amount >= 0 else {
                config.error("'fields': the band of '\(field)' must be a number (0.5) or a percentage (2%), got '\(text)'", at: "fields")
                continue
            }
            bands.append(Band(field: field, amount: amount, percent: percent))
        }
        if entries?.isEmpty == true {
            config.error("'fields' is empty: name at least one field and its band", at: "fields")
        }
        guard !bands.isEmpty else { throw PluginBuildError.reported }
        self.init(
            bands: bands, groupBy: config.stringList("group_by") ?? [], maxInterval: config.duration("max_interval"),
            maxGroups: config.int("max_groups", default: 10_000, range: 1...10_000_000))
    }

    /// What is remembered per key: the values last passed, and when.
    struct Last {
        var values: [Double?]
        var timestamp: Int64
    }

    public func run(context: ComponentContext, input: Inbox<Record>, output: Outbox<Record>) async throws {
        var state: [[Value]: Last] = [:]
        let groupsFull = context.metrics.counter(
            "uplink_deadband_groups_full_total", help: "Records passed unfiltered because max_groups keys were already tracked.")
        for await chunk in input {
            var passed: [Record] = []
            passed.reserveCapacity(chunk.count)
            for record in chunk.events {
                if decide(record, state: &state, groupsFull: groupsFull) { passed.append(record) }
            }
            let suppressed = chunk.count - passed.count
            if suppressed > 0 { context.metrics.dropped(suppressed, reason: .suppressed) }
            if passed.isEmpty {
                chunk.acknowledgements.resolve(.delivered)
                continue
            }
            try await output.send(EventChunk(passed, acknowledgements: chunk.acknowledgements))
        }
    }

    /// Whether `record` passes; updates what is remembered for its key when it does.
    func decide(_ record: Record, state: inout [[Value]: Last], groupsFull: ExtraCounter? = nil) -> Bool {
        let key = groupBy.map { record.fields[$0] ?? .null }
        let values = bands.map { Self.number(record.fields[$0.field]) }
        guard var last = state[key] else {
            if state.count >= maxGroups {
                groupsFull?.increment()
                return true
            }
            state[key] = Last(values: values, timestamp: record.timestamp)
            return true
        }
        var moved = false
        if let maxInterval, record.timestamp - last.timestamp >= maxInterval { moved = true }
        for (index, band) in bands.enumerated() {
            guard let value = values[index] else { continue }
            guard let previous = last.values[index] else {
                moved = true
                continue
            }
            let width = band.percent ? abs(previous) * band.amount / 100 : band.amount
            if abs(value - previous) > width { moved = true }
        }
        guard moved else { return false }
        for index in values.indices where values[index] != nil { last.values[index] = values[index] }
        last.timestamp = record.timestamp
        state[key] = last
        return true
    }

    private static func number(_ value: Value?) -> Double? {
        switch value {
        case .int(let number)?: return Double(number)
        case .double(let number)? where number.isFinite: return number
        default: return nil
        }
    }
}
