import Synchronization
import Testing
import UplinkCore

private func chunk(_ values: [Int], origin: EventOrigin = EventOrigin(sourceID: "t")) -> EventChunk<RawEvent> {
    EventChunk(values.map { RawEvent(bytes: ArraySlice(String($0).utf8), origin: origin, offset: Int64($0), timestamp: 0) })
}

private func numbers(_ chunk: EventChunk<RawEvent>) -> [Int] {
    chunk.events.map { Int(String(decoding: $0.bytes, as: UTF8.self))! }
}

@Suite(.timeLimit(.minutes(1))) struct EventChannelTests {
    @Test func producerSuspendsWhenFullAndResumesWhenDrained() async throws {
        let channel = EventChannel<RawEvent>(capacity: 2)
        channel.addProducer()
        try await channel.send(chunk([1, 2]))
        let sent = Atomic<Bool>(false)
        let producer = Task {
            try await channel.send(chunk([3]))
            sent.store(true, ordering: .sequentiallyConsistent)
        }
        // The producer cannot complete while the buffer is full; give it every chance to run.
        for _ in 0..<100 { await Task.yield() }
        #expect(sent.load(ordering: .sequentiallyConsistent) == false)
        #expect(channel.bufferedEvents == 2)
        let first = await channel.next()
        #expect(first.map(numbers) == [1, 2])
        try await producer.value
        #expect(sent.load(ordering: .sequentiallyConsistent) == true)
        let second = await channel.next()
        #expect(second.map(numbers) == [3])
        channel.finishProducer()
        #expect(await channel.next() == nil)
    }

    @Test func aStalledProducerResumesOnlyOnceTheBufferIsDrainedToHalf() async throws {
        let channel = EventChannel<RawEvent>(capacity: 4)
        channel.addProducer()
        for value in 1...4 { try await channel.send(chunk([value])) }
        let sent = Atomic<Bool>(false)
        let producer = Task {
            try await channel.send(chunk([5]))
            sent.store(true, ordering: .sequentiallyConsistent)
        }
        for _ in 0..<100 { await Task.yield() }
        #expect(sent.load(ordering: .sequentiallyConsistent) == false)
        #expect(await channel.next().map(numbers) == [1])
        // A place is free, but the buffer holds more than half: the producer is not woken for one chunk.
        for _ in 0..<100 { await Task.yield() }
        #expect(sent.load(ordering: .sequentiallyConsistent) == false)
        #expect(channel.bufferedEvents == 3)
        #expect(await channel.next().map(numbers) == [2])
        try await producer.value
        #expect(channel.bufferedEvents == 3, "admitted at the low watermark, behind what was buffered")
        channel.finishProducer()
        var rest: [Int] = []
        while let next = await channel.next() { rest += numbers(next) }
        #expect(rest == [3, 4, 5])
    }

    @Test func theLowWatermarkKeepsTheBoundsOrderAndEveryChunkUnderBackPressure() async throws {
        // A slow consumer behind several producers: whatever the wake-up policy, nothing is lost or reordered
        // and the buffer never holds more than its bound plus one chunk.
        let capacity = 16
        let largestChunk = 5
        let channel = EventChannel<RawEvent>(capacity: capacity, maxBytes: 40)
        let producers = 3
        let perProducer = 1_500
        for _ in 0..<producers { channel.addProducer() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for producer in 0..<producers {
                group.addTask {
                    var value = 0
                    while value < perProducer {
                        let size = min(1 + value % largestChunk, perProducer - value)
                        try await channel.send(chunk((value..<(value + size)).map { producer * 1_000_000 + $0 }))
                        value += size
                    }
                    channel.finishProducer()
                }
            }
            var seen: [Int: [Int]] = [:]
            var mostBuffered = 0
            var mostBytes = 0
            while let received = await channel.next() {
                mostBuffered = max(mostBuffered, channel.bufferedEvents + received.count)
                mostBytes = max(mostBytes, channel.bufferedBytes)
                for number in numbers(received) { seen[number / 1_000_000, default: []].append(number % 1_000_000) }
                await Task.yield()
            }
            try await group.waitForAll()
            for producer in 0..<producers {
                #expect(seen[producer] == Array(0..<perProducer), "producer \(producer) lost or reordered events")
            }
            #expect(mostBuffered <= capacity - 1 + largestChunk)
            // Each event here is at most 7 bytes ("1001499").
            #expect(mostBytes <= 40 - 1 + largestChunk * 7)
        }
    }

    @Test func aByteBoundFillsTheChannelBeforeItsEventCapacity() async throws {
        // Events of 100 bytes: the 250-byte bound is reached by the third event, far below 1000 events.
        func big(_ value: Int) -> EventChunk<RawEvent> {
            EventChunk([RawEvent(bytes: ArraySlice(Array(repeating: UInt8(value), count: 100)), origin: EventOrigin(sourceID: "t"), offset: 0, timestamp: 0)])
        }
        let channel = EventChannel<RawEvent>(capacity: 1000, maxBytes: 250)
        channel.addProducer()
        for value in 0..<3 { try await channel.send(big(value)) }
        #expect(channel.bufferedBytes == 300, "admitted while below the bound, so a large chunk never deadlocks")
        let sent = Atomic<Bool>(false)
        let producer = Task {
            try await channel.send(big(3))
            sent.store(true, ordering: .sequentiallyConsistent)
        }
        for _ in 0..<100 { await Task.yield() }
        #expect(sent.load(ordering: .sequentiallyConsistent) == false, "full by bytes: the producer waits")
        _ = await channel.next()
        _ = await channel.next()
        try await producer.value
        #expect(channel.bufferedEvents == 2 && channel.bufferedBytes == 200)
        channel.finishProducer()

        let dropping = EventChannel<RawEvent>(capacity: 1000, maxBytes: 250, overflowPolicy: .dropOldest)
        dropping.addProducer()
        for value in 0..<10 { try await dropping.send(big(value)) }
        #expect(dropping.bufferedBytes <= 300)
        #expect(dropping.droppedEvents == 10 - dropping.bufferedEvents)
        dropping.finishProducer()
        var kept: [UInt8] = []
        while let next = await dropping.next() { kept += next.events.map { $0.bytes.first! } }
        #expect(kept == Array(UInt8(10 - kept.count)..<10), "the newest are kept")
    }

    @Test func whatADropPolicyDiscardsIsAFinalAnswerForItsSource() async throws {
        for policy in [OverflowPolicy.dropNewest, .dropOldest] {
            let channel = EventChannel<RawEvent>(capacity: 1, overflowPolicy: policy)
            channel.addProducer()
            let statuses = Mutex<[DeliveryStatus]>([])
            for value in 0..<3 {
                let token = Acknowledgement { status in statuses.withLock { $0.append(status) } }
                var next = chunk([value])
                next.acknowledgements = Acknowledgements([token])
                try await channel.send(next)
            }
            // Two of the three were discarded: their sources heard a final answer (not "dropped", which would hold
            // a file tail's checkpoint back until the next start).
            #expect(statuses.withLock { $0 } == [.delivered, .delivered], "\(policy)")
            #expect(channel.droppedEvents == 2)
            channel.finishProducer()
        }
    }

    @Test func severalProducersLoseNothingAndKeepEachOnesOrder() async throws {
        let channel = EventChannel<RawEvent>(capacity: 8)
        let producers = 4
        let perProducer = 2_000
        for _ in 0..<producers { channel.addProducer() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for producer in 0..<producers {
                group.addTask {
                    var value = 0
                    while value < perProducer {
                        let size = min(1 + value % 5, perProducer - value)
                        try await channel.send(chunk((value..<(value + size)).map { producer * 1_000_000 + $0 }))
                        value += size
                    }
                    channel.finishProducer()
                }
            }
            var seen: [Int: [Int]] = [:]
            while let received = await channel.next() {
                for number in numbers(received) { seen[number / 1_000_000, default: []].append(number % 1_000_000) }
            }
            try await group.waitForAll()
            #expect(seen.count == producers)
            for producer in 0..<producers {
                #expect(seen[producer] == Array(0..<perProducer), "producer \(producer) lost or reordered events")
            }
        }
    }

    @Test func cancellingASuspendedProducerThrowsAndLeavesTheBufferIntact() async throws {
        let channel = EventChannel<RawEvent>(capacity: 1)
        channel.addProducer()
        try await channel.send(chunk([1]))
        let producer = Task { try await channel.send(chunk([2])) }
        for _ in 0..<50 { await Task.yield() }
        producer.cancel()
        await #expect(throws: CancellationError.self) { try await producer.value }
        #expect(await channel.next().map(numbers) == [1])
        #expect(channel.bufferedEvents == 0)
    }

    @Test func cancellingAWaitingConsumerReturnsNil() async {
        let channel = EventChannel<RawEvent>(capacity: 1)
        channel.addProducer()
        let consumer = Task { await channel.next() }
        for _ in 0..<50 { await Task.yield() }
        consumer.cancel()
        #expect(await consumer.value == nil)
    }

    @Test func dropNewestCountsWhatItDrops() async throws {
        let channel = EventChannel<RawEvent>(capacity: 2, overflowPolicy: .dropNewest)
        channel.addProducer()
        try await channel.send(chunk([1, 2]))
        try await channel.send(chunk([3]))
        try await channel.send(chunk([4, 5]))
        channel.finishProducer()
        #expect(channel.droppedEvents == 3)
        #expect(await channel.next().map(numbers) == [1, 2])
        #expect(await channel.next() == nil)
    }

    @Test func dropOldestKeepsTheNewest() async throws {
        let channel = EventChannel<RawEvent>(capacity: 2, overflowPolicy: .dropOldest)
        channel.addProducer()
        try await channel.send(chunk([1, 2]))
        try await channel.send(chunk([3]))
        try await channel.send(chunk([4]))
        channel.finishProducer()
        #expect(channel.droppedEvents == 2)
        var all: [Int] = []
        while let next = await channel.next() { all += numbers(next) }
        #expect(all == [3, 4])
    }

    @Test func closingTheReceiverReleasesWaitingProducers() async throws {
        let channel = EventChannel<RawEvent>(capacity: 1)
        channel.addProducer()
        try await channel.send(chunk([1]))
        let producer = Task { try await channel.send(chunk([2])) }
        for _ in 0..<50 { await Task.yield() }
        channel.closeReceiver()
        await #expect(throws: ChannelClosedError.self) { try await producer.value }
        await #expect(throws: ChannelClosedError.self) { try await channel.send(chunk([3])) }
        #expect(channel.droppedEvents == 3)
    }

    @Test func oversizedChunkIsAdmittedIntoAnEmptyChannel() async throws {
        let channel = EventChannel<RawEvent>(capacity: 2)
        channel.addProducer()
        try await channel.send(chunk(Array(0..<10)))
        #expect(await channel.next()?.count == 10)
    }
}

@Suite struct AcknowledgementTests {
    @Test func finishesOnceWhenTheLastHolderIsDropped() {
        let result = Mutex<[DeliveryStatus]>([])
        do {
            let token = Acknowledgement { status in result.withLock { $0.append(status) } }
            let first = Acknowledgements([token])
            var second = Acknowledgements()
            second.merge(first)
            second.merge(first)
            #expect(second.tokens.count == 1)
            first.resolve(.delivered)
            #expect(result.withLock { $0 }.isEmpty)
        }
        #expect(result.withLock { $0 } == [.delivered])
    }

    @Test func unresolvedMeansDroppedAndFailedIsSticky() {
        let result = Mutex<[DeliveryStatus]>([])
        do { _ = Acknowledgement { status in result.withLock { $0.append(status) } } }
        do {
            let token = Acknowledgement { status in result.withLock { $0.append(status) } }
            token.resolve(.failed)
            token.resolve(.delivered)
        }
        #expect(result.withLock { $0 } == [.dropped, .failed])
    }
}
