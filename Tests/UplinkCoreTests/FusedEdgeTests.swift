import Foundation
import Logging
import Synchronization
import Testing
import UplinkCore
import UplinkPlugins

/// Keeps every record's `message` field (and the whole record as JSON) in arrival order.
struct RecordCollectingSink: SinkStage {
    typealias Input = Record
    let store: Store

    final class Store: Sendable {
        let messages = Mutex<[String]>([])
        let json = Mutex<[String]>([])
    }

    func run(context: ComponentContext, input: Inbox<Record>) async throws {
        for await chunk in input {
            let messages = chunk.events.map { record -> String in
                if case .string(let text) = record.fields["message"] { return text }
                return "?"
            }
            let json = chunk.events.map { record -> String in
                var bytes: [UInt8] = []
                record.fields.appendJSON(to: &bytes)
                return String(decoding: bytes, as: UTF8.self)
            }
            store.messages.withLock { $0 += messages }
            store.json.withLock { $0 += json }
            chunk.acknowledgements.resolve(.delivered)
        }
    }
}

/// A fusable stage that fails (throws from its chunk function) on the record whose `message` is `failOn`.
struct FailingInlineTransform: InlineTransform {
    typealias Input = Record
    typealias Output = Record
    let failOn: String

    struct Failure: Error, CustomStringConvertible {
        var description: String { "refused a record on purpose" }
    }

    func makeProcessor(context: ComponentContext) -> Processor { Processor(failOn: failOn) }

    final class Processor: ChunkProcessor {
        let failOn: String
        init(failOn: String) { self.failOn = failOn }

        func process(_ chunk: consuming EventChunk<Record>) throws -> EventChunk<Record>? {
            if chunk.events.contains(where: { $0.fields["message"] == .string(failOn) }) { throw Failure() }
            return chunk
        }

        func finish() {}
    }
}

/// A plugin author's stateless transform: sets `marked` on every record.
struct MarkingChunkTransform: ChunkTransform {
    typealias Input = Record
    typealias Output = Record

    func transform(_ events: [Record], context: ComponentContext) -> [Record] {
        events.map { record in
            var marked = record
            marked.fields["marked"] = .bool(true)
            return marked
        }
    }
}

