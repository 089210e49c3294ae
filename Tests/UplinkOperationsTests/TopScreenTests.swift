import Testing
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
                    failing: failing),
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
}
