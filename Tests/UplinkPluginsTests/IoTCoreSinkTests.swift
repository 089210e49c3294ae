import Foundation
import IoTCoreEmulator
import Logging
import Synchronization
import Testing
import UplinkCore
import UplinkPlugins
import UplinkTestSupport

/// Emits `count` messages over `topics` (round robin), each `body_bytes` long, or batches of `parts` parts,
/// tracking how many records were acknowledged as delivered.
struct MessageSource: SourceStage {
    typealias Output = Message
    let count: Int
    let topics: [String]
    let bodyBytes: Int
    let parts: Int
    let acked: Acked

    final class Acked: Sendable {
        let delivered = Atomic<Int>(0)
        let other = Atomic<Int>(0)
    }

    static func body(_ index: Int, bytes: Int) -> [UInt8] {
        let prefix = Array("{\"n\":\(index),\"pad\":\"".utf8)
        let padding = max(0, bytes - prefix.count - 2)
        return prefix + [UInt8](repeating: UInt8(ascii: "x"), count: padding) + Array("\"}".utf8)
    }

    func run(context: ComponentContext, output: Outbox<Message>) async throws {
        var index = 0
        while index < count {
            var chunk: [Message] = []
            var records = 0
            for _ in 0..<10 where index < count {
                let topic = topics[index % topics.count]
                if parts > 1 {
                    let group = (index..<min(count, index + parts)).map { Self.body($0, bytes: bodyBytes)[...] }
                    chunk.append(Message.batch(topic: topic, framing: .ndjson, parts: group))
                    index += group.count
                    records += group.count
                } else {
                    chunk.append(Message(topic: topic, body: Self.body(index, bytes: bodyBytes)))
                    index += 1
                    records += 1
                }
            }
            let counted = records
            let acked = self.acked
            let token = Acknowledgement { status in
                if status == .delivered { acked.delivered.add(counted, ordering: .relaxed) } else { acked.other.add(counted, ordering: .relaxed) }
            }
            try await output.send(chunk, acknowledgements: Acknowledgements([token]))
        }
    }
}

/// A running emulator on 127.0.0.1 with TLS and a CA file for the sink.
struct EmulatorFixture {
    let emulator: IoTCoreEmulator
    let task: Task<Void, any Error>
    let port: Int
    let caFile: String
    let directory: String

    static let productSN = "abcdefgh12345678"
    static let deviceSN = "device001"
    static let secret = "s3cr3tKey0000000"

