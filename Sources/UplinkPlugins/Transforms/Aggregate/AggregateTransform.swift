import UplinkCore
import UplinkYAML

/// `aggregate`: tumbling windows aligned to the clock. One record per `group_by` key per window, with
/// `<field>_<function>` for each requested function, `count` (records in the window), `window_start` and
/// `window_end` (Unix ms) and the `group_by` fields (``AggregateWindows``).
///
/// Windows close when the clock passes their end, even while the input is idle, and whatever is open is sent
/// when the input ends (shutdown, and a reload that replaces or removes the stage), so nothing is lost. Each
/// output record carries the acknowledgements of all its inputs: a tail checkpoint moves past them only once the
/// aggregate is delivered.
public struct AggregateTransform: TransformStage {
    public typealias Input = Record
    public typealias Output = Record

    public static let descriptor = PluginDescriptor(
        type: "aggregate", role: .transform,
        summary: "Tumbling windows aligned to the clock: one record per group_by key per window with mean, min, max, sum, count, first or last of fields.",
        options: [
            OptionSpec("window", .duration, required: true, "the window length (1s to 24h), aligned to the clock: 1m windows start at each whole minute"),
            OptionSpec("fields", .map(key: "field name", value: "function or list of functions (mean, min, max, sum, count, first, last)"), required: true, "the functions per field, `{temp: [mean, min, max], hum: last}`: mean, min, max, sum (numbers), count, first, last (any non-null value); a function with no value in a window leaves its field out"),
        ] + GroupKeys.options(whenFull: "a new key's record is sent at once as a window of its own"),
        accepts: [.record], output: .kind(.record)
    ) { context in
        .transform(AggregateTransform(config: context.config))
    }

    var windows: AggregateWindows
    var clock = UnixClock.system

    init(config: ConfigReader) {
        var fields: [(name: String, functions: [AggregateWindows.Function])] = []
        if let node = config.value("fields") {
            if let pairs = node.mapping, !pairs.isEmpty {
                for pair in pairs {
                    guard let name = pair.key.scalar, !name.isEmpty else {
                        config.diagnostics.error("'fields' keys must be field names", file: config.file, at: pair.key.mark)
                        continue
                    }
                    let items = pair.value.sequence ?? [pair.value]
                    var functions: [AggregateWindows.Function] = []
                    for item in items {
                        guard let text = item.scalar else {
                            config.diagnostics.error(
                                "the functions of '\(name)' must be names or a list of names", file: config.file, at: item.mark)
                            continue
                        }
                        guard let function = AggregateWindows.Function(rawValue: text) else {
                            let allowed = AggregateWindows.Function.allCases.map(\.rawValue)
                            var message = "unknown function '\(text)' for '\(name)'; one of \(allowed.joined(separator: ", "))"
                            if let hint = ValueParsing.suggestion(for: text, among: allowed) { message += "; did you mean '\(hint)'?" }
                            config.diagnostics.error(message, file: config.file, at: item.mark)
                            continue
                        }
                        if !functions.contains(function) { functions.append(function) }
                    }
                    if items.isEmpty {
                        config.diagnostics.error("'\(name)' needs at least one function", file: config.file, at: pair.key.mark)
                    }
                    fields.append((name, functions))
                }
            } else {
                config.error("'fields' must map fields to functions, for example {temp: [mean, max], hum: last}", at: "fields")
            }
        }
        var milliseconds: Int64 = 60_000
        if let window = config.duration("window") {
            if window < .seconds(1) || window > .seconds(86_400) {
                config.error("'window' must be between 1s and 24h, got \(window)", at: "window")
            } else {
                milliseconds = window.milliseconds
            }
        }
        let groups = GroupKeys.read(from: config)
        for group in groups.fields where fields.contains(where: { $0.name == group }) {
            config.error("'\(group)' is both a group_by field and an aggregated field", at: "group_by")
        }
        windows = AggregateWindows(windowMilliseconds: milliseconds, fields: fields, groups: groups)
    }

    public func run(context: ComponentContext, input: Inbox<Record>, output: Outbox<Record>) async throws {
        var windows = self.windows
        let limitHits = GroupKeys.limitHits(context)
        var closed: [AggregateWindows.Closed] = []
        // Numbers the input chunks, so a window takes one share of each chunk whose records join it.
        var chunkNumber = -1
        while true {
            let poll: Inbox<Record>.Poll
            if let end = windows.nextClose {
                let now = clock.now()
                if now >= end {
                    windows.closeExpired(now: now, into: &closed)
                    try await send(&closed, to: output)
                    continue
                }
                // Wake at the window's end even if the input stays idle.
                poll = await input.next(until: .now + .milliseconds(end - now))
            } else if let chunk = await input.next() {
                poll = .chunk(chunk)
            } else {
                poll = .ended
            }
            switch poll {
            case .chunk(let chunk):
                let now = clock.now()
                chunkNumber += 1
                for record in chunk.events {
                    if !windows.add(
                        record, acknowledgements: chunk.acknowledgements, chunk: chunkNumber, now: now, into: &closed)
                    {
                        limitHits.increment()
                    }
                }
                if chunk.events.isEmpty { chunk.acknowledgements.resolve(.delivered) }
                try await send(&closed, to: output)
            case .timedOut:
                continue
            case .ended:
                windows.closeAll(into: &closed)
                try await send(&closed, to: output)
                return
            }
        }
    }

    /// One chunk per aggregate, so each carries exactly its own inputs' acknowledgements.
    private func send(_ closed: inout [AggregateWindows.Closed], to output: Outbox<Record>) async throws {
        for window in closed {
            try await output.send(EventChunk([window.record], acknowledgements: window.acknowledgements))
        }
        closed.removeAll(keepingCapacity: true)
    }
}
