import Testing
import UplinkCore

@Suite(.timeLimit(.minutes(1))) struct TapPointTests {
    static func raw(_ lines: [String]) -> [RawEvent] {
        let origin = EventOrigin(sourceID: "in")
        return lines.map { RawEvent(bytes: ArraySlice($0.utf8), origin: origin, timestamp: 0) }
    }

    @Test func withoutReadersNothingIsCopied() async throws {
        let metrics = ComponentMetrics()
        let channel = EventChannel<RawEvent>(capacity: 10)
        channel.addProducer()
        let outbox = Outbox(channels: [channel], metrics: metrics)
        #expect(!metrics.tap.isActive)
        try await outbox.send(Self.raw(["a"]))
        #expect(metrics.tap.droppedCopies == 0)
        #expect(await channel.next()?.count == 1)
    }

    @Test func aReaderSeesTheEventsLeavingTheComponentUpToItsLimit() async throws {
        let metrics = ComponentMetrics()
        let channel = EventChannel<RawEvent>(capacity: 100)
        channel.addProducer()
        let outbox = Outbox(channels: [channel], metrics: metrics)
        let stream = metrics.tap.attach(limit: 3)
        #expect(metrics.tap.isActive)
        try await outbox.send(Self.raw(["a", "b"]))
        try await outbox.send(Self.raw(["c", "d"]))
        var seen: [String] = []
        for await event in stream { seen.append(String(decoding: event.text, as: UTF8.self)) }
        #expect(seen == ["a", "b", "c"])
        // The limit reached, the reader is detached: the data path is back to one load.
        #expect(!metrics.tap.isActive)
        // The pipeline itself got everything.
        #expect(channel.bufferedEvents == 4)
    }

    @Test func aSlowReaderLosesCopiesNotEvents() async throws {
        let metrics = ComponentMetrics()
        let channel = EventChannel<RawEvent>(capacity: 10_000)
        channel.addProducer()
        let outbox = Outbox(channels: [channel], metrics: metrics)
        let stream = metrics.tap.attach(limit: nil, bufferEvents: 5)
        for _ in 0..<10 { try await outbox.send(Self.raw(Array(repeating: "x", count: 100))) }
        #expect(channel.bufferedEvents == 1000)
        // At most 64 copies per chunk are tried; the reader's buffer holds 5, the rest are dropped and counted.
        #expect(metrics.tap.droppedCopies == 10 * TapPoint.maxEventsPerChunk - 5)
        metrics.tap.detachAll()
        var count = 0
        for await _ in stream { count += 1 }
        #expect(count == 5)
        #expect(!metrics.tap.isActive)
    }

    @Test func messagesKeepTheirTopic() async throws {
        let metrics = ComponentMetrics()
        let channel = EventChannel<Message>(capacity: 10)
        channel.addProducer()
        let stream = metrics.tap.attach(limit: 1)
        try await Outbox(channels: [channel], metrics: metrics).send([Message(topic: "/a/b", body: Array("{}".utf8))])
        var iterator = stream.makeAsyncIterator()
        let event = await iterator.next()
        #expect(event?.topic == "/a/b")
        #expect(event?.kind == .message)
    }

    @Test func droppedEventsAreCountedByReason() {
        let metrics = ComponentMetrics()
        metrics.dropped(2, reason: .deadLetter)
        metrics.dropped(3)
        #expect(metrics.snapshot.droppedEvents == 5)
        #expect(metrics.snapshot.droppedByReason[.deadLetter] == 2)
        #expect(metrics.snapshot.droppedByReason[.policy] == 3)
        #expect(metrics.snapshot.droppedByReason[.channelFull] == 0)
    }
}
