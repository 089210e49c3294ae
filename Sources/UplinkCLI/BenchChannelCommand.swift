import ArgumentParser
import UplinkCore

#if canImport(Glibc)
import Glibc
#endif

/// `uplink bench-channel`: moves events through one channel between two tasks and prints the rate, so the
/// engine's hand-over cost can be measured apart from I/O (used by bench/run.sh; hidden from help).
struct BenchChannel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-channel",
        abstract: "Measure events per second through one bounded channel.",
        shouldDisplay: false
    )

    @Option(help: "Events to move.") var events: Int = 1_000_000
    @Option(help: "Events per chunk.") var chunk: Int = 512
    @Option(help: "Channel capacity in events.") var capacity: Int = 4096
    @Option(help: "Producers.") var producers: Int = 1

    func run() async throws {
        let channel = EventChannel<RawEvent>(capacity: capacity)
        let origin = EventOrigin(sourceID: "bench")
        let payload = [UInt8](repeating: 0x61, count: 100)[...]
        let template = [RawEvent](repeating: RawEvent(bytes: payload, origin: origin, timestamp: 0), count: chunk)
        for _ in 0..<producers { channel.addProducer() }
        let clock = ContinuousClock()
        let start = clock.now
        let perProducer = events / producers
        let received = try await withThrowingTaskGroup(of: Void.self, returning: Int.self) { group in
            for _ in 0..<producers {
                group.addTask {
                    var sent = 0
                    while sent < perProducer {
                        let size = min(chunk, perProducer - sent)
                        try await channel.send(EventChunk(size == chunk ? template : Array(template.prefix(size))))
                        sent += size
                    }
                    channel.finishProducer()
                }
            }
            var total = 0
            while let next = await channel.next() { total += next.count }
            try await group.waitForAll()
            return total
        }
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        printOut("events=\(received) seconds=\(seconds) events_per_second=\(Int(Double(received) / seconds))\n")
    }
}
