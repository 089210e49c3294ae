import Foundation
import Logging
import Synchronization
import Testing
import UplinkCore
import UplinkFileSystem
import UplinkFileSystemTesting

private func temporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "uplink-disk-buffer-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

private func messages(_ range: Range<Int>, size: Int = 64) -> [Message] {
    range.map { index in
        let text = "{\"n\":\(index),\"pad\":\"" + String(repeating: "x", count: max(0, size - 20)) + "\"}"
        return Message(topic: "/t/\(index % 3)", body: Array(text.utf8))
    }
}

private func number(_ message: Message) -> Int {
    let text = String(decoding: message.body, as: UTF8.self)
    return Int(text.dropFirst(5).prefix(while: \.isNumber))!
}

/// Opens a buffer and waits until it has recovered what an earlier one left (so its counters include it).
private func open(_ directory: String, maxBytes: Int = 64 << 20, whenFull: OverflowPolicy = .block) async throws -> DiskBuffer<Message> {
    let buffer = try DiskBuffer<Message>(
        configuration: .init(directory: directory, maxBytes: maxBytes, whenFull: whenFull, fsyncInterval: .milliseconds(50), chunkEvents: 100),
        logger: Logger(label: "disk-buffer-test"))
    await buffer.opened()
    return buffer
}

/// Reads until `count` events arrived (or the buffer ends), acknowledging each chunk as delivered if `ack`.
private func drain(_ buffer: DiskBuffer<Message>, count: Int, ack: Bool = true) async -> [Int] {
    var seen: [Int] = []
    while seen.count < count, let chunk = await buffer.next() {
        seen += chunk.events.map(number)
        if ack { chunk.acknowledgements.resolve(.delivered) }
    }
    return seen
}

private func segments(_ directory: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix("segment-") }.sorted()
}

