import Benchmark
import Logging
import UplinkCore
import UplinkPlugins

/// `batch`: 1,000,000 records or messages per iteration in chunks of 512, run as the engine runs it (between two
/// channels, see `drive`), with `max_events: 100000` so that bodies are cut by size, at 128 KB (IoT-Core's limit):
/// - records as `json` makes them of 100-byte lines (`{"message":"0000000042 xxx…"}`, 113 bytes encoded), joined
///   as ndjson (the tail → batch → iotcore_http scenario) and as a JSON array;
/// - thing-model property posts (what `thing_model` makes of the sensor records), which `batch` merges.
/// And `Message.batch`, which builds a body from encoded parts (the sink uses it to split a batch the server
/// found too large), 1,000 parts per iteration.
func batchBenchmarks() {
    for encoding in ["ndjson", "json_array"] {
        let batch = builtTransform(
            "t", in: pipeline(transform: "{ type: batch, inputs: [wrap], encoding: \(encoding), max_events: 100000 }"),
            as: BatchTransform<Record>.self)
        Benchmark("batch: records → \(encoding) bodies of 128 KB", configuration: pipelineConfiguration()) {
            benchmark in
            let delivered = try await drive(
                batch, events: Fixtures.rawRecords, chunk: Fixtures.chunkSize, total: eventsPerPipelineIteration,
                dataDirectory: "/nonexistent")
            // 113 bytes a record and one separator: 1,149 records in 131,072 bytes.
            precondition(delivered.events > 0 && delivered.bytes > 113 * eventsPerPipelineIteration)
        }
    }

    let posts = PropertyPosts()
    let mergingBatch = builtTransform(
        "t", in: pipeline(transform: "{ type: batch, inputs: [model], max_events: 100000 }", afterThingModel: true),
        as: BatchTransform<Message>.self)
    Benchmark(
        "batch: thing_model property posts → merged posts", configuration: pipelineConfiguration(),
        closure: { benchmark in
            let delivered = try await drive(
                mergingBatch, events: posts.messages, chunk: Fixtures.chunkSize, total: eventsPerPipelineIteration,
                dataDirectory: "/nonexistent")
            // Every post has the same identifiers as the one before it, so none merges: one message per post.
            precondition(delivered.events == eventsPerPipelineIteration, "\(delivered.events) messages")
        },
        setup: { try await posts.make() })

    let parts = Fixtures.rawRecords.prefix(1000).map { record -> ArraySlice<UInt8> in
        var bytes: [UInt8] = []
        record.fields.appendJSON(to: &bytes)
        return bytes[...]
    }
    let thousandParts = (0..<1000).map { parts[$0 % parts.count] }
    Benchmark("batch: Message.batch, 1,000 parts of 113 B → ndjson body", configuration: kiloConfiguration) {
        benchmark in
        let message = Message.batch(topic: nil, framing: .ndjson, parts: thousandParts)
        precondition(message.parts.count == 1000)
        blackHole(message)
    }
}

/// 512 property posts as `thing_model` makes them of the sensor records (with the metadata `batch` reads), made
/// once by running the real transform before the benchmark starts.
final class PropertyPosts: @unchecked Sendable {
    // Written by the setup hook before any iteration, read-only afterwards.
    private(set) var messages: [Message] = []

    func make() async throws {
        let model = builtTransform(
            "model", in: pipeline(transform: "{ type: batch, inputs: [model] }", afterThingModel: true),
            as: ThingModelTransform.self)
        let input = EventChannel<Record>(capacity: 1 << 20)
        let output = EventChannel<Message>(capacity: 1 << 20)
        let metrics = ComponentMetrics()
        input.addProducer()
        output.addProducer()
        try await input.send(EventChunk(Fixtures.sensorRecords))
        input.finishProducer()
        let state = StateDirectory()
        state.make()
        defer { state.remove() }
        let context = ComponentContext(
            id: "model", type: "bench", role: .transform, logger: Logger(label: "bench"), metrics: metrics,
            dataDirectory: state.path)
        try await model.run(
            context: context, input: Inbox(channel: input, metrics: metrics),
            output: Outbox(channels: [output], metrics: metrics))
        output.finishProducer()
        var made: [Message] = []
        while let chunk = await output.next() { made += chunk.events }
        precondition(made.count == Fixtures.sensorRecords.count && !made[0].metadata.isEmpty)
        messages = made
    }
}
