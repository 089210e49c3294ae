import Foundation
import Logging
import Synchronization
import Testing
import UplinkCore
import UplinkPlugins

/// Emits `count` records `{"n": i}` in chunks of `chunk`, each chunk with an acknowledgement whose outcome is
/// counted, then ends (or waits to be stopped when `endless`).
struct RecordCounter: SourceStage {
    typealias Output = Record
    let count: Int
    let chunk: Int
    let endless: Bool
    let outcomes: Outcomes

    final class Outcomes: Sendable {
        let delivered = Atomic<Int>(0)
        let failed = Atomic<Int>(0)
        let dropped = Atomic<Int>(0)
    }

    func run(context: ComponentContext, output: Outbox<Record>) async throws {
        var next = 0
        while next < count {
            let size = min(chunk, count - next)
            let records = (next..<(next + size)).map {
                Record(fields: ["n": .int(Int64($0))], timestamp: 1_000 + Int64($0))
            }
            let outcomes = self.outcomes
            let token = Acknowledgement { status in
                switch status {
                case .delivered: outcomes.delivered.add(size, ordering: .relaxed)
                case .failed: outcomes.failed.add(size, ordering: .relaxed)
                case .dropped: outcomes.dropped.add(size, ordering: .relaxed)
                }
            }
            try await output.send(records, acknowledgements: Acknowledgements([token]))
            next += size
        }
        if endless { try await Task.sleep(for: .seconds(3600)) }
    }
}

/// Keeps every record it receives, as compact JSON, and acknowledges them as delivered.
struct RecordCollector: SinkStage {
    typealias Input = Record
    let store: Store

    final class Store: Sendable {
        let lines = Mutex<[String]>([])
        var all: [String] { lines.withLock { $0 } }
    }

    func run(context: ComponentContext, input: Inbox<Record>) async throws {
        for await chunk in input {
            let texts = chunk.events.map { record -> String in
                var buffer: [UInt8] = []
                record.appendText(to: &buffer)
                return String(decoding: buffer, as: UTF8.self)
            }
            store.lines.withLock { $0 += texts }
            chunk.acknowledgements.resolve(.delivered)
        }
    }
}

/// A scratch directory with scripts for process plugins, and pipelines built from YAML written there (so
/// `command:` paths are relative to it, as they are to a real config file).
final class ProcessFixture: Sendable {
    let directory: String
    let outcomes = RecordCounter.Outcomes()
    let collected = RecordCollector.Store()

    init() throws {
        directory =
            FileManager.default.temporaryDirectory.appendingPathComponent("uplink-process-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { directory + "/" + name }

    /// Writes a Python script made of the shared prelude plus `body`.
    func python(_ name: String, _ body: String) throws {
        try (Self.prelude + body).write(toFile: path(name), atomically: true, encoding: .utf8)
    }

    func write(_ name: String, _ text: String, executable: Bool = false) throws {
        try text.write(toFile: path(name), atomically: true, encoding: .utf8)
        if executable { try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path(name)) }
    }

    func read(_ name: String) -> String { (try? String(contentsOfFile: path(name), encoding: .utf8)) ?? "" }

    var registry: PluginRegistry {
        var registry = Builtins.registry
        let outcomes = self.outcomes
        let collected = self.collected
        registry.register(
            PluginDescriptor(
                type: "counter", role: .source, summary: "test",
                options: [
                    OptionSpec("count", .int, "records"), OptionSpec("chunk", .int, "per chunk"),
                    OptionSpec("endless", .bool, "wait"),
                ],
                output: .kind(.record)
            ) { context in
                .source(
                    RecordCounter(
                        count: context.config.int("count", default: 10), chunk: context.config.int("chunk", default: 5),
                        endless: context.config.bool("endless", default: false), outcomes: outcomes))
            })
        registry.register(
            PluginDescriptor(
                type: "collect", role: .sink, summary: "test", options: [], accepts: [.record], output: .none
            ) { _ in
                .sink(RecordCollector(store: collected))
            })
        return registry
    }

    func pipeline(_ yaml: String) throws -> Pipeline {
        let diagnostics = DiagnosticCollector()
        let file = path("pipeline.yaml")
        var config = PipelineConfig(files: [file])
        ConfigLoader(environment: [:]).load(
            bytes: Array(yaml.utf8), file: file, into: &config, diagnostics: diagnostics)
        guard let topology = TopologyBuilder(registry: registry).build(config, diagnostics: diagnostics) else {
            throw ConfigError(diagnostics.diagnostics)
        }
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return try Pipeline(topology: topology, logger: logger)
    }

    /// Runs a pipeline to its end, or until `limit`, after which it is stopped and this throws.
    func run(_ pipeline: Pipeline, limit: Duration = .seconds(30)) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                try await pipeline.run()
                return true
            }
            group.addTask {
                try await Task.sleep(for: limit)
                return false
            }
            let finished = try await group.next()!
            group.cancelAll()
            if !finished {
                pipeline.stop()
                Issue.record("the pipeline did not finish within \(limit)")
            }
        }
    }

    var delivered: Int { outcomes.delivered.load(ordering: .relaxed) }
    var failed: Int { outcomes.failed.load(ordering: .relaxed) }
    var dropped: Int { outcomes.dropped.load(ordering: .relaxed) }

    /// Helpers every test script starts with: one JSON object per line each way.
    static let prelude = """
        import json, os, sys

        def send(message):
            sys.stdout.write(json.dumps(message) + "\\n")
            sys.stdout.flush()

        def receive():
            line = sys.stdin.readline()
            return json.loads(line) if line else None

        def handshake(name, role, input=None, output=None):
            init = receive()
            hello = {"type": "hello", "protocol": 1, "name": name, "role": role}
            if input: hello["input"] = input
            if output: hello["output"] = output
            send(hello)
            return init


        """
}
