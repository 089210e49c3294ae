import Foundation
import Testing
import UplinkCore
import UplinkTestSupport

@Suite struct TransformBase64Tests {
    @Test(arguments: [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ])
    func rfc4648Vectors(_ input: String, _ expected: String) {
        #expect(Base64.encode(Array(input.utf8)) == expected)
    }

    @Test func matchesFoundationOnRandomBytes() {
        var generator = SeededGenerator(seed: 64)
        for length in 0..<300 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(Base64.encode(bytes) == Data(bytes).base64EncodedString(), "length \(length)")
            #expect(Base64.encodedCount(length) == Base64.encode(bytes).utf8.count)
        }
    }

    @Test func appendsToAnExistingBufferAndTakesSlices() {
        var buffer = Array("x=".utf8)
        let bytes: [UInt8] = [0, 1, 2, 253, 254, 255]
        Base64.encode(bytes[1...], to: &buffer)
        #expect(String(decoding: buffer, as: UTF8.self) == "x=" + Data(bytes[1...]).base64EncodedString())
    }
}

@Suite struct TransformDeadLetterFileTests {
    @Test func writesOneJSONLinePerDeadLetterWithMode0600InNewDirectories() throws {
        let directory = try temporaryDirectory()
        let path = directory + "/a/b/dead-letters.jsonl"
        let file = DeadLetterFile(path: path)
        #expect(!FileManager.default.fileExists(atPath: path), "nothing is created before the first write")
        let payload: [UInt8] = [0x7B, 0x00, 0xFF, 0x0A, 0x22]
        let before = currentTimeMillis()
        try file.write(component: "batch", topic: "/P/D/upload", reason: "too \"big\"\n", retCode: 230, payload: payload)
        try file.write(component: "wrap", topic: nil, reason: "bad", retCode: nil, payload: [UInt8]())
        file.close()

        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let directoryAttributes = try FileManager.default.attributesOfItem(atPath: directory + "/a/b")
        #expect((directoryAttributes[.posixPermissions] as? Int) == 0o700)

        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 3 && lines[2].isEmpty, "two lines, each ending in a newline")
        #expect(lines[0].hasPrefix(#"{"time":"#))
        #expect(lines[0].hasSuffix(#","component":"batch","topic":"/P/D/upload","reason":"too \"big\"\n","retcode":230,"payload_base64":"ewD/CiI="}"#))
        #expect(lines[1].hasSuffix(#","component":"wrap","topic":null,"reason":"bad","retcode":null,"payload_base64":""}"#))

