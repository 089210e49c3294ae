import Logging
import UplinkCore

/// A source from a shared-object plugin: `poll` on the instance's thread, again at once after it emitted
/// something and after 50 ms after it emitted nothing, until UPLINK_DONE or the pipeline stops.
struct SharedObjectSource<Output: Event>: SourceStage {
    let library: LoadedLibrary
    let config: [(String, String)]

    static var idleInterval: Duration { .milliseconds(50) }

    func run(context: ComponentContext, output: Outbox<Output>) async throws {
        let instance = try await SharedObjectInstance.create(library, component: context.id, config: config)
        let origin = EventOrigin(sourceID: context.id, location: library.path)
        do {
            var delay = RetryDelay()
            polling: while true {
                try Task.checkCancellation()
                let result = await instance.poll(outputKind: Output.kind, origin: origin)
                instance.reportInvalid(result, context: context)
                if !result.events.isEmpty {
                    try await output.send(EventChunk(result.events.map { $0 as! Output }))
                }
                switch result.status {
                case PluginStatus.ok:
                    delay = RetryDelay()
                    if result.events.isEmpty { try await Task.sleep(for: Self.idleInterval) }
                case PluginStatus.done:
                    break polling
                case PluginStatus.retry, PluginStatus.error:
                    context.metrics.error()
                    let wait = result.status == PluginStatus.retry ? delay.take() : Self.idleInterval
                    context.logger.warning(
                        "shared-object source reported a problem",
                        metadata: [
                            "plugin.path": "\(library.path)", "error": "\(result.error)", "plugin.retry_in": "\(wait)",
                        ])
                    try await Task.sleep(for: wait)
                default:
                    throw instance.failure("poll", result)
                }
            }
        } catch {
            await instance.destroy()
            throw error
        }
        await instance.destroy()
    }
}
