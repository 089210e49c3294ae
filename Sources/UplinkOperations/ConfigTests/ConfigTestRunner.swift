public import Logging
public import UplinkCore
import UplinkYAML

#if canImport(Glibc)
import Glibc
#endif
import UplinkFileSystem

/// Runs ``ConfigTestCase``s against a validated topology: the `through` transforms only, in-process, one after
/// the other, with no source and no sink; their state directories live in a fresh temporary directory.
public struct ConfigTestRunner: Sendable {
    public let topology: Topology
    let logger: Logger
    /// How long one test may take before it fails (a transform that never ends its output).
    public var timeout: Duration = .seconds(30)

    public init(topology: Topology, logger: Logger) {
        self.topology = topology
        self.logger = logger
    }

    /// What one test found.
    public struct Outcome: Sendable {
        public var test: ConfigTestCase
        /// Empty when the test passed.
        public var failures: [String]
        /// The events that left the last transform, as text.
        public var outputs: [String]

        public var passed: Bool { failures.isEmpty }

        /// `ok   file: name`, or `FAIL file: name` followed by the component, input, expectations and output.
        public var report: String {
            let head = "\(test.file):\(test.mark.line): \(test.name)"
            guard !passed else { return "ok   " + head }
            var lines = ["FAIL " + head]
            lines.append("  component: \(test.through.last ?? "?")" + (test.through.count > 1 ? " (through \(test.through.joined(separator: " -> ")))" : ""))
            lines.append("  input:     " + Self.describe(test.input))
            for failure in failures { lines.append("  " + failure) }
            lines.append("  actual output (\(outputs.count) event\(outputs.count == 1 ? "" : "s")):")
            for (index, output) in outputs.prefix(20).enumerated() { lines.append("    [\(index + 1)] \(output)") }
            if outputs.count > 20 { lines.append("    … \(outputs.count - 20) more") }
            return lines.joined(separator: "\n")
        }

        static func describe(_ input: ConfigTestCase.Input) -> String {
            switch input {
            case .lines(let lines):
                return "lines " + Value.array(lines.map(Value.string)).jsonText
            case .records(let records):
                return "records " + Value.array(records.map(Value.object)).jsonText
            case .messages(let messages):
                return "messages "
                    + messages.map { "\($0.topic ?? "(default topic)"): \(String(decoding: $0.body, as: UTF8.self))" }
                    .joined(separator: "; ")
            }
        }
    }

    /// Problems that keep a test from running at all (unknown ids, a chain that is not wired that way, an
    /// input of the wrong kind), as located messages; empty when it can run.
    public func problems(of test: ConfigTestCase) -> [String] {
        var problems: [String] = []
        let location = "\(test.file):\(test.mark.line):\(test.mark.column)"
        var previous: Topology.Node?
        var previousOutput: String?
        for step in test.through {
            let reference = InputReference(parsing: step, mark: test.mark)
            let id = reference.id
            guard let node = topology.node(id) else {
                let transforms = topology.nodes.filter { $0.role == .transform }.map(\.id)
                let hint = ValueParsing.suggestion(for: id, among: transforms).map { "did you mean '\($0)'? " } ?? ""
                problems.append(
                    "\(location): test '\(test.name)': no component '\(id)'; \(hint)(transforms: \(transforms.joined(separator: ", ")))")
                return problems
            }
            guard node.role == .transform else {
                problems.append(
                    "\(location): test '\(test.name)': '\(id)' is a \(node.role.rawValue); tests run transforms only")
                return problems
            }
            if let previous, !node.inputReferences.contains(where: { $0.id == previous.id && $0.output == previousOutput }) {
                let read = previousOutput.map { previous.id + "." + $0 } ?? previous.id
                problems.append(
                    "\(location): test '\(test.name)': '\(id)' does not read from '\(read)' (its inputs: \(node.inputReferences.map(\.reference).joined(separator: ", ")))"
                )
            }
            if let output = reference.output, !node.outputNames.contains(output) {
                problems.append(
                    "\(location): test '\(test.name)': '\(id)' has no output '\(output)' (its outputs: \(node.outputNames.joined(separator: ", ")))")
            } else if reference.output == nil, !node.outputNames.isEmpty {
                let listed = node.outputNames.map { id + "." + $0 }.joined(separator: ", ")
                problems.append("\(location): test '\(test.name)': '\(id)' has named outputs: name one, as \(listed)")
            }
            previous = node
            previousOutput = reference.output
        }
        if let first = test.through.first.flatMap({ topology.node(InputReference(parsing: $0, mark: test.mark).id) }), let kind = first.inputKind, kind != test.input.kind {
            let key = kind == .raw ? "lines" : kind == .record ? "records" : "messages"
            problems.append(
                "\(location): test '\(test.name)': '\(first.id)' reads \(kind.rawValue) events; give input.\(key)")
        }
        return problems
    }

