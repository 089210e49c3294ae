import Foundation
import Logging
import Synchronization
import Testing
import UplinkCore

@testable import UplinkPlugins
import UplinkTestSupport

/// Builds a source from its YAML mapping through the real config loader and registry, as `uplink run` does.
func buildSource(_ mapping: String) throws -> any SourceStage {
    let yaml = "sources:\n  s: \(mapping)\nsinks:\n  out: { type: stdout, inputs: [s] }\n"
    let diagnostics = DiagnosticCollector()
    var config = PipelineConfig(files: ["t.yaml"])
    ConfigLoader(environment: [:]).load(
        bytes: Array(yaml.utf8), file: "t.yaml", into: &config, diagnostics: diagnostics)
    guard let topology = TopologyBuilder(registry: Builtins.registry).build(config, diagnostics: diagnostics),
        case .source(let stage)? = topology.node("s")?.stage
    else { throw ConfigError(diagnostics.diagnostics) }
    return stage
}

/// The error messages a source's YAML mapping produces (empty when valid).
func configErrors(_ mapping: String) -> [String] {
    do {
        _ = try buildSource(mapping)
        return []
    } catch let error as ConfigError {
        return error.errors.map(\.message)
    } catch {
        return ["\(error)"]
    }
}

/// A fresh temporary directory.
func sourceTemporaryDirectory(_ name: String = "src") -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("uplink-\(name)-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// What the collecting sink kept of an event (copied out of the read buffer).
struct ReceivedEvent: Sendable {
    var bytes: [UInt8]
    var offset: Int64
    var location: String?
    var attributes: [String: String]
    var truncated: Bool
    var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// Runs a source in-process into a sink that records every event and acknowledges it (or not), so tests use
/// real files, ptys and processes without the binary.
final class SourceHarness: Sendable {
    let channel = EventChannel<RawEvent>(capacity: 1 << 20)
    let metrics = ComponentMetrics()
    private let received = Mutex<[ReceivedEvent]>([])
    private let chunkCount = Mutex(0)
    private let sourceTask: Mutex<Task<Void, any Error>?> = Mutex(nil)
    private let consumerTask: Mutex<Task<Void, Never>?> = Mutex(nil)
    private let consumerFinished = Mutex(false)
    let dataDirectory: String
    let id: String
    let logger: Logger

    init(dataDirectory: String = sourceTemporaryDirectory("state"), id: String = "s", logger: Logger = SourceHarness.logger) {
        self.dataDirectory = dataDirectory
        self.id = id
        self.logger = logger
    }

    static var logger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = ProcessInfo.processInfo.environment["UPLINK_TEST_LOG"] != nil ? .debug : .critical
        return logger
    }

    /// Starts the source; `acknowledge: false` leaves every chunk unresolved (reported as dropped).
    func start<S: SourceStage>(_ source: S, acknowledge: Bool = true) where S.Output == RawEvent {
        start(source, acknowledging: { _ in acknowledge })
    }

    /// Starts the source; a chunk is acknowledged as delivered when `acknowledging` says so for its events, else
    /// left unresolved (reported as dropped).
    func start<S: SourceStage>(
        _ source: S, acknowledging: @escaping @Sendable ([ReceivedEvent]) -> Bool
    ) where S.Output == RawEvent {
        start(source) { events, acknowledgements in
            if acknowledging(events) { acknowledgements.resolve(.delivered) }
        }
    }

    /// Starts the source; `handle` gets each chunk's events and its acknowledgements, and answers for them itself
    /// (cutting them, keeping parts to answer later). The chunk itself lets them go once `handle` returns.
    func start<S: SourceStage>(
        _ source: S, handling handle: @escaping @Sendable ([ReceivedEvent], Acknowledgements) -> Void
    ) where S.Output == RawEvent {
        channel.addProducer()
        let context = ComponentContext(
            id: id, type: "test", role: .source, logger: logger, metrics: metrics, dataDirectory: dataDirectory)
        let outbox = Outbox(channels: [channel], metrics: metrics)
        let channel = self.channel
        sourceTask.withLock {
            $0 = Task {
                defer { channel.finishProducer() }
                try await source.run(context: context, output: outbox)
            }
        }
        consumerTask.withLock {
            $0 = Task { [self] in
                defer { consumerFinished.withLock { $0 = true } }
                while let chunk = await channel.next() {
                    let copies = chunk.events.map {
                        ReceivedEvent(
                            bytes: Array($0.bytes), offset: $0.offset, location: $0.origin.location,
                            attributes: $0.origin.attributes, truncated: $0.truncated)
                    }
                    received.withLock { $0.append(contentsOf: copies) }
                    chunkCount.withLock { $0 += 1 }
                    handle(copies, chunk.acknowledgements)
                }
            }
        }
    }

    var events: [ReceivedEvent] { received.withLock { $0 } }
    var lines: [String] { events.map(\.text) }
    var chunks: Int { chunkCount.withLock { $0 } }

    /// Waits until at least `count` events arrived; false on timeout.
    @discardableResult
    func waitFor(count: Int, timeout: Duration = .seconds(10)) async -> Bool {
        await waitUntil(timeout: timeout) { self.events.count >= count }
    }

    /// Waits until the last event received satisfies `condition`; false on timeout.
    @discardableResult
    func waitUntilLast(timeout: Duration = .seconds(10), _ condition: @escaping @Sendable (ReceivedEvent) -> Bool) async -> Bool {
        await waitUntil(timeout: timeout) { self.events.last.map(condition) ?? false }
    }

    /// Cancels the source (as the pipeline does at shutdown) and waits for everything it sent to be consumed.
    func stop() async {
        let task = sourceTask.withLock { $0 }
        task?.cancel()
        _ = await task?.result
        await consumerTask.withLock { $0 }?.value
    }

    /// Waits for the source to end by itself; returns its error, if any.
    func finish(timeout: Duration = .seconds(10)) async -> (any Error)? {
        let task = sourceTask.withLock { $0 }
        let finished = await waitUntil(timeout: timeout) { self.consumerFinished.withLock { $0 } }
        if !finished { task?.cancel() }
        let result = await task?.result
        await consumerTask.withLock { $0 }?.value
        if case .failure(let error)? = result { return error }
        return nil
    }
}

/// Appends bytes to a file (created if missing), as a logging application does.
func append(_ text: String, to path: String) {
    append(Array(text.utf8), to: path)
}

func append(_ bytes: [UInt8], to path: String) {
    let fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
    precondition(fd >= 0, "cannot open \(path)")
    bytes.withUnsafeBytes { raw in
        var offset = 0
        while offset < raw.count {
            let written = write(fd, raw.baseAddress! + offset, raw.count - offset)
            precondition(written > 0)
            offset += written
        }
    }
    close(fd)
}
