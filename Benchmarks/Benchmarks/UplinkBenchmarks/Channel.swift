import Benchmark
import UplinkCore

/// `EventChannel`: one producer task sends chunks of 512 raw events (1,000,000 events per iteration, the last
/// chunk 64), one consumer task receives them; capacity 4,096 events (a component's default buffer), `block`.
/// What `uplink bench-channel` measures, with allocations.
func channelBenchmarks() {
    let chunk = [RawEvent](
        repeating: RawEvent(bytes: Fixtures.line(0)[...], origin: Fixtures.origin, timestamp: 0), count: 512)

    Benchmark(
        "channel: send/next, chunks of 512, 1 producer",
        configuration: pipelineConfiguration(maxDuration: .seconds(4), maxIterations: 200)
    ) { benchmark in
        let received = await moveThroughChannel(chunk, total: eventsPerPipelineIteration, producers: 1)
        precondition(received == eventsPerPipelineIteration)
    }

    Benchmark(
        "channel: send/next, chunks of 512, 2 producers",
        configuration: pipelineConfiguration(maxDuration: .seconds(4), maxIterations: 200)
    ) { benchmark in
        let received = await moveThroughChannel(chunk, total: eventsPerPipelineIteration, producers: 2)
        precondition(received == eventsPerPipelineIteration)
    }
}

private func moveThroughChannel(_ template: [RawEvent], total: Int, producers: Int) async -> Int {
    let channel = EventChannel<RawEvent>(capacity: 4096)
    for _ in 0..<producers { channel.addProducer() }
    return await withTaskGroup(of: Void.self, returning: Int.self) { group in
        for producer in 0..<producers {
            let share = total / producers + (producer < total % producers ? 1 : 0)
            group.addTask {
                var sent = 0
                while sent < share {
                    let size = min(template.count, share - sent)
                    // A full chunk shares the template's storage: sending allocates nothing for the events.
                    try? await channel.send(
                        EventChunk(size == template.count ? template : Array(template.prefix(size))))
                    sent += size
                }
                channel.finishProducer()
            }
        }
        var received = 0
        while let next = await channel.next() { received += next.count }
        await group.waitForAll()
        return received
    }
}
