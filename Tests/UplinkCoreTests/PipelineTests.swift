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

    final class Store: Sendable {
        let lines = Mutex<[String]>([])
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String { "refused an event on purpose" }
    }

    func run(context: ComponentContext, input: Inbox<RawEvent>) async throws {
        for await chunk in input {
            let texts = chunk.events.map { String(decoding: $0.bytes, as: UTF8.self) }
            if let failOn, texts.contains(failOn) { throw Failure() }
            store.lines.withLock { $0 += texts }
            chunk.acknowledgements.resolve(.delivered)
        }
    }
}

final class TestPlugins: Sendable {
    let acked = CountingSource.Acked()
    let stores = Mutex<[String: CollectingSink.Store]>([:])

    func store(_ id: String) -> [String] { stores.withLock { $0[id]?.lines.withLock { $0 } ?? [] } }

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
                type: "collect", role: .sink, summary: "test", options: [OptionSpec("fail_on", .string, "fail on this event")],
                accepts: [.raw], output: .none
            ) { [self] context in
                let store = CollectingSink.Store()
                stores.withLock { $0[context.id] = store }
                return .sink(CollectingSink(store: store, failOn: context.config.string("fail_on")))
            })
        return registry
    }

    func pipeline(_ yaml: String) throws -> Pipeline {
        let diagnostics = DiagnosticCollector()
        var config = PipelineConfig(files: ["t.yaml"])
        ConfigLoader(environment: [:]).load(bytes: Array(yaml.utf8), file: "t.yaml", into: &config, diagnostics: diagnostics)
        guard let topology = TopologyBuilder(registry: registry).build(config, diagnostics: diagnostics) else {
            throw ConfigError(diagnostics.diagnostics)
        }
        return try Pipeline(topology: topology, logger: Logger(label: "test"))
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
