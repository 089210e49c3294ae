import Benchmark
import Foundation
import Logging
import UplinkCore
import UplinkPlugins

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// With `UPLINK_BENCH_SMALL=1`, the pipeline benchmarks move 1,000 events per iteration (`.kilo`) instead of
/// 1,000,000 (`.mega`): for `--allocation-stacks`, which records the stack of every allocation.
let smallPipelines = getenv("UPLINK_BENCH_SMALL") != nil

/// Events per iteration of the pipeline benchmarks.
let eventsPerPipelineIteration = smallPipelines ? 1_000 : 1_000_000

/// Inputs shared by the benchmarks, built once outside the measured iterations (the warm-up touches them first).
enum Fixtures {
    static let origin = EventOrigin(sourceID: "in", location: "/var/log/bench.log")

    /// The 99 bytes (without newline) of line `index` of bench/bench.py's input: a 10-digit number, a space, `x`s.
    static func line(_ index: Int) -> [UInt8] {
        var number = Array(String(index).utf8)
        while number.count < 10 { number.insert(UInt8(ascii: "0"), at: 0) }
        let prefix = number + [UInt8(ascii: " ")]
        return prefix + [UInt8](repeating: UInt8(ascii: "x"), count: 99 - prefix.count)
    }

    /// `count` lines of exactly 100 bytes (newline included), as one buffer.
    static func lines(_ count: Int) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(count * 100)
        for index in 0..<count {
            buffer.append(contentsOf: line(index))
            buffer.append(0x0A)
        }
        return buffer
    }

    /// Events per chunk: a source's read of 64 KiB holds about 650 lines of 100 bytes; bench-channel uses 512.
    static let chunkSize = 512

    /// What `json` in raw mode makes of 512 such lines: `{"message":"0000000042 xxx…"}`.
    static let rawRecords: [Record] = (0..<chunkSize).map { index in
        var fields = Fields()
        fields.append("message", .string(String(decoding: line(index), as: UTF8.self)))
        return Record(fields: fields, origin: origin, timestamp: 1_700_000_000_000 + Int64(index))
    }

    /// What `json` in csv mode makes of bench/bench.py's sensor lines (`time:int, temperature:float,
    /// humidity:int, status`), 512 of them.
    static let sensorRecords: [Record] = (0..<chunkSize).map { index in
        var fields = Fields()
        fields.reserveCapacity(4)
        fields.append("time", .int(1_700_000_000_000 + Int64(index)))
        fields.append("temperature", .double(20 + Double(index % 150) / 10))
        fields.append("humidity", .int(40 + Int64(index % 30)))
        fields.append("status", .string(index % 7 == 0 ? "warn" : "ok"))
        return Record(fields: fields, origin: origin, timestamp: 1_700_000_000_000 + Int64(index))
    }

    /// A fresh directory for a stage's state (thing_model keeps its RequestID counter there).
    static func stateDirectory() -> String {
        var template = Array("/tmp/uplink-bench-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            fatalError("cannot create a state directory in /tmp")
        }
        return String(cString: made)
    }
}

/// A stage's state directory for one benchmark: made by its setup hook, removed with what the stage left in it by
/// its teardown hook (every benchmark runs in a process of its own that registers them all).
final class StateDirectory: @unchecked Sendable {
    // Written by the setup and teardown hooks, around the iterations that read it.
    private(set) var path = "/nonexistent"

    func make() { path = Fixtures.stateDirectory() }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
        path = "/nonexistent"
    }
}

/// Builds transform `id` of a pipeline through its plugin factory, as `uplink run` does (the transforms' settings
/// are internal; their public way in is the config).
func builtTransform<T: TransformStage>(_ id: String, in yaml: String, as type: T.Type = T.self) -> T {
    let diagnostics = DiagnosticCollector()
    var config = PipelineConfig(files: ["bench.yaml"])
    ConfigLoader(environment: [:]).load(
        bytes: Array(yaml.utf8), file: "bench.yaml", into: &config, diagnostics: diagnostics)
    let topology = TopologyBuilder(registry: Builtins.registry).build(config, diagnostics: diagnostics)
    guard !diagnostics.hasErrors, let topology, case .transform(let stage) = topology.node(id)?.stage,
        let typed = stage as? T
    else {
        fatalError(
            "the benchmark pipeline is invalid:\n" + diagnostics.diagnostics.map(\.description).joined(separator: "\n"))
    }
    return typed
}