    /// Runs one test. Call ``problems(of:)`` first.
    public func run(_ test: ConfigTestCase) async -> Outcome {
        let directory: String
        do {
            directory = try TemporaryDirectory.make()
        } catch {
            return Outcome(test: test, failures: ["cannot create a state directory: \(error)"], outputs: [])
        }
        defer { TemporaryDirectory.remove(directory) }
        var events = Self.events(test.input, timestamp: test.timestamp)
        var dropped = 0
        for step in test.through {
            let reference = InputReference(parsing: step, mark: test.mark)
            let id = reference.id
            guard let node = topology.node(id), case .transform(let stage) = node.stage else { continue }
            let metrics = ComponentMetrics()
            var componentLogger = logger
            componentLogger[metadataKey: "component_id"] = "\(id)"
            let context = ComponentContext(
                id: id, type: node.type, role: .transform, logger: componentLogger, metrics: metrics,
                dataDirectory: directory)
            do {
                events = try await runWithTimeout { [events] in
                    try await Self.run(stage, context: context, input: events, output: reference.output)
                }
            } catch {
                return Outcome(test: test, failures: ["'\(id)' failed: \(error)"], outputs: [])
            }
            dropped += metrics.snapshot.droppedEvents
        }
        let outputs = events.map(Self.text)
        return Outcome(test: test, failures: Self.check(test, events: events, dropped: dropped), outputs: outputs)
    }

    private func runWithTimeout(_ body: @escaping @Sendable () async throws -> [any Event]) async throws -> [any Event] {
        let timeout = self.timeout
        return try await withThrowingTaskGroup(of: [any Event]?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let result = try await group.next(), let events = result else {
                throw TestTimeout(timeout: timeout)
            }
            return events
        }
    }

    struct TestTimeout: Error, CustomStringConvertible {
        var timeout: Duration
        var description: String { "did not finish within \(format(timeout))" }
    }

    struct KindMismatch: Error, CustomStringConvertible {
        var expected: EventKind
        var description: String { "it reads \(expected.rawValue) events, and the input is of another kind" }
    }

    /// Feeds `input` to `stage` as one chunk, ends its input, and collects everything it sends until it returns:
    /// to its default output, or to its named output `output` (what its other outputs get is not collected).
    static func run(
        _ stage: any TransformStage, context: ComponentContext, input: [any Event], output: String? = nil
    ) async throws -> [any Event] {
        func open<T: TransformStage>(_ stage: T) async throws -> [any Event] {
            let typed = input.compactMap { $0 as? T.Input }
            guard typed.count == input.count else { throw KindMismatch(expected: T.Input.kind) }
            let inputChannel = EventChannel<T.Input>(capacity: max(1, typed.count))
            let outputChannel = EventChannel<T.Output>(capacity: 4096)
            // Every other named output gets a channel that is drained and forgotten, so the stage never waits.
            let names = (stage as? any NamedOutputStage)?.outputNames ?? []
            let others = names.filter { $0 != output }.map { ($0, EventChannel<T.Output>(capacity: 4096)) }
            inputChannel.addProducer()
            outputChannel.addProducer()
            for (_, channel) in others { channel.addProducer() }
            var named: [String: [any EventEdge<T.Output>]] = [:]
            for (name, channel) in others { named[name] = [channel] }
            if let output { named[output] = [outputChannel] }
            let outbox = Outbox(
                channels: output == nil ? [outputChannel] : [], named: named, metrics: context.metrics)
            try await inputChannel.send(EventChunk(typed))
            inputChannel.finishProducer()
            return try await withThrowingTaskGroup(of: [any Event].self) { group in
                group.addTask {
                    defer {
                        outputChannel.finishProducer()
                        for (_, channel) in others { channel.finishProducer() }
                    }
                    context.metrics.setState(.running)
                    try await stage.run(
                        context: context, input: Inbox(channel: inputChannel, metrics: context.metrics), output: outbox)
                    context.metrics.setState(.finished)
                    return []
                }
                for (_, channel) in others {
                    group.addTask {
                        while await channel.next() != nil {}
                        return []
                    }
                }
                group.addTask {
                    var collected: [any Event] = []
                    while let chunk = await outputChannel.next() { collected += chunk.events.map { $0 as any Event } }
                    return collected
                }
                var outputs: [any Event] = []
                for try await part in group { outputs += part }
                return outputs
            }
        }
        return try await open(stage)
    }

