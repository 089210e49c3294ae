import Logging
import ServiceLifecycle
import Synchronization
import Testing
import UplinkCore
import UplinkOperations

/// The API listener live on a loopback port, read with the client `uplink top` and `uplink tap` use.
@Suite(.timeLimit(.minutes(1))) struct APIServerTests {
    /// Serves `components` on a free port for the duration of `body`.
    static func serving(
        _ components: [ComponentStatus], ready: Bool = true, unhealthyAfter: Duration = .seconds(60),
        _ body: @Sendable (APIClient) async throws -> Void
    ) async throws {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let server = APIServer(
            configuration: APIConfig(host: "127.0.0.1", port: 0, unhealthyAfter: unhealthyAfter),
            target: OperationsTarget(components: { components }, isReady: { ready }),
            logger: Logger(label: "test"), onListening: { continuation.yield($0) })
        let group = ServiceGroup(services: [server], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            try await body(try APIClient(address: "127.0.0.1:\(port)"))
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test func metricsHealthReadyAndComponents() async throws {
        let metrics = ComponentMetrics()
        metrics.sent(events: 42, bytes: 4200)
        metrics.setState(.running)
        try await Self.serving([component("parse", metrics: metrics)]) { client in
            let scrape = try await client.get("/metrics")
            #expect(scrape.status == 200)
            let text = String(decoding: scrape.body, as: UTF8.self)
            #expect(text.contains(#"uplink_component_sent_events_total{component_id="parse",component_type="json",component_kind="transform"} 42"#))
            #expect(text.contains("uplink_uptime_seconds"))

            let health = try await client.get("/health")
            #expect(health.status == 200)
            #expect(String(decoding: health.body, as: UTF8.self).contains(#""status":"healthy""#))

            #expect(try await client.get("/ready").status == 200)

            let snapshot = try ComponentsSnapshot.parse(try await client.get("/api/components").body)
            #expect(snapshot.components.map(\.id) == ["parse"])
            #expect(snapshot.components[0].sentEvents == 42)
            #expect(snapshot.components[0].state == "running")
        }
    }

    @Test func unhealthyAndNotReadyAre503() async throws {
        let metrics = ComponentMetrics()
        metrics.addReporter {
            ComponentReport(failure: .init(since: .now - .seconds(5), reason: "IoT-Core requests failing: refused"))
        }
        try await Self.serving(
            [component("cloud", type: "iotcore_http", role: .sink, metrics: metrics)], ready: false,
            unhealthyAfter: .seconds(1)
        ) { client in
            let health = try await client.get("/health")
            #expect(health.status == 503)
            #expect(String(decoding: health.body, as: UTF8.self).contains(#""component_id":"cloud""#))
            #expect(try await client.get("/ready").status == 503)
        }
    }

    /// Lines of a streamed body, collected as they arrive.
    final class LineCollector: Sendable {
        private let state = Mutex<(pending: [UInt8], lines: [String], status: Int)>(([], [], 0))

        var lines: [String] { state.withLock { $0.lines } }
        var status: Int { state.withLock { $0.status } }

        func head(_ status: Int) { state.withLock { $0.status = status } }

        func body(_ bytes: [UInt8]) {
            state.withLock { state in
                state.pending += bytes
                while let newline = state.pending.firstIndex(of: 0x0A) {
                    state.lines.append(String(decoding: state.pending[..<newline], as: UTF8.self))
                    state.pending.removeSubrange(...newline)
                }
            }
        }
    }

    @Test func tapStreamsTheEventsLeavingAComponent() async throws {
        let metrics = ComponentMetrics()
        let channel = EventChannel<Record>(capacity: 1000)
        channel.addProducer()
        let outbox = Outbox(channels: [channel], metrics: metrics)
        try await Self.serving([component("parse", metrics: metrics)]) { client in
            let collector = LineCollector()
            let reader = Task {
                try await client.stream("/tap/parse?limit=2") { collector.head($0) } onBody: { collector.body($0) }
            }
            // Events sent before the tap is attached are not seen; keep sending until two arrived.
            var sequence: Int64 = 0
            while collector.lines.count < 2 {
                sequence += 1
                try await outbox.send([Record(fields: ["n": .int(sequence)], timestamp: 0)])
                try await Task.sleep(for: .milliseconds(20))
            }
            try await reader.value
            #expect(collector.status == 200)
            #expect(collector.lines.count == 2)
            #expect(collector.lines.allSatisfy { $0.hasPrefix(#"{"component_id":"parse","kind":"record","event":{"n":"#) })
        }
    }

    @Test func tapWatchesOneNamedOutput() async throws {
        let metrics = ComponentMetrics()
        let alarms = EventChannel<Record>(capacity: 1000)
        let rest = EventChannel<Record>(capacity: 1000)
        alarms.addProducer()
        rest.addProducer()
        let outbox = Outbox(channels: [], named: ["alarms": [alarms], "_unmatched": [rest]], metrics: metrics)
        let split = ComponentStatus(
            id: "split", type: "route", role: .transform, metrics: metrics, buffer: nil,
            outputNames: ["alarms", "_unmatched"])
        try await Self.serving([split]) { client in
            let collector = LineCollector()
            let reader = Task {
                try await client.stream("/tap/split.alarms?limit=2") { collector.head($0) } onBody: { collector.body($0) }
            }
            var sequence: Int64 = 0
            while collector.lines.count < 2 {
                sequence += 1
                // Only what leaves through `alarms` is seen, not what goes to `_unmatched`.
                try await outbox.send(EventChunk([Record(fields: ["other": .int(sequence)], timestamp: 0)]), to: "_unmatched")
                try await outbox.send(EventChunk([Record(fields: ["n": .int(sequence)], timestamp: 0)]), to: "alarms")
                try await Task.sleep(for: .milliseconds(20))
            }
            try await reader.value
            #expect(collector.lines.count == 2)
            #expect(collector.lines.allSatisfy { $0.contains(#""event":{"n":"#) })
            let unknown = try await client.get("/tap/split.alarm")
            #expect(unknown.status == 404)
            #expect(String(decoding: unknown.body, as: UTF8.self).contains("'split' has no output 'alarm'; did you mean 'split.alarms'? (outputs: split.alarms, split._unmatched)"))
            let whole = try await client.get("/tap/split")
            #expect(whole.status == 400)
        }
    }

    @Test func tapRefusesUnknownComponentsAndSinks() async throws {
        try await Self.serving([component("parse"), component("out", type: "stdout", role: .sink)]) { client in
            let unknown = try await client.get("/tap/nope")
            #expect(unknown.status == 404)
            #expect(String(decoding: unknown.body, as: UTF8.self).contains("no component 'nope' (components: parse, out)"))
            let misspelt = try await client.get("/tap/prase")
            #expect(String(decoding: misspelt.body, as: UTF8.self).contains("no component 'prase'; did you mean 'parse'?"))
            let sink = try await client.get("/tap/out")
            #expect(sink.status == 400)
        }
    }

    @Test func aPortInUseNamesTheSetting() async throws {
        try await Self.serving([component("parse")]) { client in
            let second = APIServer(
                configuration: APIConfig(host: "127.0.0.1", port: client.port),
                target: OperationsTarget(components: { [] }, isReady: { true }), logger: Logger(label: "test"))
            await #expect {
                try await second.run()
            } throws: { error in
                "\(error)" == "cannot listen on 127.0.0.1:\(client.port) (api.address): Address already in use"
            }
        }
    }

    @Test func anOpenTapDoesNotHoldUpShutdown() async throws {
        let metrics = ComponentMetrics()
        try await Self.serving([component("idle", metrics: metrics)]) { client in
            let task = Task { try await client.get("/tap/idle") }
            while !metrics.tap.isActive { try await Task.sleep(for: .milliseconds(10)) }
            // The serving helper shuts the server down after this body; the tap stream must end with it.
            _ = task
        }
    }
}

@Suite struct SummaryLoggerTests {
    @Test(.timeLimit(.minutes(1))) func oneLinePerComponentPerIntervalWithTheIntervalsCounts() async throws {
        let logs = CapturedLogs()
        let metrics = ComponentMetrics()
        metrics.setState(.running)
        let components = [component("parse", metrics: metrics)]
        let summaries = SummaryLogger(interval: .milliseconds(100), logger: logs.logger) { components }
        let group = ServiceGroup(services: [summaries], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            // The first line covers a quiet interval; what happens next is in the second.
            while logs.all.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
            metrics.received(events: 10, bytes: 100)
            metrics.sent(events: 9, bytes: 90)
            metrics.dropped(1, reason: .parseError)
            while logs.all.count < 3 { try await Task.sleep(for: .milliseconds(5)) }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(logs.all[0].metadata["events.received"] == "0")
        let first = logs.all[1]
        #expect(first.level == .info)
        #expect(first.message == "component summary")
        #expect(first.metadata["component_id"] == "parse")
        #expect(first.metadata["events.received"] == "10")
        #expect(first.metadata["events.sent"] == "9")
        #expect(first.metadata["events.dropped"] == "1")
        #expect(first.metadata["summary.interval"] == "100ms")
        // The next interval had nothing: counts are per interval, not totals.
        #expect(logs.all[2].metadata["events.received"] == "0")
    }
}