        let objects = try jsonLines(path)
        let time = try #require(objects[0]["time"] as? Int64)
        #expect(time >= before && time <= currentTimeMillis())
        let encoded = try #require(objects[0]["payload_base64"] as? String)
        let decoded = try #require(Data(base64Encoded: encoded))
        #expect(Array(decoded) == payload)
    }

    @Test func rotatesAtMaxBytesKeepingTheNewestFiles() throws {
        let path = try temporaryDirectory() + "/dl.jsonl"
        let file = DeadLetterFile(path: path, maxBytes: 400, keep: 2)
        let payload = [UInt8](repeating: 0x61, count: 120)  // one line is about 270 bytes: one line per file
        for index in 0..<5 {
            try file.write(component: "c\(index)", topic: nil, reason: "r", retCode: nil, payload: payload)
        }
        file.close()
        func component(_ suffix: String) throws -> [String] {
            try jsonLines(path + suffix).map { $0["component"] as? String ?? "?" }
        }
        #expect(try component("") == ["c4"])
        #expect(try component(".1") == ["c3"])
        #expect(try component(".2") == ["c2"])
        #expect(!FileManager.default.fileExists(atPath: path + ".3"), "only `keep` rotated files are kept")
        for suffix in ["", ".1", ".2"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: path + suffix)
            #expect((attributes[.posixPermissions] as? Int) == 0o600)
            #expect((attributes[.size] as? Int ?? 0) <= 400)
        }
    }

    @Test func severalSmallLinesShareAFileUntilTheCapAndKeepZeroTruncates() throws {
        let path = try temporaryDirectory() + "/dl.jsonl"
        let file = DeadLetterFile(path: path, maxBytes: 1000, keep: 0)
        for index in 0..<20 {
            try file.write(component: "c\(index)", topic: "t", reason: "r", retCode: 100076, payload: [1, 2, 3])
        }
        file.close()
        let kept = try jsonLines(path)
        #expect(kept.count > 1 && kept.count < 20)
        #expect(kept.last?["component"] as? String == "c19")
        #expect(kept.last?["retcode"] as? Int == 100076)
        #expect(!FileManager.default.fileExists(atPath: path + ".1"))
    }

    @Test func aLineLargerThanTheCapIsStillWritten() throws {
        let path = try temporaryDirectory() + "/dl.jsonl"
        let file = DeadLetterFile(path: path, maxBytes: 100, keep: 1)
        try file.write(component: "c", topic: nil, reason: "huge", retCode: nil, payload: [UInt8](repeating: 1, count: 500))
        file.close()
        #expect(try jsonLines(path).count == 1)
    }

    @Test func concurrentWritersNeverInterleaveLines() async throws {
        let path = try temporaryDirectory() + "/dl.jsonl"
        let file = DeadLetterFile(path: path, maxBytes: 1 << 20, keep: 1)
        await withTaskGroup(of: Void.self) { group in
            for writer in 0..<4 {
                group.addTask {
                    for index in 0..<50 {
                        try? file.write(component: "w\(writer)", topic: nil, reason: "\(index)", retCode: nil, payload: [UInt8](repeating: 7, count: 300))
                    }
                }
            }
        }
        file.close()
        #expect(try jsonLines(path).count == 200)
    }

    @Test func anUnwritableLocationThrowsInsteadOfCrashing() {
        let file = DeadLetterFile(path: "/proc/uplink-cannot-write/dl.jsonl")
        #expect(throws: FileIO.Failure.self) {
            try file.write(component: "c", topic: nil, reason: "r", retCode: nil, payload: [UInt8]())
        }
    }
}

@Suite struct TransformPersistentCounterTests {
    @Test func valuesIncreaseAndARestartNeverReusesOne() throws {
        let path = try temporaryDirectory() + "/request-id"
        var counter = try PersistentCounter(path: path, blockSize: 10)
        let first = try (0..<25).map { _ in try counter.next() }
        #expect(first == Array(1...25))
        // Write-ahead: the block holding 21...25 was reserved up to 31 before 21 was handed out.
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "31\n")
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)

        // A crash here loses the unused rest of the block, never reuses a value.
        var restarted = try PersistentCounter(path: path, blockSize: 10)
        let next = try restarted.next()
        #expect(next == 31)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "41\n")
    }

    @Test func blocksDoubleUpToTheMaximumSoFastProducersRarelyWrite() throws {
        let path = try temporaryDirectory() + "/request-id"
        var counter = try PersistentCounter(path: path, blockSize: 10, maxBlockSize: 40)
        var reservations: [String] = []
        for _ in 0..<150 {
            let before = try? String(contentsOfFile: path, encoding: .utf8)
            _ = try counter.next()
            let after = try String(contentsOfFile: path, encoding: .utf8)
            if after != before { reservations.append(after) }
        }
        // Blocks of 10, 20, 40, 40, 40: [1,11) [11,31) [31,71) [71,111) [111,151).
        #expect(reservations == ["11\n", "31\n", "71\n", "111\n", "151\n"])
    }

    @Test func aCorruptCounterFileIsAnErrorNotAGuess() throws {
        let path = try temporaryDirectory() + "/request-id"
        try "garbage".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: FileIO.Failure.self) { try PersistentCounter(path: path) }
    }
}

