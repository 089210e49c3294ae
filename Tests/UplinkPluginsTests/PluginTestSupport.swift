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

/// Runs one transform as a pipeline does, its input left open: `body` sends, reads and finishes the input while
/// the transform runs (timeouts and windows that must fire on an idle or busy input). The output finishes when
/// the transform ends; this returns after both.
func withLiveTransform<T: TransformStage>(
    _ transform: T, type: String, inputCapacity: Int = 64, outputCapacity: Int = 64,
    _ body: (_ input: EventChannel<T.Input>, _ output: EventChannel<T.Output>) async throws -> Void
) async throws {
    let input = EventChannel<T.Input>(capacity: inputCapacity)
    let output = EventChannel<T.Output>(capacity: outputCapacity)
    input.addProducer()
    output.addProducer()
    let metrics = ComponentMetrics()
    let context = ComponentContext(
        id: "t", type: type, role: .transform, logger: Logger(label: "test"), metrics: metrics,
        dataDirectory: "/tmp/uplink-test-state")
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            try await transform.run(
                context: context, input: Inbox(channel: input, metrics: metrics),
                output: Outbox(channels: [output], metrics: metrics))
            output.finishProducer()
        }
        try await body(input, output)
        try await group.waitForAll()
    }
}