@Suite(.serialized, .timeLimit(.minutes(1))) struct DiskBufferTests {
    @Test func everythingWrittenIsReadBackInOrderAndAcknowledgedSegmentsAreDeleted() async throws {
        let directory = temporaryDirectory()
        let buffer = try await open(directory, maxBytes: 1 << 20)  // small segments: 128 KiB
        buffer.addProducer()
        let upstream = Atomic<Int>(0)
        for start in stride(from: 0, to: 10_000, by: 250) {
            let token = Acknowledgement { status in if status == .delivered { upstream.add(250, ordering: .relaxed) } }
            try await buffer.send(EventChunk(messages(start..<(start + 250)), acknowledgements: Acknowledgements([token])))
        }
        buffer.finishProducer()
        #expect(segments(directory).count > 2)
        let seen = await drain(buffer, count: 10_000)
        #expect(seen == Array(0..<10_000))
        #expect(await buffer.next() == nil)
        // Upstream was acknowledged once the data was durable.
        #expect(upstream.load(ordering: .relaxed) == 10_000)
        await buffer.closeReceiver()
        #expect(segments(directory).count <= 1)
        #expect(buffer.bufferedEvents == 0)
        let mode = try FileManager.default.attributesOfItem(atPath: directory + "/ledger.slots")[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test func aLedgerLeftByTheFirstFormatIsReadAndReplacedOnceItsSuccessorIsOnDisk() async throws {
        let directory = temporaryDirectory()
        do {
            let buffer = try await open(directory)
            buffer.addProducer()
            try await buffer.send(EventChunk(messages(0..<300)))
            buffer.finishProducer()
            await buffer.closeReceiver()
        }
        // What an earlier version left: its JSON ledger, 100 records in (the 8-byte header, then a frame header of
        // 8 bytes and the encoded record each).
        try? FileManager.default.removeItem(atPath: directory + "/ledger.slots")
        let offset = messages(0..<100).reduce(8) { offset, message in
            var writer = BinaryWriter()
            message.encode(to: &writer)
            return offset + 8 + writer.bytes.count
        }
        let segment = try #require(segments(directory).first.flatMap { Int($0.dropFirst(8).dropLast(4)) })
        try Data("{\"segment\":\(segment),\"offset\":\(offset)}\n".utf8).write(to: URL(fileURLWithPath: directory + "/ledger.json"))

        let reopened = try await open(directory)
        #expect(reopened.bufferedEvents == 200)
        reopened.addProducer()
        reopened.finishProducer()
        do {
            // The acknowledgement reports when its last holder (this chunk) lets go, at the end of the scope.
            let first = try #require(await reopened.next())
            #expect(first.events.map(number) == Array(100..<200))
            first.acknowledgements.resolve(.delivered)
        }
        await reopened.flush()
        #expect(!FileManager.default.fileExists(atPath: directory + "/ledger.json"), "replaced by ledger.slots")
        #expect(FileManager.default.fileExists(atPath: directory + "/ledger.slots"))
        await reopened.closeReceiver()

        let again = try await open(directory)
        #expect(again.bufferedEvents == 100)
        again.addProducer()
        again.finishProducer()
        #expect(await drain(again, count: 100) == Array(200..<300))
    }

    @Test func restartResumesAfterTheLastAcknowledgedChunkAndResendsWhatWasInFlight() async throws {
        let directory = temporaryDirectory()
        do {
            let buffer = try await open(directory)
            buffer.addProducer()
            try await buffer.send(EventChunk(messages(0..<1000)))
            // Read 500 (5 chunks) but acknowledge only the first 2 chunks: 3 are "in flight" when we crash.
            var chunks: [EventChunk<Message>] = []
            for _ in 0..<5 { chunks.append(await buffer.next()!) }
            chunks[0].acknowledgements.resolve(.delivered)
            chunks[1].acknowledgements.resolve(.delivered)
            chunks.removeAll()  // the rest are dropped unacknowledged
            await buffer.closeReceiver()
        }
        let reopened = try await open(directory)
        #expect(reopened.bufferedEvents == 800)
        reopened.addProducer()
        reopened.finishProducer()
        let seen = await drain(reopened, count: 800)
        #expect(seen == Array(200..<1000))
        print("disk buffer restart: 1000 written, 200 acknowledged, \(seen.count) re-read, 0 lost")
    }

    @Test func corruptedRecordIsSkippedAndTheRestDelivered() async throws {
        let directory = temporaryDirectory()
        do {
            let buffer = try await open(directory)
            buffer.addProducer()
            try await buffer.send(EventChunk(messages(0..<100)))
            buffer.finishProducer()
            await buffer.closeReceiver()
        }
        // Flip one byte inside record 50's payload.
        let path = directory + "/" + segments(directory)[0]
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let needle = Data("{\"n\":50,".utf8)
        let range = try #require(bytes.range(of: needle))
        bytes[range.lowerBound + 3] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: path))

        let reopened = try await open(directory)
        reopened.addProducer()
        reopened.finishProducer()
        let seen = await drain(reopened, count: 100)
        #expect(seen == Array(0..<50) + Array(51..<100))
        #expect(reopened.damagedRecords >= 1)
        print("disk buffer corruption: 100 written, 1 damaged, \(seen.count) delivered")
    }

    @Test func aConsumerReadsOnPastMoreThanAChunkOfDamagedRecordsWhileProducersAreOpen() async throws {
        // 10 MiB of records in one segment, the first 6 MiB damaged on disk (the last 2 MiB are also kept in memory):
        // one read stops after about two megabytes, and the consumer must not wait for another write (or, here, the deferred sync an hour
        // away) in front of the intact records. A consumer that waited would fail the suite's time limit.
        let directory = temporaryDirectory()
        let buffer = try DiskBuffer<Message>(
            configuration: .init(directory: directory, fsyncInterval: .seconds(3600), chunkEvents: 100, segmentBytes: 32 << 20),
            logger: Logger(label: "disk-buffer-test"))
        buffer.addProducer()
        let size = 16_000
        for start in stride(from: 0, to: 640, by: 10) {
            try await buffer.send(EventChunk(messages(start..<(start + 10), size: size)))
        }
        let path = directory + "/" + segments(directory)[0]
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        var offset = 8
        var damaged = 0
        while offset + 8 <= bytes.count, offset < 6 << 20 {
            let length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
            bytes[offset + 8 + length - 1] ^= 0xFF
            damaged += 1
            offset += 8 + length
        }
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.write(contentsOf: bytes)
        try handle.close()
        // Bounded: a consumer left waiting cannot be cancelled, so the answer races a 10 s deadline.
        let answer = await withCheckedContinuation { (answered: CheckedContinuation<EventChunk<Message>?, Never>) in
            let once = Shared<CheckedContinuation<EventChunk<Message>?, Never>?>(answered)
            Task {
                let chunk = await buffer.next()
                once.withLock { $0.take() }?.resume(returning: chunk)
            }
            Task {
                try? await Task.sleep(for: .seconds(10))
                once.withLock { $0.take() }?.resume(returning: nil)
            }
        }
        let chunk = try #require(answer, "the consumer waited in front of intact records")
        #expect(chunk.events.first.map(number) == damaged)
        #expect(buffer.damagedRecords == damaged)
        #expect(segments(directory).count == 1)
        #expect(damaged > (4 << 20) / size)
    }

    @Test func tornTailAfterAPowerCutLosesOnlyTheTornRecord() async throws {
        let directory = temporaryDirectory()
        do {
            let buffer = try await open(directory)
            buffer.addProducer()
            try await buffer.send(EventChunk(messages(0..<100)))
            buffer.finishProducer()
            await buffer.closeReceiver()
        }
        let path = directory + "/" + segments(directory)[0]
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        truncate(path, off_t(size - 10))
        let reopened = try await open(directory)
        #expect(reopened.damagedRecords == 1)
        reopened.addProducer()
        // New writes after the restart go to a new segment and are delivered after the intact old ones.
        try await reopened.send(EventChunk(messages(100..<110)))
        reopened.finishProducer()
        let seen = await drain(reopened, count: 109)
        #expect(seen == Array(0..<99) + Array(100..<110))
    }

    /// A power cut that tears a write within its first frame header leaves fewer bytes than a header at the end of
    /// a segment: the reader skips them and goes on with the segments written after it (it stayed in front of them).
    @Test func aTornFrameHeaderAtASegmentsEndDoesNotStopTheReader() async throws {
        let directory = temporaryDirectory()
        do {
            let buffer = try await open(directory)
            buffer.addProducer()
            try await buffer.send(EventChunk(messages(0..<100)))
            buffer.finishProducer()
            await buffer.closeReceiver()
        }
        let path = directory + "/" + segments(directory)[0]
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data([64, 0, 0, 0, 0x12]))  // five bytes of the next frame's header
        handle.closeFile()
        let reopened = try await open(directory)
        reopened.addProducer()
        try await reopened.send(EventChunk(messages(100..<110)))
        reopened.finishProducer()
        let seen = await drain(reopened, count: 110)
        #expect(seen == Array(0..<110))
        #expect(reopened.damagedRecords == 1)
    }

    @Test func fullBufferBlocksTheProducerUntilTheConsumerCatchesUp() async throws {
        let directory = temporaryDirectory()
        let buffer = try await open(directory, maxBytes: 1 << 20)
        buffer.addProducer()
        let producer = Task {
            for start in stride(from: 0, to: 20_000, by: 500) {
                try await buffer.send(EventChunk(messages(start..<(start + 500), size: 200)))
            }
            buffer.finishProducer()
        }
        // 20,000 records of ~240 bytes are ~4.8 MB: more than the 1 MiB bound, so the producer must wait once the
        // buffer is within a chunk (500 records) of its bound, and nothing drains it yet.
        let nearlyFull = (1 << 20) - 240 * 500
        for _ in 0..<2000 where buffer.bytesOnDisk < nearlyFull { try await Task.sleep(for: .milliseconds(5)) }
        #expect(buffer.bytesOnDisk >= nearlyFull)
        #expect(buffer.bytesOnDisk <= (1 << 20) + 200 * 500)
        let seen = await drain(buffer, count: 20_000)
        try await producer.value
        #expect(seen == Array(0..<20_000))
        #expect(buffer.droppedEvents == 0)
    }

    @Test func aProducerBlockedOnAFullBufferHasEverythingWrittenAcknowledgedWhileItWaits() async throws {
        // A long fsync interval: every write before the buffer is full waits for the sync the full buffer makes
        // before blocking. The tokens it releases must report then, not when the cloud makes room (a tail blocked
        // on a full buffer checkpoints what the buffer holds; it did not while the wait kept the released tokens).
        let directory = temporaryDirectory()
        let buffer = try DiskBuffer<Message>(
            configuration: .init(directory: directory, maxBytes: 1 << 20, whenFull: .block, fsyncInterval: .seconds(30), chunkEvents: 100),
            logger: Logger(label: "disk-buffer-test"))
        buffer.addProducer()
        let acknowledged = Atomic<Int>(0)
        let started = Atomic<Int>(0)
        let producer = Task {
            for start in stride(from: 0, to: 20_000, by: 500) {
                let token = Acknowledgement { status in
                    if status == .delivered { acknowledged.add(1, ordering: .relaxed) }
                }
                started.add(1, ordering: .relaxed)
                try await buffer.send(EventChunk(messages(start..<(start + 500), size: 200), acknowledgements: Acknowledgements([token])))
            }
            buffer.finishProducer()
        }
        let nearlyFull = (1 << 20) - 240 * 500
        for _ in 0..<2000 where buffer.bytesOnDisk < nearlyFull { try await Task.sleep(for: .milliseconds(5)) }
        for _ in 0..<2000 where acknowledged.load(ordering: .relaxed) < started.load(ordering: .relaxed) - 1 {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(started.load(ordering: .relaxed) > 1, "the producer is blocked on the full buffer")
        #expect(acknowledged.load(ordering: .relaxed) == started.load(ordering: .relaxed) - 1)
        let seen = await drain(buffer, count: 20_000)
        try await producer.value
        #expect(seen == Array(0..<20_000))
    }

    @Test func writesAreAcknowledgedUpstreamWithinTheFsyncIntervalEvenWhenNothingFollows() async throws {
        let buffer = try await open(temporaryDirectory())
        buffer.addProducer()
        let acknowledged = Atomic<Int>(0)
        // Two writes in quick succession: the first syncs, the second falls inside the interval. No write and
        // no read comes after it (a sink stuck on a dead link), yet its source must hear back.
        for start in [0, 10] {
            let token = Acknowledgement { status in
                if status == .delivered { acknowledged.add(1, ordering: .relaxed) }
            }
            try await buffer.send(EventChunk(messages(start..<(start + 10)), acknowledgements: Acknowledgements([token])))
        }
        for _ in 0..<200 where acknowledged.load(ordering: .relaxed) < 2 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(acknowledged.load(ordering: .relaxed) == 2)
        buffer.finishProducer()
    }

    @Test func aNewConsumerRereadsWhatItsPredecessorLeftUnacknowledged() async throws {
        let buffer = try await open(temporaryDirectory())
        buffer.addProducer()
        try await buffer.send(EventChunk(messages(0..<300)))
        // The first consumer gets two chunks of 100 and delivers only the first, then is replaced.
        do {
            let first = await buffer.next()!
            first.acknowledgements.resolve(.delivered)
        }
        let second = await buffer.next()!
        #expect(second.events.map(number) == Array(100..<200))
        buffer.detachConsumer()
        #expect(await buffer.next() == nil, "a detached consumer reads the end of its input")
        await buffer.attachConsumer()
        #expect(buffer.bufferedEvents == 200)
        buffer.finishProducer()
        let seen = await drain(buffer, count: 300)
        #expect(seen == Array(100..<300), "the unacknowledged chunk comes again, then the rest")
        _ = second
    }

    @Test func dropNewestCountsWhatDoesNotFit() async throws {
        let directory = temporaryDirectory()
        let buffer = try await open(directory, maxBytes: 1 << 20, whenFull: .dropNewest)
        buffer.addProducer()
        for start in stride(from: 0, to: 20_000, by: 500) {
            try await buffer.send(EventChunk(messages(start..<(start + 500), size: 200)))
        }
        buffer.finishProducer()
        let seen = await drain(buffer, count: 20_000)
        #expect(seen.count + buffer.droppedEvents == 20_000)
        #expect(buffer.droppedEvents > 0)
        #expect(seen == Array(0..<seen.count))
    }

    @Test func dropOldestKeepsTheNewestAndCounts() async throws {
        let directory = temporaryDirectory()
        let buffer = try await open(directory, maxBytes: 1 << 20, whenFull: .dropOldest)
        buffer.addProducer()
        for start in stride(from: 0, to: 20_000, by: 500) {
            try await buffer.send(EventChunk(messages(start..<(start + 500), size: 200)))
        }
        buffer.finishProducer()
        let seen = await drain(buffer, count: 20_000)
        #expect(seen.count + buffer.droppedEvents == 20_000)
        #expect(buffer.droppedEvents > 0)
        #expect(seen.last == 19_999)
    }

    @Test func eventsRoundTripThroughTheBinaryEncoding() throws {
        let origin = EventOrigin(sourceID: "tail", location: "/var/log/app.log")
        let raw = RawEvent(bytes: [0, 0xFF, 0x0A, 0x41][...], origin: origin, offset: 1234, timestamp: -5, truncated: true)
        var writer = BinaryWriter()
        raw.encode(to: &writer)
        var reader = BinaryReader(writer.bytes[...])
        let decoded = try RawEvent.decode(from: &reader)
        #expect(Array(decoded.bytes) == [0, 0xFF, 0x0A, 0x41])
        #expect(decoded.offset == 1234 && decoded.timestamp == -5 && decoded.truncated)
        #expect(decoded.origin.location == "/var/log/app.log")

        let fields: Fields = ["t": .double(26.5), "n": .int(-7), "ok": .bool(true), "s": .string("温度"), "a": .array([.null, .object(["x": .int(1)])])]
        let record = Record(fields: fields, origin: nil, timestamp: 42)
        writer = BinaryWriter()
        record.encode(to: &writer)
        reader = BinaryReader(writer.bytes[...])
        #expect(try Record.decode(from: &reader).fields == fields)

        let batch = Message.batch(topic: "/a/b", framing: .jsonArray, parts: [Array("{\"a\":1}".utf8)[...], Array("{\"b\":2}".utf8)[...]])
        writer = BinaryWriter()
        batch.encode(to: &writer)
        reader = BinaryReader(writer.bytes[...])
        let message = try Message.decode(from: &reader)
        #expect(message.body == batch.body && message.parts == batch.parts && message.framing == .jsonArray && message.topic == "/a/b")
        // Truncated input is an error, never a crash.
        for cut in 0..<writer.bytes.count {
            var partial = BinaryReader(writer.bytes[..<cut])
            #expect(throws: BinaryReader.Failure.self) { try Message.decode(from: &partial) }
        }
    }

    @Test func theChecksumIsTheClassicCRC32AtEveryLengthAndAlignment() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([UInt8]()) == 0)
        // Against the bit-at-a-time definition, over every length and start offset of a buffer.
        func reference(_ bytes: ArraySlice<UInt8>) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in bytes {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
            }
            return ~crc
        }
        let bytes = (0..<80).map { UInt8(truncatingIfNeeded: $0 &* 167 &+ 13) }
        for start in 0..<17 {
            for end in start...bytes.count {
                #expect(CRC32.checksum(bytes[start..<end]) == reference(bytes[start..<end]))
            }
        }
        // In pieces, as a slot's header and payload are checksummed.
        #expect(CRC32.update(CRC32.checksum(bytes[..<30]), Array(bytes[30...])) == CRC32.checksum(bytes))
    }

    @Test func batchesSplitIntoValidHalves() {
        let parts = (0..<5).map { Array("{\"n\":\($0)}".utf8)[...] }
        for framing in BatchFraming.allCases {
            let batch = Message.batch(topic: "/t", framing: framing, parts: parts)
            #expect(batch.body.count == Message.batchSize(partBytes: parts.reduce(0) { $0 + $1.count }, partCount: 5, framing: framing))
            let (first, second) = batch.splitInHalves()!
            #expect(first.partRanges.map { String(decoding: first.body[$0], as: UTF8.self) } == ["{\"n\":0}", "{\"n\":1}"])
            #expect(second.partRanges.count == 3)
            if framing == .jsonArray {
                #expect(String(decoding: second.body, as: UTF8.self) == "[{\"n\":2},{\"n\":3},{\"n\":4}]")
            } else {
                #expect(String(decoding: second.body, as: UTF8.self) == "{\"n\":2}\n{\"n\":3}\n{\"n\":4}")
            }
        }
        #expect(Message(topic: nil, body: [1]).splitInHalves() == nil)
    }
}

