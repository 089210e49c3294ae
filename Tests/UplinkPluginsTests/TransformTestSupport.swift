import Foundation
import Logging
import Synchronization
import Testing
import UplinkCore
import UplinkPlugins

/// Loads a pipeline from text and builds its topology with the built-ins; returns it (nil when invalid) and the
/// error diagnostics as `file:line:column: error: message` lines.
func buildPipeline(
    _ yaml: String, environment: [String: String] = [:], registry: PluginRegistry = Builtins.registry
) -> (Topology?, [String]) {
    let diagnostics = DiagnosticCollector()
    var config = PipelineConfig(files: ["test.yaml"])
    ConfigLoader(environment: environment).load(
        bytes: Array(yaml.utf8), file: "test.yaml", into: &config, diagnostics: diagnostics)
    let topology = TopologyBuilder(registry: registry).build(config, diagnostics: diagnostics)
    let errors = diagnostics.diagnostics.filter { $0.severity == .error }.map(\.description)
    return (diagnostics.hasErrors ? nil : topology, errors)
}

struct PipelineInvalid: Error, CustomStringConvertible {
    var errors: [String]
    var description: String { errors.joined(separator: "\n") }
}

/// Builds the transform `id` of a pipeline through its plugin factory, as `uplink run` would.
func builtTransform<T: TransformStage>(
    _ id: String, in yaml: String, as type: T.Type = T.self, registry: PluginRegistry = Builtins.registry
) throws -> T {
    let (topology, errors) = buildPipeline(yaml, registry: registry)
    guard let topology else { throw PipelineInvalid(errors: errors) }
    guard case .transform(let stage) = topology.node(id)?.stage, let typed = stage as? T else {
        throw PipelineInvalid(errors: ["'\(id)' is not a \(T.self)"])
    }
    return typed
}

/// A pipeline `stdin -> <id> -> stdout` with the transform's options written in flow style.
func pipeline(json options: String) -> String {
    """
    sources:
      in: { type: stdin }
    transforms:
      t: { type: json, inputs: [in], \(options) }
    sinks:
      out: { type: stdout, inputs: [t] }
    """
}

/// A pipeline `stdin -> json (mode: json) -> t (thing_model) -> stdout`; `t` is on line 5.
func pipeline(thingModel options: String) -> String {
    """
    sources:
      in: { type: stdin }
    transforms:
      wrap: { type: json, inputs: [in], mode: json }
      t: { type: thing_model, inputs: [wrap], \(options) }
    sinks:
      out: { type: stdout, inputs: [t] }
    """
}

/// A registry with the built-ins and `fake_iotcore`, a sink that shares its `product_sn` and `device_sn` at
/// build time the way the IoT-Core sink does.
let registryWithDeviceSink: PluginRegistry = {
    var registry = Builtins.registry
    registry.register(
        PluginDescriptor(
            type: "fake_iotcore", role: .sink, summary: "shares device credentials",
            options: [OptionSpec("product_sn", .string, "ProductSN"), OptionSpec("device_sn", .string, "DeviceSN")],
            accepts: [.message], output: .none
        ) { context in
            context.shared["iotcore.product_sn"] = context.config.string("product_sn")
            context.shared["iotcore.device_sn"] = context.config.string("device_sn")
            return .sink(StdoutSink<Message>())
        })
    return registry
}()

/// Records as `json` would make them, read at the spec's example time.
func records(_ fields: [Fields], time: Int64 = 1_524_448_722_000) -> [Record] {
    fields.map { Record(fields: $0, origin: EventOrigin(sourceID: "in"), timestamp: time) }
}

/// A state directory whose `id` component's request-ID counter resumes at `next`.
func stateDirectory(id: String = "t", requestIDsFrom next: Int) throws -> String {
    let directory = try temporaryDirectory()
    try FileManager.default.createDirectory(atPath: directory + "/" + id, withIntermediateDirectories: true)
    try "\(next)\n".write(toFile: directory + "/" + id + "/request-id", atomically: true, encoding: .utf8)
    return directory
}