@Suite struct TransformInboxDeadlineTests {
    private func makeInbox() -> (EventChannel<RawEvent>, Inbox<RawEvent>) {
        let channel = EventChannel<RawEvent>(capacity: 16)
        channel.addProducer()
        return (channel, Inbox(channel: channel, metrics: ComponentMetrics()))
    }

    @Test(.timeLimit(.minutes(1))) func timesOutWhileTheInputIsIdleAndStillDeliversLater() async throws {
        let (channel, inbox) = makeInbox()
        let poll = await inbox.next(until: .now + .milliseconds(20))
        guard case .timedOut = poll else {
            Issue.record("expected a timeout, got \(poll)")
            return
        }
        try await channel.send(EventChunk(rawEvents(["late"])))
        guard case .chunk(let chunk) = await inbox.next(until: .now + .seconds(30)) else {
            Issue.record("the chunk sent after the timeout was lost")
            return
        }
        #expect(chunk.count == 1)
        channel.finishProducer()
        guard case .ended = await inbox.next(until: .now + .seconds(30)) else {
            Issue.record("expected the end of input")
            return
        }
    }

    /// Chunks that are ready (buffered, or held by producers waiting for room) are read without waiting, in
    /// order, even past the deadline; the waiting producers are let in as the buffer drains; then the idle input
    /// times out and its end is seen.
    @Test(.timeLimit(.minutes(1))) func readyChunksAreReadInOrderWithoutWaitingThenTheInputTimesOut() async throws {
        let channel = EventChannel<RawEvent>(capacity: 2)
        channel.addProducer()
        let inbox = Inbox(channel: channel, metrics: ComponentMetrics())
        #expect(channel.nextIfReady() == nil, "nothing is ready in an empty channel")
        let producer = Task {
            for index in 0..<6 { try await channel.send(EventChunk(rawEvents(["\(index)"]))) }
        }
        var texts: [String] = []
        while texts.count < 6 {
            switch await inbox.next(until: .now - .seconds(1)) {
            case .chunk(let chunk): texts += chunk.events.map { String(decoding: $0.bytes, as: UTF8.self) }
            case .timedOut: await Task.yield()
            case .ended: Issue.record("the input has not ended")
            }
        }
        try await producer.value
        #expect(texts == ["0", "1", "2", "3", "4", "5"])
        #expect(channel.nextIfReady() == nil)
        guard case .timedOut = await inbox.next(until: .now + .milliseconds(10)) else {
            Issue.record("an idle input must time out")
            return
        }
        channel.finishProducer()
        guard case .ended = await inbox.next(until: .now + .seconds(30)) else {
            Issue.record("expected the end of input")
            return
        }
    }

    /// A detached consumer reads nothing ready (its reads end, as ``EventChannel/next()``'s do); the chunk stays
    /// for its successor.
    @Test func aDetachedConsumerFindsNothingReady() async throws {
        let (channel, inbox) = makeInbox()
        try await channel.send(EventChunk(rawEvents(["kept"])))
        channel.detachConsumer()
        #expect(channel.nextIfReady() == nil)
        guard case .ended = await inbox.next(until: .now + .seconds(30)) else {
            Issue.record("a detached consumer's read ends")
            return
        }
        channel.attachConsumer()
        #expect(channel.nextIfReady()?.count == 1)
    }

    @Test(.timeLimit(.minutes(1))) func aBufferedChunkWinsOverAPastDeadline() async throws {
        let (channel, inbox) = makeInbox()
        try await channel.send(EventChunk(rawEvents(["a", "b"])))
        // The deadline has passed, but a chunk is ready: either answer is allowed, and the chunk is never lost.
        var received = 0
        for _ in 0..<2 {
            if case .chunk(let chunk) = await inbox.next(until: .now - .seconds(1)) { received += chunk.count }
        }
        #expect(received == 2)
    }
}