/// The disk buffer when fsync fails, on a simulated disk that fails on demand and knows what a power cut keeps.
@Suite(.timeLimit(.minutes(1))) struct DiskBufferSyncFailureTests {
    static let directory = "/device/state/cloud/buffer"

    static func open(_ fileSystem: SimulatedFileSystem) async throws -> DiskBuffer<Message> {
        let buffer = try DiskBuffer<Message>(
            configuration: .init(
                directory: directory, maxBytes: 1 << 20, fsyncInterval: .zero, chunkEvents: 100, fileSystem: fileSystem),
            logger: Logger(label: "disk-buffer-test"))
        await buffer.opened()
        return buffer
    }

    /// Every record a buffer recovered from `state` delivers.
    static func recovered(from state: SimulatedFileSystem.Snapshot) async throws -> [Int] {
        let buffer = try await open(SimulatedFileSystem(booting: state))
        var seen: [Int] = []
        while let chunk = await buffer.next() {
            seen += chunk.events.map(number)
            chunk.acknowledgements.resolve(.delivered)
        }
        return seen
    }

    @Test func aFailedFsyncAcknowledgesNothingUntilItsRecordsAreRewrittenDurably() async throws {
        let fileSystem = SimulatedFileSystem()
        let buffer = try await Self.open(fileSystem)
        let metrics = ComponentMetrics()
        buffer.reportFailures(to: metrics)
        // The segment's fsync fails, and so does the first rewrite's.
        fileSystem.failSyncs(times: 2) { $0.hasSuffix(".dat") }
        let upstream = Atomic<Int>(0)
        // Inline: an acknowledgement reports when its last holder lets go.
        try await buffer.send(
            EventChunk(
                messages(0..<10),
                acknowledgements: Acknowledgements([
                    Acknowledgement { status in if status == .delivered { upstream.add(10, ordering: .relaxed) } }
                ])))

        #expect(upstream.load(ordering: .relaxed) == 0, "nothing a failed fsync covered is acknowledged")
        #expect(metrics.errors.load(ordering: .relaxed) == 2, "each failure counts as an error")
        #expect(metrics.report().failure?.reason.contains("cannot fsync buffer segment") == true)
        #expect(metrics.report().samples.contains { $0.name == "uplink_buffer_sync_failures_total" })
        // A power cut now keeps nothing of them: the failed fsync made nothing durable.
        for state in fileSystem.crashStates(tornWrites: false).prefix(1) {
            #expect(try await Self.recovered(from: state).isEmpty)
        }

        // The next sync rewrites them into a fresh segment; only then are they acknowledged, and durable.
        await buffer.flush()
        #expect(upstream.load(ordering: .relaxed) == 10)
        #expect(metrics.report().failure == nil)
        for state in fileSystem.crashStates() {
            #expect(Set(try await Self.recovered(from: state)).isSuperset(of: 0..<10))
        }
        // The reader sees each record once.
        var seen: [Int] = []
        while let chunk = await buffer.next() { seen += chunk.events.map(number) }
        #expect(seen == Array(0..<10))
    }

    @Test func aFailedFsyncIsRetriedWhenNothingIsWrittenOrReadAfterIt() async throws {
        let fileSystem = SimulatedFileSystem()
        let buffer = try DiskBuffer<Message>(
            configuration: .init(
                directory: Self.directory, maxBytes: 1 << 20, fsyncInterval: .zero, chunkEvents: 100, fileSystem: fileSystem,
                retryDelay: .milliseconds(20)),
            logger: Logger(label: "disk-buffer-test"))
        fileSystem.failSyncs(times: 2) { $0.hasSuffix(".dat") }
        let upstream = Atomic<Int>(0)
        // The last chunk before the input ends: its sync and the first rewrite fail, and nothing follows.
        try await buffer.send(
            EventChunk(
                messages(0..<10),
                acknowledgements: Acknowledgements([
                    Acknowledgement { status in if status == .delivered { upstream.add(10, ordering: .relaxed) } }
                ])))
        #expect(upstream.load(ordering: .relaxed) == 0)
        // The buffer retries on its own (every 20 ms here): bounded wait for the acknowledgement.
        for _ in 0..<500 where upstream.load(ordering: .relaxed) == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(upstream.load(ordering: .relaxed) == 10, "the rewrite was retried and acknowledged")
        for state in fileSystem.crashStates() {
            #expect(Set(try await Self.recovered(from: state)).isSuperset(of: 0..<10))
        }
    }

    @Test func writersWaitWhileRecordsAwaitTheirRewrite() async throws {
        let fileSystem = SimulatedFileSystem()
        let buffer = try await Self.open(fileSystem)
        fileSystem.failSyncs(times: 2) { $0.hasSuffix(".dat") }
        try await buffer.send(EventChunk(messages(0..<10)))
        // The next chunk must not go before the ten that are not durable yet: the rewrite comes first (it now
        // succeeds), then the chunk lands after them.
        try await buffer.send(EventChunk(messages(10..<20)))
        var seen: [Int] = []
        while let chunk = await buffer.next() { seen += chunk.events.map(number) }
        #expect(seen == Array(0..<20))
        #expect(fileSystem.syncCounts.failed == 2)
    }

    @Test func aNewSegmentsNameIsDurableBeforeItsRecordsAreAcknowledged() async throws {
        let fileSystem = SimulatedFileSystem()
        let buffer = try await Self.open(fileSystem)
        let upstream = Atomic<Int>(0)
        try await buffer.send(
            EventChunk(
                messages(0..<5),
                acknowledgements: Acknowledgements([
                    Acknowledgement { status in if status == .delivered { upstream.add(5, ordering: .relaxed) } }
                ])))
        #expect(upstream.load(ordering: .relaxed) == 5)
        // Only what is durable for sure, with no unsynced operation replayed: the records are there.
        let durable = fileSystem.crashStates(tornWrites: false)[0]
        #expect(try await Self.recovered(from: durable) == Array(0..<5))
    }
}

