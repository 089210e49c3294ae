import Logging
import UplinkCore

/// `type: process` as a sink: a long-running child that receives batches of events as JSON lines and
/// acknowledges each batch once it has delivered it (see ``ProcessProtocol``).
///
/// A batch's acknowledgements are resolved as delivered when the plugin acknowledges it and as failed when it
/// gives it up; until then they are held, and a crash sends the batch again to the restarted plugin.
public struct ProcessSink<Input: Event>: SinkStage, ProcessPluginStage {
    public let settings: ProcessPluginSettings
    public var role: ComponentRole { .sink }

    public init(settings: ProcessPluginSettings) {
        self.settings = settings
    }

    public static var descriptor: PluginDescriptor {
        PluginDescriptor(
            type: "process", role: .sink,
            summary: "Runs a program in any language that delivers events it reads as newline-delimited JSON on stdin.",
            options: ProcessPluginSettings.options(for: .sink), accepts: Set(EventKind.allCases), output: .none,
            origin: ProcessPluginSettings.origin
        ) { context in
            let settings = ProcessPluginSettings.read(context.config, role: .sink, inputKind: context.inputKind)
            func make<I: Event>(_: I.Type) -> BuiltStage { .sink(ProcessSink<I>(settings: settings)) }
            let input: any Event.Type = (settings.inputKind ?? EventKind.record).eventType
            return make(input)
        }
    }

    public func run(context: ComponentContext, input: Inbox<Input>) async throws {
        let consumer = ProcessConsumer<Input>(settings: settings, role: .sink) { batch, _, failure in
            if failure != nil {
                batch.acknowledgements.resolve(.failed)
                context.metrics.dropped(batch.count, reason: .processingError)
            } else {
                // Bytes as the plugin received them (the encoded batch line).
                context.metrics.sent(events: batch.count, bytes: batch.line.count)
                // A chunk cut into several batches gave each a share: it is delivered when all of them are.
                batch.acknowledgements.resolve(.delivered)
            }
        }
        try await consumer.run(context: context, input: input)
    }
}