/// Fused edges (``InlineTransform`` behind a single transform producer): the stage runs in its producer's task,
/// yet everything observable stays the stage's own, as when it reads a channel.
@Suite(.timeLimit(.minutes(1))) struct FusedEdgeTests {
    let plugins = TestPlugins()
    let records = RecordStores()

    final class RecordStores: Sendable {
        let stores = Mutex<[String: RecordCollectingSink.Store]>([:])
    }

    func store(_ id: String) -> RecordCollectingSink.Store {
        records.stores.withLock { stores in
            if let existing = stores[id] { return existing }
            let store = RecordCollectingSink.Store()
            stores[id] = store
            return store
        }
    }

    var registry: PluginRegistry {
        var registry = plugins.registry
        registry.register(
            PluginDescriptor(type: "records", role: .sink, summary: "test", options: [], accepts: [.record], output: .none) {
                [self] context in .sink(RecordCollectingSink(store: store(context.id)))
            })
        registry.register(
            PluginDescriptor(
                type: "explode", role: .transform, summary: "test", options: [OptionSpec("fail_on", .string, "message")],
                accepts: [.record], output: .kind(.record)
            ) { context in .transform(FailingInlineTransform(failOn: context.config.string("fail_on") ?? "")) })
        registry.register(
            PluginDescriptor(type: "mark", role: .transform, summary: "test", options: [], accepts: [.record], output: .kind(.record)) {
                _ in .transform(MarkingChunkTransform())
            })
        return registry
    }

    func topology(_ yaml: String) throws -> Topology {
        let diagnostics = DiagnosticCollector()
        var config = PipelineConfig(files: ["t.yaml"])
        ConfigLoader(environment: [:]).load(bytes: Array(yaml.utf8), file: "t.yaml", into: &config, diagnostics: diagnostics)
        guard let topology = TopologyBuilder(registry: registry, checksPaths: false).build(config, diagnostics: diagnostics)
        else { throw ConfigError(diagnostics.diagnostics) }
        return topology
    }

    func pipeline(_ yaml: String) throws -> Pipeline {
        try Pipeline(topology: topology(yaml), logger: Logger(label: "test"))
    }

    /// json -> filter -> remap -> sink, with `buffer` on filter and remap (an explicit buffer keeps a channel).
    static func chain(buffer: String, source: String = "a: { type: counter, count: 3000, chunk: 7 }") -> String {
        """
        sources:
          \(source)
        transforms:
          parse: { type: json, inputs: [a] }
          keep: { type: filter, inputs: [parse], condition: '!ends_with(.message, "7")'\(buffer) }
          shape: { type: remap, inputs: [keep], set: { inverse: '100 / (len(.message) - 4)', tag: '"x"' }\(buffer) }
        sinks:
          out: { type: records, inputs: [shape] }
        """
    }

    static func fusedIDs(_ pipeline: Pipeline) -> [String] {
        pipeline.componentStatuses.filter(\.fused).map(\.id)
    }

    @Test func aFusedChainCountsDropsAndAcknowledgesAsThroughChannels() async throws {
        var snapshots: [[String: ComponentMetrics.Snapshot]] = []
        var delivered: [[String]] = []
        var fused: [[String]] = []
        for buffer in ["", ", buffer: { max_events: 4095 }"] {
            let tests = FusedEdgeTests()
            let pipeline = try tests.pipeline(Self.chain(buffer: buffer))
            fused.append(Self.fusedIDs(pipeline))
            try await pipeline.run()
            snapshots.append(pipeline.metrics.mapValues(\.snapshot))
            delivered.append(tests.store("out").json.withLock { $0 })
            // Every chunk answered as final, the filtered ones and those whose records all failed included.
            #expect(tests.plugins.acked.delivered.load(ordering: .relaxed) == 3000)
            #expect(tests.plugins.acked.dropped.load(ordering: .relaxed) == 0)
        }
        #expect(fused == [["keep", "shape"], []])
        #expect(snapshots[0] == snapshots[1])
        #expect(delivered[0] == delivered[1])
        let keep = snapshots[0]["keep"]!
        #expect(keep.receivedEvents == 3000 && keep.droppedByReason[.filtered] == 300)
        #expect(keep.sentEvents == 2700 && keep.sentBytes > 0 && keep.receivedBytes > keep.sentBytes)
        let shape = snapshots[0]["shape"]!
        // "a-10" ... "a-99" divide by zero: dropped as processing errors (on_error: drop), counted as shape's.
        #expect(shape.receivedEvents == 2700 && shape.droppedByReason[.processingError] == 81)
        #expect(shape.sentEvents == 2619 && snapshots[0]["out"]!.receivedEvents == 2619)
        #expect(delivered[0].count == 2619 && delivered[0].allSatisfy { $0.contains(#""tag":"x""#) })
    }

    @Test func aChunkTransformRunsFused() async throws {
        let pipeline = try pipeline(
            """
            sources:
              a: { type: counter, count: 500, chunk: 9 }
            transforms:
              parse: { type: json, inputs: [a] }
              marked: { type: mark, inputs: [parse] }
            sinks:
              out: { type: records, inputs: [marked] }
            """)
        #expect(Self.fusedIDs(pipeline) == ["marked"])
        try await pipeline.run()
        let json = store("out").json.withLock { $0 }
        #expect(json.count == 500 && json.allSatisfy { $0.contains(#""marked":true"#) })
        #expect(pipeline.metrics["marked"]!.snapshot.receivedEvents == 500)
        #expect(plugins.acked.delivered.load(ordering: .relaxed) == 500)
    }

    @Test func jsonBehindATransformRunsFusedAndSoDoesWhatFollowsIt() async throws {
        let pipeline = try pipeline(
            """
            sources:
              a: { type: counter, count: 1000, chunk: 9 }
            transforms:
              mark: { type: prefix, inputs: [a], prefix: "p" }
              parse: { type: json, inputs: [mark], sequence_field: seq }
              keep: { type: filter, inputs: [parse], condition: '.seq % 2 == 0' }
            sinks:
              out: { type: records, inputs: [keep] }
            """)
        #expect(Self.fusedIDs(pipeline) == ["parse", "keep"])
        try await pipeline.run()
        let messages = store("out").messages.withLock { $0 }
        #expect(messages == stride(from: 1, to: 1000, by: 2).map { "pa-\($0)" })
        #expect(pipeline.metrics["parse"]!.snapshot.sentEvents == 1000)
        #expect(plugins.acked.delivered.load(ordering: .relaxed) == 1000)
    }

    @Test func aFusedStagesFailureIsReportedByItsOwnID() async throws {
        let pipeline = try pipeline(
            """
            sources:
              a: { type: counter, count: 100000, chunk: 10, endless: true }
            transforms:
              parse: { type: json, inputs: [a] }
              boom: { type: explode, inputs: [parse], fail_on: a-500 }
            sinks:
              out: { type: records, inputs: [boom] }
            """)
        #expect(Self.fusedIDs(pipeline) == ["boom"])
        do {
            try await pipeline.run()
            Issue.record("the pipeline should report the failure")
        } catch let PipelineError.componentsFailed(failures) {
            #expect(failures.map(\.0) == ["boom"])
            #expect(failures.first?.1 == "refused a record on purpose")
        }
        #expect(pipeline.metrics["boom"]!.state == .failed && pipeline.metrics["boom"]!.snapshot.errors == 1)
        #expect(pipeline.metrics["parse"]!.state == .finished)
        #expect(store("out").messages.withLock { $0 }.count == 500)
    }

    @Test func onErrorDeadLetterWritesTheFusedStagesOwnFile() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fused-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pipeline = try pipeline(
            """
            data_dir: \(directory)
            sources:
              a: { type: counter, count: 200, chunk: 9 }
            transforms:
              parse: { type: json, inputs: [a] }
              shape: { type: remap, inputs: [parse], set: { inverse: '100 / (len(.message) - 4)' }, on_error: dead_letter }
            sinks:
              out: { type: records, inputs: [shape] }
            """)
        #expect(Self.fusedIDs(pipeline) == ["shape"])
        try await pipeline.run()
        let letters = try String(contentsOfFile: directory + "/shape/dead-letters.jsonl", encoding: .utf8)
            .split(separator: "\n")
        #expect(letters.count == 90)
        // The record as it arrived ({"message":"a-10"}), with the fused stage's id and the failing operation.
        let first = String(letters.first ?? "")
        #expect(first.contains(#""component":"shape""#) && first.contains("set.inverse: division by zero"), "\(first)")
        #expect(first.contains(Data(#"{"message":"a-10"}"#.utf8).base64EncodedString()), "\(first)")
        #expect(pipeline.metrics["shape"]!.snapshot.droppedByReason[.deadLetter] == 90)
        #expect(plugins.acked.delivered.load(ordering: .relaxed) == 200)
    }

    @Test func tapsOfFusedStagesSeeEachStagesOwnOutput() async throws {
        let pipeline = try pipeline(Self.chain(buffer: "", source: "a: { type: ticker, chunk: 20, interval_ms: 1 }"))
        #expect(Self.fusedIDs(pipeline) == ["keep", "shape"])
        let keepTap = pipeline.metrics["keep"]!.tap.attach(limit: 50)
        let shapeTap = pipeline.metrics["shape"]!.tap.attach(limit: 50)
        async let run: Void = pipeline.run()
        var kept: [String] = []
        for await event in keepTap { kept.append(String(decoding: event.text, as: UTF8.self)) }
        var shaped: [String] = []
        for await event in shapeTap { shaped.append(String(decoding: event.text, as: UTF8.self)) }
        pipeline.stop()
        try await run
        #expect(kept.count == 50 && shaped.count == 50)
        // filter's output: no message ending in 7, not yet remapped; remap's: with its fields.
        #expect(kept.allSatisfy { !$0.contains(#"7""#) && !$0.contains("tag") })
        #expect(shaped.allSatisfy { $0.contains(#""tag":"x""#) })
    }

    @Test func stopDrainsAFusedChainInOrder() async throws {
        let pipeline = try pipeline(
            Self.chain(buffer: "", source: "a: { type: counter, count: 20000, chunk: 10, endless: true }"))
        async let run: Void = pipeline.run()
        try await ReconfigureTests.waitUntil { pipeline.metrics["a"]!.snapshot.sentEvents == 20000 }
        pipeline.stop()
        try await run
        let sent = pipeline.metrics["a"]!.snapshot.sentEvents
        #expect(plugins.acked.delivered.load(ordering: .relaxed) == sent)
        #expect(pipeline.metrics.values.allSatisfy { $0.state == .finished })
        let messages = store("out").messages.withLock { $0 }
        #expect(messages.count == pipeline.metrics["shape"]!.snapshot.sentEvents)
        #expect(messages.compactMap { Int($0.dropFirst(2)) } == messages.compactMap { Int($0.dropFirst(2)) }.sorted())
    }

    /// json -> filter -> remap over a ticker, with the filter's condition given.
    static func reloadable(condition: String, extraSource: Bool = false) -> String {
        """
        sources:
          gen: { type: ticker, chunk: 5, interval_ms: 1 }
        \(extraSource ? "  more: { type: ticker, chunk: 5, interval_ms: 1 }" : "")
        transforms:
          parse: { type: json, inputs: [gen] }
        \(extraSource ? "  parse2: { type: json, inputs: [more] }" : "")
          keep: { type: filter, inputs: [parse\(extraSource ? ", parse2" : "")], condition: '\(condition)' }
          shape: { type: remap, inputs: [keep], set: { tag: '"x"' } }
        sinks:
          out: { type: records, inputs: [shape] }
        """
    }

    static func numbers(_ messages: [String], source: String) -> [Int] {
        messages.compactMap { $0.hasPrefix(source + "-") ? Int($0.dropFirst(source.count + 1)) : nil }
    }

    @Test func aChangedExpressionReplacesTheFusedStageInPlace() async throws {
        let pipeline = try pipeline(Self.reloadable(condition: "len(.message) > 0"))
        async let run: Void = pipeline.run()
        try await ReconfigureTests.waitUntil { store("out").messages.withLock { $0.count } >= 200 }
        let oldKeep = pipeline.metrics["keep"]!
        let outcome = try await pipeline.reconfigure(to: topology(Self.reloadable(condition: "len(.message) > 1")))
        guard case .applied(let summary) = outcome else {
            Issue.record("expected an in-place reload, got \(outcome)")
            return
        }
        #expect(summary.replaced == ["keep"])
        #expect(Self.fusedIDs(pipeline) == ["keep", "shape"])
        try await ReconfigureTests.waitUntil { (pipeline.metrics["keep"]!.snapshot.sentEvents) >= 200 }
        pipeline.stop()
        try await run
        #expect(pipeline.metrics["keep"]! !== oldKeep && oldKeep.state == .finished)
        ReconfigureTests.expectContiguous(
            Self.numbers(store("out").messages.withLock { $0 }, source: "gen"), "every record once, in order")
    }

    @Test func aSecondInputTurnsTheFusedEdgeIntoAChannel() async throws {
        let pipeline = try pipeline(Self.reloadable(condition: "len(.message) > 0"))
        async let run: Void = pipeline.run()
        try await ReconfigureTests.waitUntil { store("out").messages.withLock { $0.count } >= 200 }
        let outcome = try await pipeline.reconfigure(
            to: topology(Self.reloadable(condition: "len(.message) > 0", extraSource: true)))
        guard case .applied(let summary) = outcome else {
            Issue.record("expected an in-place reload, got \(outcome)")
            return
        }
        #expect(summary.replaced == ["keep"] && summary.added.sorted() == ["more", "parse2"])
        #expect(Self.fusedIDs(pipeline) == ["shape"])
        // Counters, not the store: a poll that walks every message so far grows quadratic.
        try await ReconfigureTests.waitUntil { pipeline.metrics["parse2"]!.snapshot.sentEvents >= 200 }
        pipeline.stop()
        try await run
        let messages = store("out").messages.withLock { $0 }
        ReconfigureTests.expectContiguous(Self.numbers(messages, source: "gen"), "gen: every record once, in order")
        ReconfigureTests.expectContiguous(Self.numbers(messages, source: "more"), "more: every record once, in order")
    }
}