/// The real disk (or `disk`), with the calls in `held` (fdatasyncs, directory listings) waiting while the disk is
/// held: a sync or a scan that takes as long as the test wants. Held from the start unless `holding` is false.
private final class GatedSyncFileSystem: FileSystem, @unchecked Sendable {
    // @unchecked: the semaphores are thread-safe and set once; `gate` is under its lock.
    enum Call { case fdatasync, list }

    private let disk: any FileSystem
    private let held: Set<Call>
    /// Signalled by each held call as it starts waiting.
    let entered = DispatchSemaphore(value: 0)
    private let gate: Mutex<DispatchSemaphore?>

    init(holding: Bool = true, held: Set<Call> = [.fdatasync], disk: any FileSystem = PosixFileSystem()) {
        self.disk = disk
        self.held = held
        gate = Mutex(holding ? DispatchSemaphore(value: 0) : nil)
    }

    /// Lets every held call, waiting or to come, through.
    func open() {
        let waiting = gate.withLock { gate in
            defer { gate = nil }
            return gate
        }
        waiting?.signal()
    }

    /// Holds the calls from now on (none may be waiting).
    func hold() {
        gate.withLock { $0 = DispatchSemaphore(value: 0) }
    }

    private func pass(_ call: Call) {
        guard held.contains(call), let waiting = gate.withLock({ $0 }) else { return }
        entered.signal()
        waiting.wait()
        waiting.signal()
    }