/// What came out of a pipeline run.
struct Delivered: Sendable {
    var events = 0
    var bytes = 0
}

/// Runs `stage` as the engine does, between two bounded channels (4,096 events, the default buffer): a producer
/// task sends `total` events as chunks of `chunk` (slices of `events`, each made once per call and then shared,
/// not copied, by every chunk sent), the stage runs in its own task, and this task consumes the output. Returns
/// what reached the consumer.
func drive<T: TransformStage>(
    _ stage: T, events: [T.Input], chunk: Int, total: Int, dataDirectory: String
) async throws -> Delivered {
    let input = EventChannel<T.Input>(capacity: 4096)
    let output = EventChannel<T.Output>(capacity: 4096)
    let metrics = ComponentMetrics()
    let context = ComponentContext(
        id: "t", type: "bench", role: .transform, logger: Logger(label: "bench"), metrics: metrics,
        dataDirectory: dataDirectory)
    input.addProducer()
    output.addProducer()
    return try await withThrowingTaskGroup(of: Void.self, returning: Delivered.self) { group in
        group.addTask {
            let slices = stride(from: 0, to: events.count, by: chunk).map {
                Array(events[$0..<min($0 + chunk, events.count)])
            }
            var sent = 0
            var next = 0
            while sent < total {
                var slice = slices[next]
                next = (next + 1) % slices.count
                if slice.count > total - sent { slice = Array(slice.prefix(total - sent)) }
                try await input.send(EventChunk(slice))
                sent += slice.count
            }
            input.finishProducer()
        }
        group.addTask {
            try await stage.run(
                context: context, input: Inbox(channel: input, metrics: metrics),
                output: Outbox(channels: [output], metrics: metrics))
            output.finishProducer()
        }
        var delivered = Delivered()
        while let received = await output.next() {
            delivered.events += received.count
            delivered.bytes += received.byteCount
        }
        try await group.waitForAll()
        return delivered
    }
}

/// Runs `first` then `second` then `third` as the engine runs a chain of stages, each in its own task between bounded
/// channels (4,096 events), fed as ``drive(_:events:chunk:total:dataDirectory:)`` feeds one stage. The later stages
/// get what the first made, fresh records nothing else holds, as a `json` upstream hands them on in a real pipeline
/// (the shared fixtures `drive` sends would make every in-place change copy first).
func drive<A: TransformStage, B: TransformStage, C: TransformStage>(
    _ first: A, _ second: B, _ third: C, events: [A.Input], chunk: Int, total: Int
) async throws -> Delivered where A.Output == B.Input, B.Output == C.Input {
    let input = EventChannel<A.Input>(capacity: 4096)
    let firstOut = EventChannel<A.Output>(capacity: 4096)
    let secondOut = EventChannel<B.Output>(capacity: 4096)
    let output = EventChannel<C.Output>(capacity: 4096)
    func context(_ id: String, _ metrics: ComponentMetrics) -> ComponentContext {
        ComponentContext(
            id: id, type: "bench", role: .transform, logger: Logger(label: "bench"), metrics: metrics,
            dataDirectory: "/nonexistent")
    }
    input.addProducer()
    firstOut.addProducer()
    secondOut.addProducer()
    output.addProducer()
    return try await withThrowingTaskGroup(of: Void.self, returning: Delivered.self) { group in
        group.addTask {
            let slices = stride(from: 0, to: events.count, by: chunk).map {
                Array(events[$0..<min($0 + chunk, events.count)])
            }
            var sent = 0
            var next = 0
            while sent < total {
                var slice = slices[next]
                next = (next + 1) % slices.count
                if slice.count > total - sent { slice = Array(slice.prefix(total - sent)) }
                try await input.send(EventChunk(slice))
                sent += slice.count
            }
            input.finishProducer()
        }
        group.addTask {
            let metrics = ComponentMetrics()
            try await first.run(
                context: context("a", metrics), input: Inbox(channel: input, metrics: metrics),
                output: Outbox(channels: [firstOut], metrics: metrics))
            firstOut.finishProducer()
        }
        group.addTask {
            let metrics = ComponentMetrics()
            try await second.run(
                context: context("b", metrics), input: Inbox(channel: firstOut, metrics: metrics),
                output: Outbox(channels: [secondOut], metrics: metrics))
            secondOut.finishProducer()
        }
        group.addTask {
            let metrics = ComponentMetrics()
            try await third.run(
                context: context("c", metrics), input: Inbox(channel: secondOut, metrics: metrics),
                output: Outbox(channels: [output], metrics: metrics))
            output.finishProducer()
        }
        var delivered = Delivered()
        while let received = await output.next() {
            delivered.events += received.count
            delivered.bytes += received.byteCount
        }
        try await group.waitForAll()
        return delivered
    }
}

