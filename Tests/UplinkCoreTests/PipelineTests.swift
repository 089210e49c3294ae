import Logging
import Synchronization
import Testing
import UplinkCore
import UplinkPlugins

/// Emits `count` numbered events in chunks of `chunkSize`, each chunk with an acknowledgement, then ends
/// (or waits to be stopped when `endless`).
struct CountingSource: SourceStage {
    typealias Output = RawEvent
    let count: Int
    let chunkSize: Int
    let endless: Bool
    let acknowledged: Acked

    final class Acked: Sendable {
        let delivered = Atomic<Int>(0)
        let dropped = Atomic<Int>(0)
    }

    func run(context: ComponentContext, output: Outbox<RawEvent>) async throws {
        let origin = EventOrigin(sourceID: context.id)
        var next = 0
        while next < count {
            let size = min(chunkSize, count - next)
            let events = (next..<(next + size)).map {
                RawEvent(bytes: ArraySlice("\(context.id)-\($0)".utf8), origin: origin, offset: Int64($0), timestamp: 0)
            }
            let acked = acknowledged
            let token = Acknowledgement { status in
                if status == .delivered { acked.delivered.add(size, ordering: .relaxed) } else { acked.dropped.add(size, ordering: .relaxed) }
            }
            try await output.send(events, acknowledgements: Acknowledgements([token]))
            next += size
        }
        if endless { try await Task.sleep(for: .seconds(3600)) }
    }
}

/// Collects every event's text; fails on the event `failOn` when set.
struct CollectingSink: SinkStage {
    typealias Input = RawEvent
    let store: Store
    let failOn: String?
    var plugins: TestPlugins? = nil

    final class Store: Sendable {
        let lines = Mutex<[String]>([])
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String { "refused an event on purpose" }
    }

    func run(context: ComponentContext, input: Inbox<RawEvent>) async throws {
        plugins?.started(context.id)
        for await chunk in input {
            let texts = chunk.events.map { String(decoding: $0.bytes, as: UTF8.self) }
            if let failOn, texts.contains(failOn) { throw Failure() }
            store.lines.withLock { $0 += texts }
            chunk.acknowledgements.resolve(.delivered)
        }
    }
}

/// Emits numbered events, one chunk every `interval`, until it is stopped; counts its starts.
struct TickingSource: SourceStage {
    typealias Output = RawEvent
    let chunkSize: Int
    let interval: Duration
    let plugins: TestPlugins

    func run(context: ComponentContext, output: Outbox<RawEvent>) async throws {
        plugins.started(context.id)
        let origin = EventOrigin(sourceID: context.id)
        var next = 0
        while true {
            let events = (next..<(next + chunkSize)).map {
                RawEvent(bytes: ArraySlice("\(context.id)-\($0)".utf8), origin: origin, offset: Int64($0), timestamp: 0)
            }
            try await output.send(events)
            next += chunkSize
            try await Task.sleep(for: interval)
        }
    }
}

/// Prefixes every event with `prefix`; counts its starts.
struct PrefixTransform: TransformStage {
    typealias Input = RawEvent
    typealias Output = RawEvent
    let prefix: String
    let plugins: TestPlugins

    func run(context: ComponentContext, input: Inbox<RawEvent>, output: Outbox<RawEvent>) async throws {
        plugins.started(context.id)
        for await chunk in input {
            let events = chunk.events.map { event in
                var copy = event
                copy.bytes = ArraySlice(prefix.utf8) + event.bytes
                return copy
            }
            try await output.send(EventChunk(events, acknowledgements: chunk.acknowledgements))
        }
    }
}

final class TestPlugins: Sendable {
    let acked = CountingSource.Acked()
    let stores = Mutex<[String: CollectingSink.Store]>([:])
    let starts = Mutex<[String: Int]>([:])

    func store(_ id: String) -> [String] { stores.withLock { $0[id]?.lines.withLock { $0 } ?? [] } }
    func started(_ id: String) { starts.withLock { $0[id, default: 0] += 1 } }
    func startCount(_ id: String) -> Int { starts.withLock { $0[id] ?? 0 } }

