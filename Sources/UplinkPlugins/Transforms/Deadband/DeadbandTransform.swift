import UplinkCore

/// `deadband`: report by exception. Passes a record only when a watched field moved by more than its band since
/// the last record passed for the same `group_by` key, or when `max_interval` has passed since then (a
/// heartbeat, checked when a record arrives), and always the first record of a key (``DeadbandFilter``).
///
/// A suppressed record is a final answer, not a loss: it is counted (`reason="deadband"`) and its acknowledgement
/// resolves as delivered, so a tail checkpoint moves on. Past `max_groups` keys, records of a new key pass
/// unfiltered and are counted, so a bound never loses data.
public struct DeadbandTransform: TransformStage {
    public typealias Input = Record
    public typealias Output = Record

    public static let descriptor = PluginDescriptor(
        type: "deadband", role: .transform,
        summary: "Report by exception: passes a record only when a watched field moved past its band (absolute or %) since the last one passed for its key, or after max_interval.",
        options: [
            OptionSpec("fields", .map(key: "field name", value: "band (a number, or a percentage such as 2%)"), required: true, "watched fields and their bands, `{temp: 0.5, hum: 2%}`: an absolute distance, or a percent of the last passed value; numbers compare by distance, anything else (missing, null, text) by equality"),
            OptionSpec("max_interval", .duration, "pass a record anyway when this long has passed since the last one passed for its key (a heartbeat); default: never"),
        ] + GroupKeys.options(whenFull: "records of a new key pass unfiltered"),
        accepts: [.record], output: .kind(.record)
    ) { context in
        .transform(DeadbandTransform(config: context.config))
    }

    var filter: DeadbandFilter
    var clock = UnixClock.system

    init(config: ConfigReader) {
        var fields: [(name: String, band: DeadbandFilter.Band)] = []
        let entries = config.entries("fields")
        if let entries, entries.isEmpty { config.error("'fields' must name at least one field", at: "fields") }
        for entry in entries ?? [] {
            guard let text = entry.value else {
                config.error("'fields' must map each field to a band, for example {temp: 0.5, hum: 2%}", at: entry)
                continue
            }
            guard let band = DeadbandFilter.Band(text) else {
                config.error("the band of '\(entry.key)' must be a number >= 0 or a percent like 2%, got '\(text)'", at: entry)
                continue
            }
            if fields.contains(where: { $0.name == entry.key }) {
                config.error("field '\(entry.key)' is listed twice", at: entry)
            }
            fields.append((entry.key, band))
        }
        var maxInterval: Int64?
        if let interval = config.duration("max_interval") {
            if interval < .milliseconds(1) {
                config.error("'max_interval' must be at least 1ms", at: "max_interval")
            } else {
                maxInterval = interval.milliseconds
            }
        }
        filter = DeadbandFilter(fields: fields, groups: GroupKeys.read(from: config), maxInterval: maxInterval)
    }

    public func run(context: ComponentContext, input: Inbox<Record>, output: Outbox<Record>) async throws {
        var filter = self.filter
        let limitHits = GroupKeys.limitHits(context)
        for await chunk in input {
            let now = clock.now()
            var passed: [Record] = []
            var suppressed = 0
            for record in chunk.events {
                switch filter.decide(record, now: now) {
                case .emit: passed.append(record)
                case .suppress: suppressed += 1
                case .emitOverLimit:
                    limitHits.increment()
                    passed.append(record)
                }
            }
            if suppressed > 0 { context.metrics.dropped(suppressed, reason: .deadband) }
            if passed.isEmpty {
                // Suppressed is a final answer, so a source's checkpoint moves past these records.
                chunk.acknowledgements.resolve(.delivered)
                continue
            }
            try await output.send(EventChunk(passed, acknowledgements: chunk.acknowledgements))
        }
    }
}

extension Duration {
    /// Whole milliseconds (rounded down).
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