/// A transform's context for ``processFused(_:events:chunk:total:)``: metrics of its own, no data directory.
private func fusedContext(_ id: String) -> ComponentContext {
    ComponentContext(
        id: id, type: "bench", role: .transform, logger: Logger(label: "bench"), metrics: ComponentMetrics(),
        dataDirectory: "/nonexistent")
}

/// The chunks ``drive(_:events:chunk:total:dataDirectory:)`` sends, one after another: slices of `events`, each made
/// once and then shared by every chunk sent, the last cut so that exactly `total` events go.
private func forEachChunk<E: Event>(of events: [E], chunk: Int, total: Int, _ body: (EventChunk<E>) throws -> Void) rethrows {
    let slices = stride(from: 0, to: events.count, by: chunk).map { Array(events[$0..<min($0 + chunk, events.count)]) }
    var sent = 0
    var next = 0
    while sent < total {
        var slice = slices[next]
        next = (next + 1) % slices.count
        if slice.count > total - sent { slice = Array(slice.prefix(total - sent)) }
        sent += slice.count
        try body(EventChunk(slice))
    }
}

/// Runs `first`'s processor on each chunk in the calling task, as the runtime runs a stage fused behind its
/// producer (``InlineEdge``), without the tasks and channels around it: the stage's own work. Returns the events out.
func processFused<A: InlineTransform>(_ first: A, events: [A.Input], chunk: Int, total: Int) throws -> Int {
    let processor = try first.makeProcessor(context: fusedContext("a"))
    defer { processor.finish() }
    var delivered = 0
    try forEachChunk(of: events, chunk: chunk, total: total) { chunk in
        if let out = try processor.process(chunk) { delivered += out.count }
    }
    return delivered
}

/// `first`, `second` and `third` fused as the runtime fuses a chain (`json` -> `filter` -> `remap`): each chunk
/// goes through the three processors in the calling task. Less ``processFused(_:events:chunk:total:)`` of `first`
/// alone, it is what the two later stages' own work adds per record.
func processFused<A: InlineTransform, B: InlineTransform, C: InlineTransform>(
    _ first: A, _ second: B, _ third: C, events: [A.Input], chunk: Int, total: Int
) throws -> Int where A.Output == B.Input, B.Output == C.Input {
    let a = try first.makeProcessor(context: fusedContext("a"))
    let b = try second.makeProcessor(context: fusedContext("b"))
    let c = try third.makeProcessor(context: fusedContext("c"))
    defer {
        a.finish()
        b.finish()
        c.finish()
    }
    var delivered = 0
    try forEachChunk(of: events, chunk: chunk, total: total) { chunk in
        guard let first = try a.process(chunk), let second = try b.process(first), let third = try c.process(second) else {
            return
        }
        delivered += third.count
    }
    return delivered
}