/// Raw events as a source would make them, read at the spec's example time.
func rawEvents(_ lines: [String], time: Int64 = 1_524_448_722_000) -> [RawEvent] {
    let origin = EventOrigin(sourceID: "in", location: "/dev/ttyS1")
    return lines.enumerated().map { index, line in
        RawEvent(bytes: ArraySlice(line.utf8), origin: origin, offset: Int64(index), timestamp: time)
    }
}

func rawEvents(bytes lines: [[UInt8]], time: Int64 = 1_524_448_722_000) -> [RawEvent] {
    let origin = EventOrigin(sourceID: "in")
    return lines.map { RawEvent(bytes: $0[...], origin: origin, timestamp: time) }
}

extension Record {
    var json: String {
        var buffer: [UInt8] = []
        appendText(to: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}

extension Message {
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// Where this test process keeps its directories: `<tmp>/uplink-transform-tests/<pid>`. The directories of
/// earlier runs whose process is gone are removed on first use, so test runs do not pile up in /tmp.
private let testDirectoriesRoot: URL = {
    let parent = FileManager.default.temporaryDirectory.appendingPathComponent("uplink-transform-tests")
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: parent.path)) ?? []
    for entry in entries {
        if let pid = Int32(entry), kill(pid, 0) != 0 && errno == ESRCH {
            try? FileManager.default.removeItem(at: parent.appendingPathComponent(entry))
        }
    }
    return parent.appendingPathComponent(String(getpid()))
}()

/// A fresh directory for one test.
func temporaryDirectory(_ label: String = #function) throws -> String {
    let name = "\(label.filter { $0.isLetter || $0.isNumber })-\(UUID().uuidString)"
    let url = testDirectoriesRoot.appendingPathComponent(name)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url.path
}

/// The JSON objects of a JSON-lines file.
func jsonLines(_ path: String) throws -> [[String: Any]] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    return try text.split(separator: "\n").map {
        try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
    }
}

/// Counts what acknowledgement tokens finally report.
final class AckCounter: Sendable {
    let delivered = Mutex(0)
    let other = Mutex(0)

    var deliveredCount: Int { delivered.withLock { $0 } }
    var otherCount: Int { other.withLock { $0 } }

    func token() -> Acknowledgement {
        Acknowledgement { status in
            if status == .delivered { self.delivered.withLock { $0 += 1 } } else { self.other.withLock { $0 += 1 } }
        }
    }
}

/// What a transform produced from in-memory input, and the counters it kept.
struct TransformRun<Output: Event> {
    var chunks: [EventChunk<Output>]
    var metrics: ComponentMetrics.Snapshot
    /// The component's own counters by name (labels ignored).
    var counters: [String: Double] = [:]
    var events: [Output] { chunks.flatMap(\.events) }
}

/// Runs a transform over chunks (each with its acknowledgements) until their end, like `runTransform`, and
/// also returns its metrics.
func run<T: TransformStage>(
    _ transform: T, _ input: [EventChunk<T.Input>], id: String = "t", dataDirectory: String = "/tmp/uplink-test-state"
) async throws -> TransformRun<T.Output> {
    let inputChannel = EventChannel<T.Input>(capacity: 1 << 20)
    let outputChannel = EventChannel<T.Output>(capacity: 1 << 20)
    let metrics = ComponentMetrics()
    inputChannel.addProducer()
    outputChannel.addProducer()
    for chunk in input { try await inputChannel.send(chunk) }
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
    var counters: [String: Double] = [:]
    for sample in metrics.report().samples {
        if case .counter(let value) = sample.value { counters[sample.name, default: 0] += value }
    }
    return TransformRun(chunks: chunks, metrics: metrics.snapshot, counters: counters)
}

func run<T: TransformStage>(
    _ transform: T, _ events: [T.Input], id: String = "t", dataDirectory: String = "/tmp/uplink-test-state"
) async throws -> TransformRun<T.Output> {
    try await run(transform, [EventChunk(events)], id: id, dataDirectory: dataDirectory)
}
