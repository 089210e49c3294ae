import Synchronization
import Testing
import UplinkCore

private func record(_ fields: Fields) -> Record { Record(fields: fields, timestamp: 0) }

/// An outbox measures a chunk's bytes once and the inbox downstream reads the figure: it must stay the events' true
/// byte count whatever a stage does to them.
@Suite struct EventChunkTests {
    @Test func aMeasuredByteCountFollowsEveryChangeToTheEvents() {
        var chunk = EventChunk([record(["a": .int(1)]), record(["b": .string("xyz")])])
        let measured = chunk.measureByteCount()
        #expect(measured == Record.totalByteCount(of: chunk.events))

        chunk.events[0].fields["long_name"] = .string("a value of some length")
        #expect(chunk.byteCount == Record.totalByteCount(of: chunk.events), "changed in place")
        #expect(chunk.byteCount != measured)

        _ = chunk.measureByteCount()
        chunk.events.removeLast()
        #expect(chunk.byteCount == Record.totalByteCount(of: chunk.events), "an event removed")

        _ = chunk.measureByteCount()
        chunk.events = [record(["c": .bool(true)])]
        #expect(chunk.byteCount == Record.totalByteCount(of: chunk.events), "replaced")
    }

    @Test func eventsTakenOutAndPutBackKeepTheByteCountTheCallerGives() {
        var chunk = EventChunk([record(["a": .int(1)]), record(["b": .string("xyz")])])
        let measured = chunk.measureByteCount()
        var events = chunk.takeEvents()
        #expect(chunk.isEmpty)
        #expect(chunk.measuredByteCount == measured)
        chunk.restore(&events, byteCount: measured)
        #expect(events.isEmpty, "the array moved back, not copied")
        #expect(chunk.byteCount == measured)

        events = chunk.takeEvents()
        events[1].fields["b"] = .string("a much longer string than before")
        chunk.restore(&events, byteCount: nil)
        #expect(chunk.byteCount == Record.totalByteCount(of: chunk.events))
        #expect(chunk.byteCount > measured)
    }

    @Test func whatAnOutboxSendsIsCountedWithTheSameBytesByTheInboxDownstream() async throws {
        let channel = EventChannel<Record>(capacity: 100)
        channel.addProducer()
        let upstream = ComponentMetrics()
        let downstream = ComponentMetrics()
        let outbox = Outbox(channels: [channel], metrics: upstream)
        let inbox = Inbox(channel: channel, metrics: downstream)
        let events = [record(["t": .double(21.5), "s": .string("ok")]), record(["t": .double(22)])]
        try await outbox.send(EventChunk(events))
        channel.finishProducer()
        var received: [Record] = []
        for await chunk in inbox { received += chunk.events }
        #expect(received.count == 2)
        let bytes = Record.totalByteCount(of: events)
        #expect(upstream.snapshot.sentBytes == bytes)
        #expect(downstream.snapshot.receivedBytes == bytes)
    }

    /// A fan-out: each branch answers on its own, so the chunk is delivered only when every branch delivered it.
    /// One branch delivering and the other losing it (a stop) holds it back. (With the chunk's token shared by
    /// both branches, the first branch's answer stood for the other.)
    @Test(arguments: [
        (DeliveryStatus?.some(.delivered), DeliveryStatus?.some(.delivered), DeliveryStatus.delivered),
        (.some(.delivered), nil, .dropped),
        (nil, .some(.delivered), .dropped),
        (.some(.failed), .some(.delivered), .failed),
    ])
    func aFannedOutChunkIsDeliveredWhenEveryBranchDeliveredIt(
        first: DeliveryStatus?, second: DeliveryStatus?, expected: DeliveryStatus
    ) async throws {
        let heard = Mutex<[DeliveryStatus]>([])
        let branches = [EventChannel<Record>(capacity: 10), EventChannel<Record>(capacity: 10)]
        for branch in branches { branch.addProducer() }
        let outbox = Outbox(channels: branches, metrics: ComponentMetrics())
        try await outbox.send(
            EventChunk(
                [record(["t": .int(1)])],
                acknowledgements: Acknowledgements([Acknowledgement { status in heard.withLock { $0.append(status) } }])))
        for (branch, answer) in zip(branches, [first, second]) {
            branch.finishProducer()
            let chunk = await branch.next()
            #expect(chunk?.count == 1)
            if let answer { chunk?.acknowledgements.resolve(answer) }
        }
        #expect(heard.withLock { $0 } == [expected])
    }
}
