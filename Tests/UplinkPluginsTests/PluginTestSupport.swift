import Logging
import Synchronization
import UplinkCore

/// Runs one transform over in-memory events and returns what it produced: the fast, I/O-free way to test a
/// transform's behaviour (live tests run the whole pipeline).
func runTransform<T: TransformStage>(
    _ transform: T, _ input: [[T.Input]], id: String = "under_test", dataDirectory: String = "/tmp/uplink-test-state"
) async throws -> [EventChunk<T.Output>] {
    let inputChannel = EventChannel<T.Input>(capacity: 1 << 20)
    let outputChannel = EventChannel<T.Output>(capacity: 1 << 20)
    let metrics = ComponentMetrics()
    inputChannel.addProducer()
    outputChannel.addProducer()
    for events in input { try await inputChannel.send(EventChunk(events)) }
    inputChannel.finishProducer()
    let context = ComponentContext(
        id: id, type: "test", role: .transform, logger: Logger(label: "test"), metrics: metrics,
        dataDirectory: dataDirectory)
    try await transform.run(
        context: context, input: Inbox(channel: inputChannel, metrics: metrics),
        output: Outbox(channels: [outputChannel], metrics: metrics))
    outputChannel.finishProducer()
    var chunks: [EventChunk<T.Output>] = []
    while let chunk = await outputChannel.next() { chunks.append(chunk) }
    return chunks
}