    static func start(maxBodyBytes: Int = 131_072, faults: EmulatorFaults = EmulatorFaults()) async throws -> EmulatorFixture {
        let directory = NSTemporaryDirectory() + "uplink-sink-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let emulator = try IoTCoreEmulator(
            configuration: EmulatorConfiguration(
                tls: .selfSigned(caCertificateOutput: directory + "/ca.pem"),
                devices: [EmulatorDevice(productSN: productSN, deviceSN: deviceSN, secret: secret)],
                faults: faults, maxBodyBytes: maxBodyBytes),
            logger: Logger(label: "emulator"))
        let task = Task { try await emulator.run() }
        let port = try await emulator.waitUntilReady()
        return EmulatorFixture(emulator: emulator, task: task, port: port, caFile: directory + "/ca.pem", directory: directory)
    }

    func stop() async {
        await emulator.shutdownGracefully()
        _ = try? await task.value
    }

    /// A pipeline: the message source into an iotcore_http sink pointed at this emulator.
    func pipeline(
        source: String, sinkExtra: String = "", secret: String = EmulatorFixture.secret, shutdownTimeout: String = "20s"
    ) throws -> (Pipeline, MessageSource.Acked) {
        let acked = MessageSource.Acked()
        var registry = Builtins.registry
        registry.register(
            PluginDescriptor(
                type: "messages", role: .source, summary: "test",
                options: [
                    OptionSpec("count", .int, ""), OptionSpec("topics", .stringList, ""),
                    OptionSpec("body_bytes", .int, ""), OptionSpec("parts", .int, ""),
                ],
                output: .kind(.message)
            ) { context in
                .source(
                    MessageSource(
                        count: context.config.int("count", default: 100),
                        topics: context.config.stringList("topics") ?? ["/\(EmulatorFixture.productSN)/\(EmulatorFixture.deviceSN)/upload"],
                        bodyBytes: context.config.int("body_bytes", default: 40), parts: context.config.int("parts", default: 1),
                        acked: acked))
            })
        let yaml = """
            data_dir: \(directory)/state
            shutdown_timeout: \(shutdownTimeout)
            sources:
              in: { type: messages, \(source) }
            sinks:
              cloud:
                type: iotcore_http
                inputs: [in]
                endpoint: https://127.0.0.1:\(port)
                ca_file: \(caFile)
                product_sn: \(EmulatorFixture.productSN)
                device_sn: \(EmulatorFixture.deviceSN)
                device_secret: \(secret)
                retry: { initial_backoff: 5ms, max_backoff: 50ms, credential_backoff: 1s }
            \(sinkExtra)
            """
        let diagnostics = DiagnosticCollector()
        var config = PipelineConfig(files: ["sink-test.yaml"])
        ConfigLoader(environment: [:]).load(bytes: Array(yaml.utf8), file: "sink-test.yaml", into: &config, diagnostics: diagnostics)
        guard let topology = TopologyBuilder(registry: registry).build(config, diagnostics: diagnostics) else {
            throw ConfigError(diagnostics.diagnostics)
        }
        return (try Pipeline(topology: topology, logger: Logger(label: "test")), acked)
    }

    func deadLetters() -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: directory + "/state/cloud/dead-letters.jsonl", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// The `n` of every record the emulator accepted (batches are split into their lines), in the order it
    /// accepted them; only those on `topic` when given.
    func receivedNumbers(topic: String? = nil) -> [Int] {
        emulator.acceptedMessages().filter { topic == nil || $0.topic == topic }.flatMap { message in
            String(decoding: message.body, as: UTF8.self).split(separator: "\n").compactMap { line -> Int? in
                let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                return object?["n"] as? Int
            }
        }
    }
}

