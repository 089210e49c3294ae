import Logging
import UplinkCore

/// A sink from a shared-object plugin: each chunk is one `process` call; UPLINK_OK resolves its
/// acknowledgements as delivered, UPLINK_ERROR as failed, and UPLINK_RETRY calls again after a back-off.
struct SharedObjectSink<Input: Event>: SinkStage {
    let library: LoadedLibrary
    let config: [(String, String)]

    func run(context: ComponentContext, input: Inbox<Input>) async throws {
        let instance = try await SharedObjectInstance.create(library, component: context.id, config: config)
        let origin = EventOrigin(sourceID: context.id, location: library.path)
        do {
            for await chunk in input {
                var delay = RetryDelay()
                while true {
                    let result = await instance.process(
                        chunk.events, outputKind: nil, origin: origin, timestamp: currentTimeMillis())
                    switch result.status {
                    case PluginStatus.ok:
                        context.metrics.sent(events: chunk.count, bytes: chunk.byteCount)
                        chunk.acknowledgements.resolve(.delivered)
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
                        chunk.acknowledgements.resolve(.failed)
                        context.metrics.error()
                        context.metrics.dropped(chunk.count, reason: .processingError)
                        context.logger.warning(
                            "shared-object plugin failed a batch",
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
            if let result = await instance.flush(outputKind: nil, origin: origin), result.status != PluginStatus.ok {
                throw instance.failure("flush", result)
            }
        } catch {
            await instance.destroy()
            throw error
        }
        await instance.destroy()
    }
}