    static func events(_ input: ConfigTestCase.Input, timestamp: Int64) -> [any Event] {
        let origin = EventOrigin(sourceID: "test", location: "uplink-test")
        switch input {
        case .lines(let lines):
            var offset: Int64 = 0
            return lines.map { line in
                defer { offset += Int64(line.utf8.count) + 1 }
                return RawEvent(bytes: ArraySlice(line.utf8), origin: origin, offset: offset, timestamp: timestamp)
            }
        case .records(let records):
            return records.map { Record(fields: $0, origin: origin, timestamp: timestamp) }
        case .messages(let messages):
            return messages.map { Message(topic: $0.topic, body: $0.body) }
        }
    }

    static func text(_ event: any Event) -> String {
        var bytes: [UInt8] = []
        event.appendText(to: &bytes)
        let text = String(decoding: bytes, as: UTF8.self)
        if let message = event as? Message, let topic = message.topic { return "\(topic) \(text)" }
        return text
    }

    static func check(_ test: ConfigTestCase, events: [any Event], dropped: Int) -> [String] {
        var failures: [String] = []
        if let count = test.expectedCount, count != events.count {
            failures.append("expected \(count) event\(count == 1 ? "" : "s"), got \(events.count)")
        }
        if let expected = test.expectedDropped, expected != dropped {
            failures.append("expected \(expected) dropped, got \(dropped)")
        }
        for (index, condition) in test.events.enumerated() {
            guard index < events.count else {
                failures.append("expected event \(index + 1): \(condition.description)\n    but only \(events.count) came out")
                continue
            }
            if let problem = mismatch(condition, events[index]) {
                failures.append(
                    "expected event \(index + 1): \(condition.description)\n    actual:   \(text(events[index]))\n    \(problem)")
            }
        }
        if let all = test.all {
            for (index, event) in events.enumerated() {
                if let problem = mismatch(all, event) {
                    failures.append(
                        "expected every event: \(all.description)\n    event \(index + 1): \(text(event))\n    \(problem)")
                    break
                }
            }
        }
        return failures
    }

    /// Why `event` does not meet `condition`, or nil.
    static func mismatch(_ condition: ConfigTestCase.Condition, _ event: any Event) -> String? {
        var bytes: [UInt8] = []
        event.appendText(to: &bytes)
        let text = String(decoding: bytes, as: UTF8.self)
        if let topic = condition.topic {
            let actual = (event as? Message)?.topic
            if actual != topic { return "topic: expected \(topic), got \(actual ?? "none")" }
        }
        if let expected = condition.text, expected != text { return "text differs" }
        for piece in condition.contains where !text.contains(piece) { return "does not contain \(piece)" }
        for piece in condition.notContains where text.contains(piece) { return "contains \(piece)" }
        if let json = condition.json {
            guard let actual = try? JSONReader.parse(bytes) else { return "the event is not JSON" }
            if let problem = JSONMatch.mismatch(expected: json, actual: actual) { return "json: " + problem }
        }
        return nil
    }
}

/// A fresh directory under `$TMPDIR` (or /tmp) for one test's state, removed afterwards.
enum TemporaryDirectory {
    static func make() throws -> String {
        let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array((base + "/uplink-test-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw FileIO.Failure("cannot create", path: base + "/uplink-test-XXXXXX")
        }
        return String(cString: made)
    }

    /// Removes `path` and everything below it (not following symbolic links).
    static func remove(_ path: String) {
        if let directory = opendir(path) {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { bytes in
                    String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                if name == "." || name == ".." { continue }
                let child = path + "/" + name
                // unlink refuses directories (EISDIR): those are emptied and removed in turn.
                if unlink(child) != 0 { remove(child) }
            }
            closedir(directory)
        }
        rmdir(path)
    }
}
