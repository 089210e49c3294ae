import UplinkCore

/// `filter`: passes the records (or messages) for which `condition` is true.
///
/// What fails the condition is dropped, counted as `dropped_events_total{reason="filtered"}`, and answered as
/// final: a chunk whose every event was filtered out resolves its acknowledgements as delivered, so a file tail's
/// checkpoint moves past it (one that keeps some events is answered when those are). A condition that cannot be
/// evaluated for an event follows `on_error` (`keep` passes the event).
public struct FilterTransform<E: ExpressionSubject>: InlineTransform {
    public typealias Input = E
    public typealias Output = E

    public static var descriptor: PluginDescriptor {
        PluginDescriptor(
            type: "filter", role: .transform,
            summary: "Passes the records or messages for which a condition holds; drops the rest, counted (reason \"filtered\").",
            options: [
                OptionSpec(
                    "condition", .string, required: true,
                    "an expression giving true or false (docs/expressions.md), e.g. '.temp > -40 && .temp < 125'; messages expose .topic and their JSON body's fields"),
                ExpressionErrorPolicy.option(keep: "passes the event"),
            ] + DeadLetterSettings.options,
            accepts: [.record, .message], output: .sameAsInput
        ) { context in
            switch context.inputKind {
            case .message: return .transform(try FilterTransform<Message>(config: context.config))
            default: return .transform(try FilterTransform<Record>(config: context.config))
            }
        }
    }

    public let condition: Expression
    public let onError: ExpressionErrorPolicy
    let deadLetters: DeadLetterSettings

    public init(condition: Expression, onError: ExpressionErrorPolicy = .drop) {
        self.condition = condition
        self.onError = onError
        deadLetters = DeadLetterSettings()
    }

    init(config: ConfigReader) throws {
        let (policy, deadLetters) = ExpressionErrorPolicy.read(from: config)
        guard let condition = config.expression("condition", condition: true) else {
            // Reported where it is written (or as a missing required option).
            throw PluginBuildError.reported
        }
        self.condition = condition
        onError = policy
        self.deadLetters = deadLetters
    }

    public func makeProcessor(context: ComponentContext) -> Processor {
        Processor(stage: self, context: context)
    }

    /// One run's state: the failures' counters and dead-letter file.
    public final class Processor: ChunkProcessor {
        let condition: Expression
        let metrics: ComponentMetrics
        var failures: ExpressionFailures

        init(stage: FilterTransform, context: ComponentContext) {
            condition = stage.condition
            metrics = context.metrics
            failures = ExpressionFailures(policy: stage.onError, deadLetters: stage.deadLetters, context: context)
        }

        // The runtime calls this through the generic ChunkProcessor witness, so unspecialised it copies every
        // event (value witness, a retain per field storage) to test it; records are the hot case.
        @_specialize(where E == Record)
        public func process(_ chunk: consuming EventChunk<E>) -> EventChunk<E>? {
            // Compacted in the chunk's own array (taken out of the chunk so that copy-on-write copies nothing, when
            // nothing else holds it): no array per chunk. The byte count measured upstream goes on less the bytes
            // of what is dropped, so the outbox walks no event again.
            let measured = chunk.measuredByteCount
            var events = chunk.takeEvents()
            var droppedBytes = 0
            var kept = 0
            var filtered = 0
            for position in events.indices {
                let passes: Bool
                do {
                    // Read where it is: `events[position]` alone would copy the whole event first.
                    passes = try events.withUnsafeBufferPointer { try condition.test($0[position].expressionFields) }
                    if !passes { filtered += 1 }
                } catch {
                    passes = failures.handle(events[position], label: "condition", error: error)
                }
                guard passes else {
                    if measured != nil { droppedBytes &+= events[position].byteCount }
                    continue
                }
                if kept != position { events.swapAt(kept, position) }
                kept += 1
            }
            failures.settle(chunk.acknowledgements)
            if kept < events.count { events.removeLast(events.count - kept) }
            if filtered > 0 { metrics.dropped(filtered, reason: .filtered) }
            if events.isEmpty {
                // Every event was filtered or rejected on purpose: that is their final answer.
                chunk.acknowledgements.resolve(.delivered)
                return nil
            }
            chunk.restore(&events, byteCount: measured.map { $0 &- droppedBytes })
            return chunk
        }

        public func finish() { failures.finish() }
    }
}
