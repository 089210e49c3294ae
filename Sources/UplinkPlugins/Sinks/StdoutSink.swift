#if canImport(Glibc)
import Glibc
#endif
import UplinkCore

/// `stdout`: writes one line per event: raw bytes as they are, records as compact JSON, messages as their body.
public struct StdoutSink<Input: Event>: SinkStage {
    public static var descriptor: PluginDescriptor {
        PluginDescriptor(
            type: "stdout", role: .sink,
            summary: "Writes one line per event to standard output: raw bytes as is, records as JSON, messages as their body.",
            options: [], accepts: Set(EventKind.allCases), output: .none
        ) { context in
            func make<E: Event>(_: E.Type) -> BuiltStage { .sink(StdoutSink<E>()) }
            return make(context.inputKind!.eventType)
        }
    }

    public init() {}

    public func run(context: ComponentContext, input: Inbox<Input>) async throws {
        var writer = LineWriter(fd: 1, path: "stdout")
        for await chunk in input {
            try writer.write(chunk)
            context.metrics.sent(events: chunk.count, bytes: chunk.byteCount)
        }
    }
}

