import Logging
import UplinkCore

/// A transform from a shared-object plugin: each chunk is one `process` call on the instance's thread, and
/// its outputs go on with the chunk's acknowledgements.
struct SharedObjectTransform<Input: Event, Output: Event>: TransformStage {
    let library: LoadedLibrary
    let config: [(String, String)]

    func run(context: ComponentContext, input: Inbox<Input>, output: Outbox<Output>) async throws {
        let instance = try await SharedObjectInstance.create(library, component: context.id, config: config)
        let fallbackOrigin = EventOrigin(sourceID: context.id, location: library.path)
        do {
            for await chunk in input {
                let first = chunk.events.first
                let origin = first.flatMap(Self.origin(of:)) ?? fallbackOrigin
                let timestamp = first.map(Self.timestamp(of:)) ?? currentTimeMillis()
                var delay = RetryDelay()
                while true {
                    let result = await instance.process(
                        chunk.events, outputKind: Output.kind, origin: origin, timestamp: timestamp)
                    instance.reportInvalid(result, context: context)
                    switch result.status {
                    case PluginStatus.ok:
                        try await output.send(
                            EventChunk(result.events.map { $0 as! Output }, acknowledgements: chunk.acknowledgements))
                    case PluginStatus.retry:
                        let wait = delay.take()
                        context.logger.warning(
                            "shared-object plugin asked to retry a batch",
                            metadata: [
                                "plugin.path": "\(library.path)", "error": "\(result.error)",
                                "plugin.retry_in": "\(wait)",
                            ])
                        try await Task.sleep(for: wait)
                        continue
                    case PluginStatus.error:
                        context.metrics.error()
                        context.metrics.dropped(chunk.count, reason: .processingError)
                        context.logger.warning(
                            "shared-object plugin gave a batch up; dropped",
                            metadata: [
                                "plugin.path": "\(library.path)", "error": "\(result.error)",
                                "plugin.events": "\(chunk.count)",
                            ])
                    default:
                        throw instance.failure("process", result)
                    }
                    break
                }
            }
            if let result = await instance.flush(outputKind: Output.kind, origin: fallbackOrigin) {
                instance.reportInvalid(result, context: context)
                guard result.status == PluginStatus.ok else { throw instance.failure("flush", result) }
                try await output.send(EventChunk(result.events.map { $0 as! Output }))
            }
        } catch {
            await instance.destroy()
            throw error
        }
        await instance.destroy()
    }

    static func origin(of event: Input) -> EventOrigin? {
        switch event {
        case let raw as RawEvent: return raw.origin
        case let record as Record: return record.origin
        default: return nil
        }
    }

    static func timestamp(of event: Input) -> Int64 {
        switch event {
        case let raw as RawEvent: return raw.timestamp
        case let record as Record: return record.timestamp
        default: return currentTimeMillis()
        }
    }
}