@Suite(.serialized, .timeLimit(.minutes(2))) struct IoTCoreSinkTests {
    @Test func everyMessageArrivesOnceOverTLS() async throws {
        let fixture = try await EmulatorFixture.start()
        let (pipeline, acked) = try fixture.pipeline(source: "count: 1000")
        try await pipeline.run()
        let received = fixture.receivedNumbers()
        await fixture.stop()
        #expect(received.count == 1000)
        #expect(Set(received) == Set(0..<1000))
        #expect(acked.delivered.load(ordering: .relaxed) == 1000)
        #expect(pipeline.metrics["cloud"]?.snapshot.sentEvents == 1000)
        print("sink: sent 1000, received \(received.count), distinct \(Set(received).count), lost \(1000 - Set(received).count)")
    }

    @Test func transientAnswersAreRetriedWithNothingLost() async throws {
        let fixture = try await EmulatorFixture.start(faults: EmulatorFaults(ratio130: 0.2, ratio100077: 0.1))
        let (pipeline, acked) = try fixture.pipeline(source: "count: 500")
        try await pipeline.run()
        let received = fixture.receivedNumbers()
        let statistics = fixture.emulator.statistics()
        await fixture.stop()
        #expect(Set(received) == Set(0..<500))
        #expect(received.count == 500, "a message answered 130/100077 was not accepted, so it must not be duplicated")
        #expect(statistics.answers(130) > 0 && statistics.answers(100077) > 0)
        #expect(acked.delivered.load(ordering: .relaxed) == 500)
        print("faults: sent 500, received \(received.count), 130 answers \(statistics.answers(130)), 100077 answers \(statistics.answers(100077))")
    }

    @Test func aclRefusalIsDeadLetteredWhileOtherTopicsFlow() async throws {
        let fixture = try await EmulatorFixture.start()
        let allowed = "/\(EmulatorFixture.productSN)/\(EmulatorFixture.deviceSN)/upload"
        let (pipeline, acked) = try fixture.pipeline(source: "count: 300, topics: [\"\(allowed)\", \"/someone/else/upload\"]")
        try await pipeline.run()
        let received = fixture.receivedNumbers()
        let deadLetters = fixture.deadLetters()
        await fixture.stop()
        #expect(Set(received) == Set(stride(from: 0, to: 300, by: 2)))
        #expect(deadLetters.count == 150)
        #expect(deadLetters.allSatisfy { ($0["retcode"] as? Int) == 100075 && ($0["topic"] as? String) == "/someone/else/upload" })
        let payload = try #require(deadLetters.first?["payload_base64"] as? String)
        #expect(String(decoding: Data(base64Encoded: payload)!, as: UTF8.self).hasPrefix("{\"n\":"))
        // Dead-lettered data is a final answer: acknowledged, so sources can move on.
        #expect(acked.delivered.load(ordering: .relaxed) == 300)
        let mode = try FileManager.default.attributesOfItem(atPath: fixture.directory + "/state/cloud/dead-letters.jsonl")[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test func batchTooLargeForTheServerIsSplitAndAnOversizedRecordDeadLettered() async throws {
        // The server's cap is lowered so batches of 10 records of 300 bytes are refused with 100076.
        let fixture = try await EmulatorFixture.start(maxBodyBytes: 1000)
        let (pipeline, acked) = try fixture.pipeline(source: "count: 200, parts: 10, body_bytes: 300")
        try await pipeline.run()
        let received = fixture.receivedNumbers()
        let statistics = fixture.emulator.statistics()
        await fixture.stop()
        #expect(Set(received) == Set(0..<200))
        #expect(received.count == 200)
        #expect(statistics.answers(100076) > 0)
        #expect(acked.delivered.load(ordering: .relaxed) == 200)

        let small = try await EmulatorFixture.start(maxBodyBytes: 1000)
        let (single, _) = try small.pipeline(source: "count: 3, body_bytes: 2000")
        try await single.run()
        let deadLetters = small.deadLetters()
        await small.stop()
        #expect(deadLetters.count == 3)
        #expect(deadLetters.allSatisfy { ($0["retcode"] as? Int) == 100076 })
    }

    @Test func refusedConnectionsRecoverWithNothingLost() async throws {
        let fixture = try await EmulatorFixture.start(
            faults: EmulatorFaults(refuseConnectionsUntil: ContinuousClock.now + .milliseconds(800)))
        let (pipeline, acked) = try fixture.pipeline(source: "count: 200")
        try await pipeline.run()
        let received = fixture.receivedNumbers()
        let statistics = fixture.emulator.statistics()
        await fixture.stop()
        #expect(statistics.connectionsRefused > 0)
        #expect(Set(received) == Set(0..<200))
        #expect(acked.delivered.load(ordering: .relaxed) == 200)
    }

    @Test func wrongSecretBacksOffWithoutAHotLoopAndKeepsTheData() async throws {
        let fixture = try await EmulatorFixture.start()
        let (pipeline, acked) = try fixture.pipeline(source: "count: 20", secret: "not-the-secret00", shutdownTimeout: "1500ms")
        // The source ends at once and the pipeline drains; the sink keeps the data and retries /auth every
        // credential_backoff (1s) until the shutdown deadline cancels it.
        await #expect(throws: PipelineError.self) { try await pipeline.run() }
        let statistics = fixture.emulator.statistics()
        await fixture.stop()
        #expect(statistics.answers(171) >= 1)
        #expect(statistics.answers(171) <= 4, "auth must back off, not hot-loop: \(statistics.answers(171)) attempts")
        #expect(fixture.receivedNumbers().isEmpty)
        // Nothing was acknowledged as delivered: a file source would not checkpoint past it.
        #expect(acked.delivered.load(ordering: .relaxed) == 0)
        #expect(fixture.deadLetters().isEmpty)
    }

    @Test func diskBufferKeepsDataAcrossARestartWhileTheCloudIsUnreachable() async throws {
        let fixture = try await EmulatorFixture.start(
            faults: EmulatorFaults(refuseConnectionsUntil: ContinuousClock.now + .seconds(600)))
        let disk = "    buffer: { type: disk, max_size: 8MiB, fsync_interval: 50ms }"
        // First run: the cloud refuses every connection; the source's data is acknowledged once it is on disk.
        let (first, firstAcked) = try fixture.pipeline(source: "count: 300", sinkExtra: disk, shutdownTimeout: "1s")
        await #expect(throws: PipelineError.self) { try await first.run() }
        #expect(firstAcked.delivered.load(ordering: .relaxed) == 300)
        #expect(fixture.receivedNumbers().isEmpty)
        // Second run, cloud reachable, no new input: the buffer delivers what the first run kept.
        fixture.emulator.setFaults(EmulatorFaults())
        let (second, _) = try fixture.pipeline(source: "count: 0", sinkExtra: disk)
        try await second.run()
        let received = fixture.receivedNumbers()
        await fixture.stop()
        #expect(Set(received) == Set(0..<300))
        print("disk buffer across restart: sent 300, received \(received.count), distinct \(Set(received).count), duplicates \(received.count - Set(received).count), lost \(300 - Set(received).count)")
    }

    static let shadowTopic = "/$system/\(EmulatorFixture.productSN)/\(EmulatorFixture.deviceSN)/shadow/upstream"

    @Test func shadowUpdatesArriveInOrderWhateverTheConcurrency() async throws {
        // One answer in three is 130: a retried update must not be overtaken by the ones after it, or the
        // shadow (Version -1: the cloud keeps the last it receives) ends on a stale value.
        let fixture = try await EmulatorFixture.start(faults: EmulatorFaults(ratio130: 0.3))
        let (pipeline, acked) = try fixture.pipeline(
            source: "count: 60, topics: [\"\(Self.shadowTopic)\"]", sinkExtra: "    concurrency: 4")
        try await pipeline.run()
        let received = fixture.receivedNumbers()
        let statistics = fixture.emulator.statistics()
        await fixture.stop()
        #expect(statistics.answers(130) > 0)
        #expect(received == Array(0..<60), "shadow updates arrived as \(received)")
        #expect(statistics.maxConcurrentRequests == 1)
        #expect(acked.delivered.load(ordering: .relaxed) == 60)
    }

    /// One chunk of two shadow updates (sent one after the other): the first is delivered, the second is answered
    /// 130 until the stop. The chunk is not delivered, so a file tail would not checkpoint past the second. (With
    /// the chunk's token shared by both requests, the first one's answer stood for the second.)
    @Test(.timeLimit(.minutes(1))) func aChunkIsDeliveredOnlyWhenEveryMessageInItIs() async throws {
        let fixture = try await EmulatorFixture.start(faults: EmulatorFaults(latency: .seconds(1)))
        let (pipeline, acked) = try fixture.pipeline(
            source: "count: 2, topics: [\"\(Self.shadowTopic)\"]", shutdownTimeout: "3s")
        let run = Task { try await pipeline.run() }
        // The emulator records a message, then waits its latency before answering: once the first update is
        // recorded, its answer (delivered) is a second away, and the second update is not sent before it.
        #expect(await waitUntil { fixture.receivedNumbers().count == 1 })
        fixture.emulator.setFaults(EmulatorFaults(ratio130: 1))
        await #expect(throws: PipelineError.self) { try await run.value }
        let received = fixture.receivedNumbers()
        await fixture.stop()
        #expect(received == [0])
        #expect(acked.delivered.load(ordering: .relaxed) == 0)
        #expect(acked.other.load(ordering: .relaxed) == 2)
    }

    @Test func perTopicOrderingKeepsEachTopicInOrderThroughRetriesAndSplits() async throws {
        // Batches of 10 records of 300 bytes are too large for this server (100076) and are split; one answer
        // in five is 130 and retried. Each topic must still receive its records in order.
        let fixture = try await EmulatorFixture.start(maxBodyBytes: 1000, faults: EmulatorFaults(ratio130: 0.2))
        let base = "/\(EmulatorFixture.productSN)/\(EmulatorFixture.deviceSN)"
        let topics = ["\(base)/upload", "\(base)/a", "\(base)/b"]
        let (pipeline, acked) = try fixture.pipeline(
            source: "count: 300, parts: 10, body_bytes: 300, topics: [\(topics.map { "\"\($0)\"" }.joined(separator: ", "))]",
            sinkExtra: "    concurrency: 8\n    ordering: per_topic")
        try await pipeline.run()
        let perTopic = topics.map { fixture.receivedNumbers(topic: $0) }
        let statistics = fixture.emulator.statistics()
        await fixture.stop()
        #expect(statistics.answers(100076) > 0 && statistics.answers(130) > 0)
        for (topic, received) in zip(topics, perTopic) {
            #expect(received == received.sorted(), "\(topic) received \(received)")
        }
        #expect(Set(perTopic.joined()) == Set(0..<300))
        #expect(perTopic.joined().count == 300)
        // Three topics, three lanes: never more than one request per topic at a time.
        #expect(statistics.maxConcurrentRequests <= 3)
        #expect(acked.delivered.load(ordering: .relaxed) == 300)
    }

    @Test func aWaitingShadowUpdateLeavesItsPlaceToOtherTopics() async throws {
        // Shadow updates and uploads alternate, 50 ms per answer, a fixed limit of 4. The shadow lane sends one
        // at a time; its updates waiting for their turn must not hold places on the wire, so the uploads
        // get the other 3 (before, the waiting updates filled the places and at most 3 requests overlapped).
        let fixture = try await EmulatorFixture.start(faults: EmulatorFaults(latency: .milliseconds(50)))
        let upload = "/\(EmulatorFixture.productSN)/\(EmulatorFixture.deviceSN)/upload"
        let (pipeline, acked) = try fixture.pipeline(
            source: "count: 40, topics: [\"\(Self.shadowTopic)\", \"\(upload)\"]",
            sinkExtra: "    concurrency: 4\n    max_concurrency: 4")
        try await pipeline.run()
        let shadows = fixture.receivedNumbers(topic: Self.shadowTopic)
        let uploads = fixture.receivedNumbers(topic: upload)
        let statistics = fixture.emulator.statistics()
        await fixture.stop()
        #expect(shadows == Array(stride(from: 0, to: 40, by: 2)), "shadow updates arrived as \(shadows)")
        #expect(Set(uploads) == Set(stride(from: 1, to: 40, by: 2)))
        #expect(statistics.maxConcurrentRequests == 4, "at most \(statistics.maxConcurrentRequests) requests overlapped")
        #expect(acked.delivered.load(ordering: .relaxed) == 40)
    }

    @Test func unorderedTopicsStillSendConcurrently() async throws {
        // 50 ms per answer makes requests overlap whenever the sink sends more than one at a time.
        let fixture = try await EmulatorFixture.start(faults: EmulatorFaults(latency: .milliseconds(50)))
        let (pipeline, acked) = try fixture.pipeline(source: "count: 40", sinkExtra: "    concurrency: 4")
        try await pipeline.run()
        let received = fixture.receivedNumbers()
        let statistics = fixture.emulator.statistics()
        await fixture.stop()
        #expect(Set(received) == Set(0..<40))
        #expect(statistics.maxConcurrentRequests >= 2, "ordering: none must keep concurrent sending")
        #expect(acked.delivered.load(ordering: .relaxed) == 40)
    }
}