    func fdatasync(_ fd: Int32) -> Int32 {
        pass(.fdatasync)
        return disk.fdatasync(fd)
    }

    func list(_ directory: String) -> Result<[String], FileSystemFailure> {
        pass(.list)
        return disk.list(directory)
    }

    func open(_ path: String, flags: Int32, mode: mode_t) -> Int32 { disk.open(path, flags: flags, mode: mode) }
    @discardableResult func close(_ fd: Int32) -> Int32 { disk.close(fd) }
    func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int { disk.write(fd, bytes) }
    func pwrite(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int { disk.pwrite(fd, bytes, at: offset) }
    func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Int { disk.read(fd, into: buffer) }
    func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Int { disk.pread(fd, into: buffer, at: offset) }
    func fsync(_ fd: Int32) -> Int32 { disk.fsync(fd) }
    func truncate(_ fd: Int32, to length: Int) -> Int32 { disk.truncate(fd, to: length) }
    func size(_ fd: Int32) -> Int { disk.size(fd) }
    func setMode(_ fd: Int32, _ mode: mode_t) -> Int32 { disk.setMode(fd, mode) }
    func rename(_ from: String, to: String) -> Int32 { disk.rename(from, to: to) }
    func unlink(_ path: String) -> Int32 { disk.unlink(path) }
    func makeDirectory(_ path: String, mode: mode_t) -> Int32 { disk.makeDirectory(path, mode: mode) }
    func syncDirectory(_ path: String) -> Int32 { disk.syncDirectory(path) }
}

@Suite(.timeLimit(.minutes(1))) struct DiskBufferSlowDiskTests {
    @Test func theBuffersCountersAreReadWithoutWaitingForAnFsync() async throws {
        let fileSystem = GatedSyncFileSystem()
        let buffer = try DiskBuffer<Message>(
            configuration: .init(directory: temporaryDirectory(), fsyncInterval: .zero, chunkEvents: 100, fileSystem: fileSystem),
            logger: Logger(label: "disk-buffer-test"))
        let writer = Task { try await buffer.send(EventChunk(messages(0..<10))) }
        // The buffer's thread is now inside the segment's fdatasync (a slow card).
        #expect(fileSystem.entered.wait(timeout: .now() + 10) == .success)
        // Metrics, /health and the status read the counters meanwhile: from another thread, bounded.
        let answered = DispatchSemaphore(value: 0)
        let events = Atomic<Int>(-1)
        Thread {
            events.store(buffer.bufferedEvents, ordering: .sequentiallyConsistent)
            answered.signal()
        }.start()
        let prompt = answered.wait(timeout: .now() + 2) == .success
        fileSystem.open()
        try await writer.value
        if !prompt { answered.wait() }
        #expect(prompt, "a counter read waited for the fsync")
        // The counters as of the step before the one under way.
        #expect(events.load(ordering: .sequentiallyConsistent) == 0)
        #expect(buffer.bufferedEvents == 10)
    }
}

/// The buffer's cold paths on a slow disk: they suspend their caller, never block a cooperative-pool thread.
@Suite(.serialized, .timeLimit(.minutes(1))) struct DiskBufferColdPathTests {
    enum Step: CaseIterable { case open, flush, close }

    /// More buffers than the pool has threads each start `step` on a disk that holds it. If the step blocked its
    /// caller's thread, every pool thread would wait on the disk and a task started meanwhile could not run until
    /// the disk lets go (the watchdog does, after 5 s, and reports whether the task ran before).
    @Test(arguments: Step.allCases) func aSlowDiskHoldsNoPoolThreadWhileTheBuffer(_ step: Step) async throws {
        let count = ProcessInfo.processInfo.activeProcessorCount + 2
        let fileSystem = GatedSyncFileSystem(holding: false, held: [.fdatasync, .list])
        let configuration = DiskBuffer<Message>.Configuration(
            directory: temporaryDirectory(), fsyncInterval: .seconds(3600), chunkEvents: 100, fileSystem: fileSystem)
        let logger = Logger(label: "disk-buffer-test")
        var written: [DiskBuffer<Message>] = []
        if step != .open {
            for index in 0..<count {
                var own = configuration
                own.directory += "/\(index)"
                let buffer = try DiskBuffer<Message>(configuration: own, logger: logger)
                buffer.addProducer()
                // Written, not yet synced (the interval is an hour): the flush or close syncs it.
                try await buffer.send(EventChunk(messages(0..<10)))
                written.append(buffer)
            }
        }
        let buffers = written
        fileSystem.hold()
        let tasks = (0..<count).map { index in
            Task {
                switch step {
                case .open:
                    var own = configuration
                    own.directory += "/\(index)"
                    let buffer = try DiskBuffer<Message>(configuration: own, logger: logger)
                    await buffer.opened()
                    return buffer.bufferedEvents
                case .flush:
                    await buffers[index].flush()
                    return buffers[index].bufferedEvents
                case .close:
                    await buffers[index].closeReceiver()
                    return buffers[index].bufferedEvents
                }
            }
        }
        // A thread of its own waits for every buffer's thread to be inside the held call (bounded: one that never
        // arrives fails the test), starts the probe and lets the disk go after it ran, or after 5 s: this test's own
        // task never blocks a pool thread.
        let arrivals = Atomic<Int>(0)
        let prompt = Atomic<Bool>(false)
        let watchdog = Thread {
            while arrivals.load(ordering: .sequentiallyConsistent) < count, fileSystem.entered.wait(timeout: .now() + 10) == .success {
                arrivals.add(1, ordering: .sequentiallyConsistent)
            }
            let ran = DispatchSemaphore(value: 0)
            Task { ran.signal() }
            prompt.store(ran.wait(timeout: .now() + 5) == .success, ordering: .sequentiallyConsistent)
            fileSystem.open()
        }
        watchdog.start()
        for task in tasks { #expect(try await task.value == (step == .open ? 0 : 10)) }
        #expect(arrivals.load(ordering: .sequentiallyConsistent) == count)
        let ranWhileHeld = prompt.load(ordering: .sequentiallyConsistent)
        #expect(ranWhileHeld, "a task waited for the disk to \(step) the buffers")
    }

    /// A reload detaches the consumer (and counts producers) from a pool thread while the buffer's thread may be
    /// inside a slow fsync: neither waits for it.
    @Test func detachingTheConsumerDoesNotWaitForAnFsyncUnderWay() async throws {
        let fileSystem = GatedSyncFileSystem(holding: false)
        let buffer = try DiskBuffer<Message>(
            configuration: .init(
                directory: temporaryDirectory(), fsyncInterval: .seconds(3600), chunkEvents: 100, fileSystem: fileSystem),
            logger: Logger(label: "disk-buffer-test"))
        buffer.addProducer()
        try await buffer.send(EventChunk(messages(0..<10)))
        fileSystem.hold()
        let flushing = Task { await buffer.flush() }
        let prompt = Atomic<Bool>(false)
        let detached = Atomic<Bool>(false)
        Thread {
            // The buffer's thread is inside the flush's fdatasync (bounded), then another thread detaches.
            guard fileSystem.entered.wait(timeout: .now() + 10) == .success else { return fileSystem.open() }
            let done = DispatchSemaphore(value: 0)
            Thread {
                buffer.detachConsumer()
                buffer.addProducer()
                detached.store(buffer.isConsumerDetached, ordering: .sequentiallyConsistent)
                done.signal()
            }.start()
            prompt.store(done.wait(timeout: .now() + 5) == .success, ordering: .sequentiallyConsistent)
            fileSystem.open()
        }.start()
        await flushing.value
        let answeredWhileHeld = prompt.load(ordering: .sequentiallyConsistent)
        #expect(answeredWhileHeld, "detaching the consumer waited for the fsync")
        let isDetached = detached.load(ordering: .sequentiallyConsistent)
        #expect(isDetached)
        #expect(await buffer.next() == nil)
    }
}

/// The group commit: segments are fdatasynced on the buffer's sync thread while its own thread goes on writing and
/// reading; the acknowledgements a sync covers are released when it completes, never before.
@Suite(.timeLimit(.minutes(1))) struct DiskBufferGroupCommitTests {
    static let directory = "/device/state/cloud/buffer"

    /// A buffer on a simulated disk whose fdatasyncs wait while `gate` holds them; 4 KiB segments, so that the
    /// second chunk below rolls over, and an interval that is up at once.
    fileprivate static func open(_ gate: GatedSyncFileSystem) async throws -> DiskBuffer<Message> {
        let buffer = try DiskBuffer<Message>(
            configuration: .init(
                directory: directory, maxBytes: 1 << 20, fsyncInterval: .milliseconds(1), chunkEvents: 100,
                fileSystem: gate, retryDelay: .milliseconds(10), segmentBytes: 4096),
            logger: Logger(label: "disk-buffer-test"))
        await buffer.opened()
        return buffer
    }

    /// Waits (bounded) for `semaphore` on a thread of its own: blocking a cooperative-pool thread would starve the
    /// tasks the buffer needs (a deferred sync) and the suites running beside this one.
    static func signalled(_ semaphore: DispatchSemaphore, within seconds: Int = 10) async -> Bool {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: semaphore.wait(timeout: .now() + .seconds(seconds)) == .success) }.start()
        }
    }

    static func counted(_ range: Range<Int>, into upstream: Shared<Int>) -> EventChunk<Message> {
        EventChunk(
            messages(range, size: 256),
            acknowledgements: Acknowledgements([
                Acknowledgement { status in if status == .delivered { upstream.withLock { $0 += range.count } } }
            ]))
    }

    /// While the sync thread is inside a slow fdatasync, another chunk is written (across a segment roll) and the
    /// consumer reads both; nothing is acknowledged meanwhile, and a power cut then recovers without fault. Once
    /// the disk lets go, everything is acknowledged and survives every crash state. (Before the group commit, the
    /// second send and the reads waited for the sync.)
    @Test func writesAndReadsGoOnWhileASyncIsUnderWayAndNothingUncoveredIsAcknowledged() async throws {
        let disk = SimulatedFileSystem()
        let gate = GatedSyncFileSystem(disk: disk)
        let buffer = try await Self.open(gate)
        buffer.addProducer()
        let upstream = Shared(0)
        // A thread of its own waits (bounded) for the sync thread to be inside the held fdatasync and then for the
        // writes and reads below, notes what was acknowledged and what a power cut would keep while the sync is
        // still under way, and lets the disk go (so a buffer that waits for the sync fails here, not hangs).
        let finished = DispatchSemaphore(value: 0)
        let reported = DispatchSemaphore(value: 0)
        let whileHeld = Mutex<(entered: Bool, prompt: Bool, acknowledged: Int, states: [SimulatedFileSystem.Snapshot])>(
            (false, false, -1, []))
        Thread {
            let entered = gate.entered.wait(timeout: .now() + 10) == .success
            let prompt = finished.wait(timeout: .now() + 5) == .success
            let acknowledged = upstream.value
            let states = disk.crashStates()
            whileHeld.withLock { $0 = (entered, prompt, acknowledged, states) }
            gate.open()
            reported.signal()
        }.start()
        // The interval (1 ms) is up at this write or at the deferred sync after it: a job starts and waits inside
        // its fdatasync, while another chunk is written (across a roll) and the consumer reads both.
        let during = Task { () -> [Int] in
            defer { finished.signal() }
            try await buffer.send(Self.counted(0..<10, into: upstream))
            try await buffer.send(Self.counted(10..<20, into: upstream))
            var seen: [Int] = []
            while seen.count < 20, let chunk = await buffer.next() { seen += chunk.events.map(number) }
            return seen
        }
        let seen = try await during.value
        #expect(await Self.signalled(reported))
        let held = whileHeld.withLock { $0 }
        #expect(held.entered)
        #expect(held.prompt, "a write or a read waited for the fdatasync under way")
        #expect(held.acknowledged == 0, "acknowledged before the sync covering it completed")
        #expect(seen == Array(0..<20))
        for state in held.states {
            let recovered = try await DiskBufferSyncFailureTests.recovered(from: state)
            #expect(recovered == recovered.sorted() && Set(recovered).isSubset(of: 0..<20))
        }
        // The flush applies the job under way, then syncs the rest: everything is acknowledged, and durable.
        await buffer.flush()
        #expect(upstream.value == 20)
        for state in disk.crashStates() {
            #expect(Set(try await DiskBufferSyncFailureTests.recovered(from: state)).isSuperset(of: 0..<20))
        }
    }

    /// The sync thread's fdatasync of the segment it covers fails after a second chunk sealed it and went on in the
    /// next one: nothing is acknowledged, what no sync covered in both segments is rewritten, in order, into a
    /// fresh one, and only then are both chunks acknowledged; the failure is counted and the reader sees each
    /// record once.
    @Test func aFailedSyncOnTheSyncThreadRewritesEverythingItAndLaterWritesLeftUnsynced() async throws {
        let disk = SimulatedFileSystem()
        let gate = GatedSyncFileSystem(disk: disk)
        let buffer = try await Self.open(gate)
        let metrics = ComponentMetrics()
        buffer.reportFailures(to: metrics)
        buffer.addProducer()
        let upstream = Shared(0)
        try await buffer.send(Self.counted(0..<10, into: upstream))
        #expect(await Self.signalled(gate.entered))
        // The job's fdatasync fails once the disk lets it go.
        disk.failSyncs(times: 1) { $0.hasSuffix(".dat") }
        try await buffer.send(Self.counted(10..<20, into: upstream))
        #expect(upstream.value == 0)
        gate.open()
        await buffer.flush()
        #expect(upstream.value == 20)
        #expect(disk.syncCounts.failed == 1)
        #expect(metrics.errors.load(ordering: .relaxed) == 1)
        #expect(metrics.report().failure == nil, "durable again after the rewrite")
        for state in disk.crashStates() {
            #expect(Set(try await DiskBufferSyncFailureTests.recovered(from: state)).isSuperset(of: 0..<20))
        }
        buffer.finishProducer()
        var seen: [Int] = []
        while let chunk = await buffer.next() { seen += chunk.events.map(number) }
        #expect(seen == Array(0..<20))
    }
}