    var registry: PluginRegistry {
        var registry = Builtins.registry
        let acked = self.acked
        registry.register(
            PluginDescriptor(
                type: "counter", role: .source, summary: "test",
                options: [
                    OptionSpec("count", .int, "events"), OptionSpec("chunk", .int, "chunk size"),
                    OptionSpec("endless", .bool, "wait to be stopped"),
                ],
                output: .kind(.raw)
            ) { context in
                .source(
                    CountingSource(
                        count: context.config.int("count", default: 10), chunkSize: context.config.int("chunk", default: 3),
                        endless: context.config.bool("endless", default: false), acknowledged: acked))
            })
        registry.register(
            PluginDescriptor(
                type: "collect", role: .sink, summary: "test",
                options: [OptionSpec("fail_on", .string, "fail on this event"), OptionSpec("tag", .string, "changes nothing")],
                accepts: [.raw], output: .none
            ) { [self] context in
                // Instances of one id share a store, so a replaced sink's successor appends to its lines.
                let store = stores.withLock { stores in
                    if let existing = stores[context.id] { return existing }
                    let store = CollectingSink.Store()
                    stores[context.id] = store
                    return store
                }
                return .sink(CollectingSink(store: store, failOn: context.config.string("fail_on"), plugins: self))
            })
        registry.register(
            PluginDescriptor(
                type: "ticker", role: .source, summary: "test",
                options: [OptionSpec("chunk", .int, "chunk size"), OptionSpec("interval_ms", .int, "pause between chunks")],
                output: .kind(.raw)
            ) { [self] context in
                .source(
                    TickingSource(
                        chunkSize: context.config.int("chunk", default: 5),
                        interval: .milliseconds(context.config.int("interval_ms", default: 2)), plugins: self))
            })
        registry.register(
            PluginDescriptor(
                type: "prefix", role: .transform, summary: "test", options: [OptionSpec("prefix", .string, "text to prepend")],
                accepts: [.raw], output: .kind(.raw)
            ) { [self] context in
                .transform(PrefixTransform(prefix: context.config.string("prefix") ?? "", plugins: self))
            })
        return registry
    }

    func topology(_ yaml: String) throws -> Topology {
        let diagnostics = DiagnosticCollector()
        var config = PipelineConfig(files: ["t.yaml"])
        ConfigLoader(environment: [:]).load(bytes: Array(yaml.utf8), file: "t.yaml", into: &config, diagnostics: diagnostics)
        guard let topology = TopologyBuilder(registry: registry).build(config, diagnostics: diagnostics) else {
            throw ConfigError(diagnostics.diagnostics)
        }
        return topology
    }

    func pipeline(_ yaml: String) throws -> Pipeline {
        try Pipeline(topology: topology(yaml), logger: Logger(label: "test"))
    }
}

@Suite(.timeLimit(.minutes(1))) struct PipelineTests {
    @Test func fanInAndFanOutDeliverEverythingAndAcknowledge() async throws {
        let plugins = TestPlugins()
        let pipeline = try plugins.pipeline(
            """
            sources:
              a: { type: counter, count: 5000, chunk: 7 }
              b: { type: counter, count: 3000, chunk: 100 }
            sinks:
              one: { type: collect, inputs: [a, b], buffer: { max_events: 16 } }
              two: { type: collect, inputs: [a] }
            """)
        try await pipeline.run()
        let one = plugins.store("one")
        let two = plugins.store("two")
        #expect(one.count == 8000)
        #expect(Set(one).count == 8000)
        #expect(one.filter { $0.hasPrefix("a-") } == (0..<5000).map { "a-\($0)" })
        #expect(two == (0..<5000).map { "a-\($0)" })
        #expect(plugins.acked.delivered.load(ordering: .relaxed) == 8000)
        #expect(plugins.acked.dropped.load(ordering: .relaxed) == 0)
        #expect(pipeline.metrics["one"]?.snapshot.receivedEvents == 8000)
        #expect(pipeline.metrics["a"]?.snapshot.sentEvents == 5000)
    }

    @Test func stopDrainsWhatWasRead() async throws {
        let plugins = TestPlugins()
        let pipeline = try plugins.pipeline(
            """
            sources:
              a: { type: counter, count: 1000, chunk: 10, endless: true }
            sinks:
              out: { type: collect, inputs: [a] }
            """)
        async let run: Void = pipeline.run()
        // Wait until the source has sent everything, then stop it while it idles.
        for _ in 0..<2000 where pipeline.metrics["a"]!.snapshot.sentEvents < 1000 { try await Task.sleep(for: .milliseconds(5)) }
        pipeline.stop()
        try await run
        #expect(plugins.store("out").count == 1000)
    }

    @Test func failingComponentIsReportedByIdAndDoesNotHang() async throws {
        let plugins = TestPlugins()
        let pipeline = try plugins.pipeline(
            """
            sources:
              a: { type: counter, count: 100000, chunk: 10, endless: true }
            sinks:
              bad: { type: collect, inputs: [a], fail_on: a-500, buffer: { max_events: 10 } }
            """)
        do {
            try await pipeline.run()
            Issue.record("expected the pipeline to report the failure")
        } catch let error as PipelineError {
            #expect(error.description.contains("component 'bad' failed: refused an event on purpose"))
        }
        // Events that were never delivered are acknowledged as dropped, not silently as delivered.
        #expect(plugins.acked.dropped.load(ordering: .relaxed) > 0)
        #expect(plugins.acked.delivered.load(ordering: .relaxed) == plugins.store("bad").count)
    }
}
