import Testing
import UplinkCore
import UplinkOperations

@Suite struct TopScreenTests {
    static func snapshot(sent: Int, received: Int, failing: String? = nil) -> ComponentsSnapshot {
        ComponentsSnapshot(
            uptimeSeconds: 75, ready: true,
            components: [
                .init(id: "console", type: "stdin", kind: "source", state: "running", sentEvents: sent, sentBytes: sent * 10),
                .init(
                    id: "cloud", type: "iotcore_http", kind: "sink", state: "running", receivedEvents: received,
                    sentEvents: received, droppedEvents: 3, errors: 1, bufferEvents: 512, bufferFill: 0.125,
                    failing: failing, concurrencyLimit: 8, maxConcurrency: 32, requestsInFlight: 5),
            ])
    }

    @Test func ratesComeFromTwoSnapshots() {
        let lines = TopScreen(address: "127.0.0.1:8686").lines(
            current: Self.snapshot(sent: 3000, received: 2500), previous: Self.snapshot(sent: 1000, received: 500),
            elapsed: .seconds(2))
        let text = lines.joined(separator: "\n")
        #expect(lines[0] == "uplink top — 127.0.0.1:8686 — up 1m15s")
        #expect(lines[2].hasPrefix("ID "))
        let console = try! #require(lines.first { $0.hasPrefix("console") })
        // 2000 events in 2 s out of the source.
        #expect(console.contains("1.0k"))
        #expect(console.contains("9.8KiB"))
        let cloud = try! #require(lines.first { $0.hasPrefix("cloud") })
        #expect(cloud.contains("13% (512)"))
        #expect(text.contains("2.5k"))
    }

    @Test func theSinksRequestsInFlightShowAgainstItsLimit() throws {
        let lines = TopScreen(address: "x").lines(
            current: Self.snapshot(sent: 1, received: 1), previous: nil, elapsed: .zero)
        let header = try #require(lines.first { $0.hasPrefix("ID ") })
        let cloud = try #require(lines.first { $0.hasPrefix("cloud") })
        let console = try #require(lines.first { $0.hasPrefix("console") })
        let column = try #require(header.firstRange(of: "IN FLIGHT"))
        // Right-aligned under its header: the cell ends where the header does.
        let end = header.distance(from: header.startIndex, to: column.upperBound)
        #expect(String(cloud.prefix(end)).hasSuffix(" 5/8"))
        #expect(String(console.prefix(end)).hasSuffix(" -"))
    }

    @Test func theSnapshotTakesTheSinksConcurrencyGauges() {
        let sink = ComponentMetrics()
        sink.addReporter {
            ComponentReport(samples: [
                MetricSample(name: "uplink_iotcore_concurrency_limit", help: "", value: .gauge(12)),
                MetricSample(name: "uplink_iotcore_max_concurrency", help: "", value: .gauge(32)),
                MetricSample(name: "uplink_iotcore_requests_in_flight", help: "", value: .gauge(7)),
            ])
        }
        let snapshot = ComponentsSnapshot(
            [component("parse"), component("cloud", type: "iotcore_http", role: .sink, metrics: sink)], uptime: .seconds(1),
            ready: true)
        #expect(snapshot.components[0].concurrencyLimit == nil && snapshot.components[0].requestsInFlight == nil)
        #expect(snapshot.components[1].concurrencyLimit == 12)
        #expect(snapshot.components[1].maxConcurrency == 32)
        #expect(snapshot.components[1].requestsInFlight == 7)
        let json = String(decoding: snapshot.json, as: UTF8.self)
        #expect(json.contains(#""concurrency_limit":12,"max_concurrency":32,"requests_in_flight":7}"#))
        // Only the component that reports a limit carries one.
        #expect(json.ranges(of: "concurrency_limit").count == 1)
    }

    @Test func aFailingComponentIsMarkedAndExplained() {
        let lines = TopScreen(address: "x").lines(
            current: Self.snapshot(sent: 1, received: 1, failing: "IoT-Core requests failing: connection refused"),
            previous: nil, elapsed: .zero, hint: "q or Ctrl-C to quit")
        #expect(lines.contains { $0.hasPrefix("cloud") && $0.contains("failing") })
        #expect(lines.contains("! cloud: IoT-Core requests failing: connection refused"))
        #expect(lines.last == "q or Ctrl-C to quit")
    }

    @Test func linesAreClippedToTheTerminal() {
        let lines = TopScreen(address: "x").lines(
            current: Self.snapshot(sent: 1, received: 1), previous: nil, elapsed: .zero, width: 20)
        #expect(lines.allSatisfy { $0.count <= 20 })
    }

    @Test func theSnapshotSurvivesItsJSON() throws {
        let snapshot = Self.snapshot(sent: 5, received: 4, failing: "down")
        #expect(try ComponentsSnapshot.parse(snapshot.json) == snapshot)
    }

    /// A fused transform has no input buffer: its BUFFER cell says why, and the API marks it.
    @Test func aFusedTransformIsMarkedInTheBufferColumn() throws {
        let snapshot = ComponentsSnapshot(
            [
                ComponentStatus(id: "parse", type: "json", role: .transform, metrics: ComponentMetrics(), buffer: nil, fused: true),
                component("cloud", type: "iotcore_http", role: .sink),
            ], uptime: .seconds(1), ready: true)
        #expect(snapshot.components.map(\.fused) == [true, false])
        let json = String(decoding: snapshot.json, as: UTF8.self)
        #expect(json.ranges(of: #""fused":true"#).count == 1)
        #expect(try ComponentsSnapshot.parse(snapshot.json) == snapshot)
        let lines = TopScreen(address: "x").lines(current: snapshot, previous: nil, elapsed: .zero)
        let parse = try #require(lines.first { $0.hasPrefix("parse") })
        let cloud = try #require(lines.first { $0.hasPrefix("cloud") })
        #expect(parse.hasSuffix(" fused"))
        #expect(cloud.hasSuffix(" -"))
    }
}
