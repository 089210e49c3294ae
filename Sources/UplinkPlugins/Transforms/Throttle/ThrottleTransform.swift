import UplinkCore

/// `throttle`: limits records or messages to a rate, per `group_by` key (``ThrottleBuckets``), for boards on
/// metered links.
///
/// `events: 100/s` counts events; `bytes: 64KiB/min` counts records' size encoded as JSON, or messages' body
/// size. `group_by` applies to records. Over the rate,
/// `when_exceeded: drop` drops the record, counts it (`reason="throttled"`) and acknowledges it as a final
/// answer; `wait` holds it until the budget returns, so the stage stops reading and its input buffer applies
/// back-pressure upstream (nothing is lost).
public struct ThrottleTransform<Input: Event>: TransformStage {
    public typealias Output = Input

    enum WhenExceeded: String, CaseIterable, Sendable {
        case drop, wait
    }

    public static var descriptor: PluginDescriptor { PluginDescriptor(
        type: "throttle", role: .transform,
        summary: "Limits records to a rate in events or bytes per period, per group_by key; drops (counted, acknowledged) or waits (back-pressure).",
        options: [
            OptionSpec("events", .string, "the rate in records, `100/s` (per s, min, h, day, or a duration like 10s); one of events or bytes"),
            OptionSpec("bytes", .string, "the rate in bytes of the records encoded as JSON, `64KiB/min`; a record over a whole period's budget passes alone when the budget is full"),
            OptionSpec("when_exceeded", .enumeration(WhenExceeded.allCases.map(\.rawValue)), default: "drop", "drop: drop and count (acknowledged as final); wait: hold the record until the budget returns (back-pressure)"),
        ] + GroupKeys.options(whenFull: "new keys share one bucket"),
        accepts: [.record, .message], output: .sameAsInput
    ) { context in
        if context.inputKind == .message {
            if context.config.contains("group_by") {
                context.config.error("'group_by' needs record input: messages have no fields", at: "group_by")
            }
            return .transform(ThrottleTransform<Message>(config: context.config))
        }
        return .transform(ThrottleTransform<Record>(config: context.config))
    } }

    var buckets: ThrottleBuckets
    let countsBytes: Bool
    let whenExceeded: WhenExceeded
    var clock = UnixClock.system
    /// Waits this many milliseconds; tests replace it to move an injected clock instead.
    var wait: @Sendable (Int64) async throws -> Void = { try await Task.sleep(for: .milliseconds($0)) }

    init(config: ConfigReader) {
        let events = config.string("events"), bytes = config.string("bytes")
        var rate = ThrottleBuckets.Rate(amount: 1, periodMilliseconds: 1_000)
        switch (events, bytes) {
        case (nil, nil):
            config.error("throttle needs a rate: 'events' (for example 100/s) or 'bytes' (for example 64KiB/min)")
        case (.some, .some):
            config.error("set one of 'events' and 'bytes', not both", at: "bytes")
        case (let text?, nil):
            if let parsed = ThrottleBuckets.Rate(text, sizes: false) {
                rate = parsed
            } else {
                config.error("'events' must be a whole number per period, like 100/s, 600/min or 5/10s, got '\(text)'", at: "events")
            }
        case (nil, let text?):
            if let parsed = ThrottleBuckets.Rate(text, sizes: true) {
                rate = parsed
            } else {
                config.error("'bytes' must be a size per period, like 64KiB/min or 1MB/h, got '\(text)'", at: "bytes")
            }
        }
        countsBytes = bytes != nil
        whenExceeded = config.enumeration("when_exceeded", default: .drop)
        buckets = ThrottleBuckets(rate: rate, groups: GroupKeys.read(from: config))
    }

    public func run(context: ComponentContext, input: Inbox<Input>, output: Outbox<Input>) async throws {
        var buckets = self.buckets
        let limitHits = GroupKeys.limitHits(context)
        var encoded: [UInt8] = []
        for await chunk in input {
            var passed: [Input] = []
            var dropped = 0
            // The acknowledgements of what is not sent on yet (a share of the chunk's after a part went on).
            var rest = chunk.acknowledgements
            for event in chunk.events {
                var cost = 1
                var key: GroupKeys.Key = []
                // One dynamic cast per event; this generic body is not specialised.
                if let record = event as? Record {
                    if countsBytes {
                        encoded.removeAll(keepingCapacity: true)
                        record.fields.appendJSON(to: &encoded)
                        cost = encoded.count
                    }
                    key = buckets.groups.key(of: record)
                } else if countsBytes, let message = event as? Message {
                    cost = message.body.count
                }
                while true {
                    var overLimit = false
                    let decision = buckets.take(cost, key: key, now: clock.now(), overLimit: &overLimit)
                    if overLimit { limitHits.increment() }
                    guard case .exceeded(let milliseconds) = decision else {
                        passed.append(event)
                        break
                    }
                    if whenExceeded == .drop {
                        dropped += 1
                        break
                    }
                    // What passed goes on before the stage waits, with a share of the chunk's acknowledgements;
                    // the rest of the chunk keeps another (made first), so the chunk counts as delivered only
                    // once every part was, and a part never sent (a stop during the wait) holds it back.
                    if !passed.isEmpty {
                        let shares = rest.shared(among: 2)
                        try await output.send(EventChunk(passed, acknowledgements: shares[0]))
                        rest = shares[1]
                        passed.removeAll()
                    }
                    try await wait(milliseconds)
                }
            }
            if dropped > 0 { context.metrics.dropped(dropped, reason: .throttled) }
            if passed.isEmpty {
                // Dropped over the rate is a final answer (or everything already went on before a wait).
                rest.resolve(.delivered)
                continue
            }
            try await output.send(EventChunk(passed, acknowledgements: rest))
        }
    }
}
