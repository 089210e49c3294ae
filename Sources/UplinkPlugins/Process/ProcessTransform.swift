import Logging
import UplinkCore

/// `type: process` as a transform: a long-running child that receives batches of events as JSON lines and
/// answers with the events they become (see ``ProcessProtocol``).
///
/// Outputs are forwarded when the plugin acknowledges the batch they came from, carrying that batch's
/// acknowledgements, so an input is released only once its outputs are downstream; if the plugin crashes, the
/// batches it had not acknowledged are sent again to the restarted plugin and nothing is lost or forwarded
/// twice.
public struct ProcessTransform<Input: Event, Output: Event>: TransformStage, ProcessPluginStage {
    public let settings: ProcessPluginSettings
    public var role: ComponentRole { .transform }

    public init(settings: ProcessPluginSettings) {
        self.settings = settings
    }

    public static var descriptor: PluginDescriptor {
        PluginDescriptor(
            type: "process", role: .transform,
            summary:
                "Runs a program in any language that transforms events over newline-delimited JSON on stdin/stdout.",
            options: ProcessPluginSettings.options(for: .transform), accepts: Set(EventKind.allCases),
            output: .fromOption("output_kind", default: .record), origin: ProcessPluginSettings.origin
        ) { context in
            let settings = ProcessPluginSettings.read(context.config, role: .transform, inputKind: context.inputKind)
            func make<I: Event, O: Event>(_: I.Type, _: O.Type) -> BuiltStage {
                .transform(ProcessTransform<I, O>(settings: settings))
            }
            func withInput<I: Event>(_ input: I.Type) -> BuiltStage {
                let output: any Event.Type = (settings.outputKind ?? EventKind.record).eventType
                return make(input, output)
            }
            let input: any Event.Type = (settings.inputKind ?? EventKind.record).eventType
            return withInput(input)
        }
    }

    public func run(context: ComponentContext, input: Inbox<Input>, output: Outbox<Output>) async throws {
        let consumer = ProcessConsumer<Input>(settings: settings, role: .transform) { batch, values, failure in
            // A batch the plugin gave up is dropped whole (counted), as the built-ins drop what they cannot
            // parse; outputs it may have emitted for it are not forwarded.
            if failure != nil {
                context.metrics.dropped(batch.count, reason: .processingError)
                return
            }
            var events: [Output] = []
            events.reserveCapacity(values.count)
            var dropped = 0
            for value in values {
                do {
                    events.append(
                        try EventCodec.decode(value, as: Output.self, origin: batch.origin, timestamp: batch.timestamp))
                } catch {
                    dropped += 1
                    if dropped == 1 {
                        context.logger.warning(
                            "process plugin emitted an event that is not a valid \(Output.kind.rawValue); dropped",
                            metadata: ["error": "\(error)", "plugin.batch": "\(batch.id)"])
                    }
                }
            }
            if dropped > 0 {
                context.metrics.error(dropped)
                context.metrics.dropped(dropped, reason: .parseError)
            }
            // With no outputs (a filter), the empty chunk is not sent and the batch's references to its
            // acknowledgements go away here, as they do for the built-ins' dropped events.
            try await output.send(EventChunk(events, acknowledgements: batch.acknowledgements))
        }
        try await consumer.run(context: context, input: input)
    }
}
