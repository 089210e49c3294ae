import Foundation
import Logging
import Synchronization
import Testing
import UplinkCore
@testable import UplinkPlugins
import UplinkTestSupport

private typealias Accumulator = BatchAccumulator

private let propertyTopic = "/$system/abcdefgh12345678/device001/tmodel/property/post"

private func limits(
    maxBytes: Int = 131_072, maxEvents: Int = 1000, timeout: Duration = .seconds(1), encoding: BatchFraming = .jsonArray
) -> Accumulator.Limits {
    Accumulator.Limits(maxBytes: maxBytes, maxEvents: maxEvents, timeout: timeout, encoding: encoding)
}

private func source(_ id: Int, _ tokens: Acknowledgement...) -> Accumulator.Source {
    Accumulator.Source(id: id, acknowledgements: Acknowledgements(tokens))
}

private func emitted(_ actions: [Accumulator.Action]) -> [Message] {
    actions.compactMap { if case .emit(let message, _) = $0 { return message } else { return nil } }
}

private func rejected(_ actions: [Accumulator.Action]) -> [String] {
    actions.compactMap { if case .reject(_, _, let reason) = $0 { return reason } else { return nil } }
}

private func message(_ text: String, topic: String? = "/abcdefgh12345678/device001/upload") -> Message {
    Message(topic: topic, body: Array(text.utf8))
}

@Suite struct BatchAccumulatorTests {
    @Test func customTopicsJoinAsAJSONArrayWithPartOffsets() {
        var accumulator = Accumulator(limits: limits())
        var actions: [Accumulator.Action] = []
        for (index, text) in [#"{"a":1}"#, #"{"b":22}"#, #"[3]"#].enumerated() {
            accumulator.add(message(text), from: source(index), now: .zero, into: &actions)
        }
        #expect(actions.isEmpty, "nothing is due yet")
        accumulator.flushAll(into: &actions)
        let batch = try! #require(emitted(actions).first)
        #expect(batch.text == #"[{"a":1},{"b":22},[3]]"#)
        #expect(batch.framing == .jsonArray)
        #expect(batch.parts == [8, 17, 21])
        #expect(batch.recordCount == 3)
        #expect(batch.topic == "/abcdefgh12345678/device001/upload")
    }

    @Test func ndjsonJoinsWithNewlines() {
        var accumulator = Accumulator(limits: limits(encoding: .ndjson))
        var actions: [Accumulator.Action] = []
        accumulator.add(message(#"{"a":1}"#), from: source(1), now: .zero, into: &actions)
        accumulator.add(message(#"{"b":2}"#), from: source(1), now: .zero, into: &actions)
        accumulator.flushAll(into: &actions)
        #expect(emitted(actions).map(\.text) == ["{\"a\":1}\n{\"b\":2}"])
        #expect(emitted(actions).first?.parts == [7, 15])
        #expect(emitted(actions).first?.framing == .ndjson)
    }

    @Test func aBatchIsSentBeforeTheNextRecordWouldPassMaxBytes() {
        // [x] is 9 bytes for a 7-byte record; two make 17, three 25.
        var accumulator = Accumulator(limits: limits(maxBytes: 24))
        var actions: [Accumulator.Action] = []
        for index in 0..<3 {
            accumulator.add(message(#"{"n":\#(index)}"#), from: source(index), now: .zero, into: &actions)
        }
        #expect(emitted(actions).map(\.text) == [#"[{"n":0},{"n":1}]"#])
        accumulator.flushAll(into: &actions)
        #expect(emitted(actions).map(\.text) == [#"[{"n":0},{"n":1}]"#, #"[{"n":2}]"#])
    }

    @Test func aRecordExactlyAtTheCapFitsAndOneByteMoreIsRejected() {
        var accumulator = Accumulator(limits: limits(maxBytes: 1024))
        var actions: [Accumulator.Action] = []
        let fits = #"{"p":""# + String(repeating: "x", count: 1024 - 2 - 8) + #""}"#
        #expect(accumulator.add(message(fits), from: source(1), now: .zero, into: &actions))
        #expect(!accumulator.add(message(fits + " "), from: source(2), now: .zero, into: &actions))
        accumulator.flushAll(into: &actions)
        #expect(emitted(actions).map(\.body.count) == [1024])
        #expect(rejected(actions) == ["the record is 1025 bytes encoded on its own, over max_bytes (1024): it can never be sent"])
    }

    @Test func maxEventsAndTimeoutSendABatch() {
        var accumulator = Accumulator(limits: limits(maxEvents: 2, timeout: .milliseconds(100)))
        var actions: [Accumulator.Action] = []
        accumulator.add(message("1"), from: source(1), now: .zero, into: &actions)
        accumulator.add(message("2"), from: source(1), now: .milliseconds(10), into: &actions)
        #expect(emitted(actions).map(\.text) == ["[1,2]"], "max_events")
        accumulator.add(message("3"), from: source(2), now: .milliseconds(20), into: &actions)
        #expect(accumulator.nextDeadline == .milliseconds(120), "the timeout runs from the batch's first record")
        accumulator.flushExpired(now: .milliseconds(119), into: &actions)
        #expect(emitted(actions).count == 1)
        accumulator.flushExpired(now: .milliseconds(120), into: &actions)
        #expect(emitted(actions).map(\.text) == ["[1,2]", "[3]"])
        #expect(accumulator.nextDeadline == nil && accumulator.isEmpty)
    }

    @Test func topicsAreBatchedApart() {
        var accumulator = Accumulator(limits: limits())
        var actions: [Accumulator.Action] = []
        accumulator.add(message("1", topic: "/p/d/a"), from: source(1), now: .zero, into: &actions)
        accumulator.add(message("2", topic: nil), from: source(1), now: .zero, into: &actions)
        accumulator.add(message("3", topic: "/p/d/a"), from: source(1), now: .zero, into: &actions)
        accumulator.flushAll(into: &actions)
        #expect(emitted(actions).map { "\($0.topic ?? "default") \($0.text)" } == ["/p/d/a [1,3]", "default [2]"])
    }

    // MARK: Thing-model property posts

    @Test func propertyPostsMergeIntoTheSpecsExample() {
        var accumulator = Accumulator(limits: limits())
        var actions: [Accumulator.Action] = []
        let posts = [
            #"{"RequestID":"100","Property":{"temp":{"Value":26.5,"Time":1524448722000}}}"#,
            #"{"RequestID":"101","Property":{"hum":{"Value":57}}}"#,
        ]
        for (index, post) in posts.enumerated() {
            accumulator.add(message(post, topic: propertyTopic), from: source(index), now: .zero, into: &actions)
        }
        accumulator.flushAll(into: &actions)
        let merged = emitted(actions)
        #expect(merged.map(\.text) == [#"{"RequestID":"100","Property":{"temp":{"Value":26.5,"Time":1524448722000},"hum":{"Value":57}}}"#])
        #expect(merged.map(\.topic) == [propertyTopic])
        #expect(merged.first?.recordCount == 2)
        #expect(merged.first?.framing == nil && merged.first?.parts == [], "a merged post is one document")
    }

    /// A post from `thing_model` (with its metadata) that ends up alone is sent as it came, not copied; one that
    /// gets company is merged as before, with both posts' acknowledgements.
    @Test func aPostSentAloneIsItsOwnBodyAndAMergedOneIsCopied() {
        func post(_ id: String, _ entries: String, _ names: [String]) -> Message {
            let header = #"{"RequestID":"\#(id)","Property":{"#
            return Message(
                topic: propertyTopic, body: Array((header + entries + "}}").utf8),
                metadata: [
                    "thing_model.request_id": .string(id), "thing_model.properties": .array(names.map { .string($0) }),
                    "thing_model.entries_start": .int(Int64(header.utf8.count)),
                ])
        }
        var accumulator = Accumulator(limits: limits())
        var actions: [Accumulator.Action] = []
        let first = post("1", #""temp":{"Value":20}"#, ["temp"])
        let second = post("2", #""temp":{"Value":21}"#, ["temp"])
        let third = post("3", #""hum":{"Value":50}"#, ["hum"])
        let tokens = AckCounter()
        accumulator.add(first, from: source(1, tokens.token()), now: .zero, into: &actions)
        accumulator.add(second, from: source(2, tokens.token()), now: .zero, into: &actions)
        accumulator.add(third, from: source(3, tokens.token()), now: .zero, into: &actions)
        accumulator.flushAll(into: &actions)
        let sent = emitted(actions)
        #expect(sent.map(\.text) == [
            #"{"RequestID":"1","Property":{"temp":{"Value":20}}}"#,
            #"{"RequestID":"2","Property":{"temp":{"Value":21},"hum":{"Value":50}}}"#,
        ])
        #expect(sent.map(\.recordCount) == [1, 2])
        #expect(sent.allSatisfy { $0.metadata.isEmpty && $0.framing == nil && $0.parts.isEmpty })
        let sameStorage = first.body.withUnsafeBufferPointer { a in sent[0].body.withUnsafeBufferPointer { $0.baseAddress == a.baseAddress } }
        #expect(sameStorage, "a post sent alone is not copied")
        let acknowledgements = actions.compactMap { if case .emit(_, let acks) = $0 { return acks.tokens.count } else { return nil } }
        #expect(acknowledgements == [1, 2])
    }

    @Test func metadataThatDoesNotMatchTheBodyIsNotTrusted() {
        var accumulator = Accumulator(limits: limits())
        var actions: [Accumulator.Action] = []
        let body = #"{"RequestID":"5","Property":{"a":{"Value":1}}}"#
        let lying: Fields = [
            "thing_model.request_id": .string("6"), "thing_model.properties": .array([.string("b")]),
            "thing_model.entries_start": .int(3),
        ]
        accumulator.add(Message(topic: propertyTopic, body: Array(body.utf8), metadata: lying), from: source(1), now: .zero, into: &actions)
        accumulator.add(message(#"{"RequestID":"7","Property":{"a":{"Value":2}}}"#, topic: propertyTopic), from: source(2), now: .zero, into: &actions)
        accumulator.flushAll(into: &actions)
        #expect(emitted(actions).map(\.text) == [body, #"{"RequestID":"7","Property":{"a":{"Value":2}}}"#], "parsed: 'a' repeats")
    }

    @Test func aRepeatedIdentifierStartsANewMessageSoNoSampleIsOverwritten() {
        var accumulator = Accumulator(limits: limits())
        var actions: [Accumulator.Action] = []
        let posts = [
            #"{"RequestID":"1","Property":{"temp":{"Value":20},"hum":{"Value":50}}}"#,
            #"{"RequestID":"2","Property":{"co2":{"Value":400}}}"#,
            #"{"RequestID":"3","Property":{"temp":{"Value":21}}}"#,
        ]
        for (index, post) in posts.enumerated() {
            accumulator.add(message(post, topic: propertyTopic), from: source(index), now: .zero, into: &actions)
        }
        accumulator.flushAll(into: &actions)
        #expect(emitted(actions).map(\.text) == [
            #"{"RequestID":"1","Property":{"temp":{"Value":20},"hum":{"Value":50},"co2":{"Value":400}}}"#,
            #"{"RequestID":"3","Property":{"temp":{"Value":21}}}"#,
        ])
    }

    @Test func aMergedPostNeverHoldsMoreThan100Identifiers() {
        var accumulator = Accumulator(limits: limits())
        var actions: [Accumulator.Action] = []
        for index in 0..<150 {
            let post = #"{"RequestID":"\#(index)","Property":{"p\#(index)":{"Value":\#(index)}}}"#
            accumulator.add(message(post, topic: propertyTopic), from: source(index), now: .zero, into: &actions)
        }
        accumulator.flushAll(into: &actions)
        #expect(emitted(actions).map(\.recordCount) == [100, 50])
    }

    @Test func eventsShadowUpdatesAndForeignPostsPassThroughOnePerMessage() {
        var accumulator = Accumulator(limits: limits())
        var actions: [Accumulator.Action] = []
        let counter = AckCounter()
        let token = counter.token()
        let inputs = [
            message(#"{"RequestID":"1","Identifier":"e","Output":{},"Time":1}"#, topic: "/$system/p/d/tmodel/event/post"),
            message(#"{"Method":"update","State":{"Reported":{"a":1}},"Version":-1}"#, topic: "/$system/p/d/shadow/upstream"),
            message("not json", topic: propertyTopic),
        ]
        for input in inputs { accumulator.add(input, from: source(1, token), now: .zero, into: &actions) }
        #expect(accumulator.isEmpty)
        #expect(emitted(actions).map(\.text) == inputs.map(\.text))
        // One share of the chunk's token, held by the three (they go downstream as one chunk; the sink shares
        // it again per request): never the token itself, which then answers only through its shares.
        let held = actions.compactMap { action -> Acknowledgement? in
            guard case .emit(_, let acknowledgements) = action, acknowledgements.tokens.count == 1 else { return nil }
            return acknowledgements.tokens[0]
        }
        #expect(held.count == 3)
        #expect(held.allSatisfy { $0 !== token && $0.answers(for: token) && $0 === held[0] })
    }

    @Test func aBatchHoldsTheAcknowledgementsOfEveryChunkInItOnce() {
        var accumulator = Accumulator(limits: limits())
        var actions: [Accumulator.Action] = []
        let counter = AckCounter()
        let (first, second) = (counter.token(), counter.token())
        accumulator.add(message("1", topic: "/a"), from: source(1, first), now: .zero, into: &actions)
        accumulator.add(message("2", topic: "/b"), from: source(1, first), now: .zero, into: &actions)
        accumulator.add(message("3", topic: "/a"), from: source(1, first), now: .zero, into: &actions)
        accumulator.add(message("4", topic: "/a"), from: source(2, second), now: .zero, into: &actions)
        accumulator.flushAll(into: &actions)
        let held = actions.compactMap { action -> [String]? in
            guard case .emit(_, let acknowledgements) = action else { return nil }
            return acknowledgements.tokens.map { $0.answers(for: first) ? "first" : $0.answers(for: second) ? "second" : "?" }
        }
        #expect(held == [["first", "second"], ["first"]], "the chunk that fed both topics is held by both batches")
        let shares = actions.compactMap { action -> Acknowledgement? in
            guard case .emit(_, let acknowledgements) = action else { return nil }
            return acknowledgements.tokens.first
        }
        #expect(shares[0] !== shares[1], "each batch holds its own share: each is delivered or lost on its own")
    }

    // MARK: Property-based

    /// Random sequences of records on custom and property topics, random limits and clocks: every record comes
    /// out exactly once (or is rejected, exactly when it is too large alone), in order per topic, with its
    /// chunk's acknowledgement, and no body ever passes the cap.
    @Test(.timeLimit(.minutes(2))) func batchingNeitherLosesNorDuplicatesAndNeverPassesTheCap() throws {
        let topics: [String?] = ["/p/d/a", "/p/d/b", nil, propertyTopic, propertyTopic]
        let identifiers = ["temp", "hum", "co2", "volt", "amp", "lux", "rssi", "door"]
        // What the runs exercised, so the test cannot pass by never merging, splitting or rejecting.
        var mergedPosts = 0
        var multiRecordBatches = 0
        var rejects = 0
        for seed in 0..<300 {
            var random = SeededGenerator(seed: UInt64(seed))
            let encoding: BatchFraming = Bool.random(using: &random) ? .jsonArray : .ndjson
            let maxBytes = Int.random(in: 40...2048, using: &random)
            let limits = limits(
                maxBytes: maxBytes, maxEvents: Int.random(in: 1...40, using: &random),
                timeout: .milliseconds(Int.random(in: 1...50, using: &random)), encoding: encoding)
            var accumulator = Accumulator(limits: limits)
            var actions: [Accumulator.Action] = []
            var now = Duration.zero
            var sent: [Int: (topic: String?, properties: Int, chunk: Acknowledgement, alone: Int)] = [:]
            var tokens: [Acknowledgement] = []
            var nextRecord = 0
            for chunk in 0..<Int.random(in: 1...60, using: &random) {
                now += .milliseconds(Int.random(in: 0...20, using: &random))
                if Bool.random(using: &random) {
                    accumulator.flushExpired(now: now, into: &actions)
                    if let deadline = accumulator.nextDeadline { #expect(deadline > now, "seed \(seed): an expired batch stayed open") }
                }
                let token = Acknowledgement { _ in }
                tokens.append(token)
                let chunkSource = Accumulator.Source(id: chunk, acknowledgements: Acknowledgements([token]))
                for _ in 0..<Int.random(in: 1...8, using: &random) {
                    let id = nextRecord
                    nextRecord += 1
                    let topic = topics.randomElement(using: &random)!
                    let body: String
                    var alone: Int
                    var count = 0
                    var metadata = Fields()
                    if topic == propertyTopic {
                        let chosen = identifiers.shuffled(using: &random).prefix(Int.random(in: 1...4, using: &random))
                        count = chosen.count
                        let padding = String(repeating: "x", count: Int.random(in: 0...(maxBytes / 3), using: &random))
                        let entries = chosen.enumerated().map { #""\#($1)":{"Value":\#(id * 10 + $0),"Note":"\#(padding)"}"# }
                        body = #"{"RequestID":"\#(id)","Property":{\#(entries.joined(separator: ","))}}"#
                        alone = body.utf8.count
                        // Half as thing_model describes its posts (merged by copying), half parsed.
                        if Bool.random(using: &random) {
                            metadata = [
                                "thing_model.request_id": .string("\(id)"),
                                "thing_model.properties": .array(chosen.map { .string($0) }),
                                "thing_model.entries_start": .int(Int64(#"{"RequestID":"\#(id)","Property":{"#.utf8.count)),
                            ]
                        }
                    } else {
                        let padding = String(repeating: "y", count: Int.random(in: 0...(maxBytes + 20), using: &random))
                        body = #"{"id":\#(id),"pad":"\#(padding)"}"#
                        alone = body.utf8.count + (encoding == .jsonArray ? 2 : 0)
                    }
                    let accepted = accumulator.add(
                        Message(topic: topic, body: Array(body.utf8), metadata: metadata), from: chunkSource, now: now,
                        into: &actions)
                    #expect(accepted == (alone <= maxBytes), "seed \(seed): accepted exactly when it fits alone")
                    sent[id] = (topic, count, token, alone)
                }
            }
            accumulator.flushAll(into: &actions)
            #expect(accumulator.isEmpty)

            var seen: [Int: Int] = [:]
            var lastPerTopic: [String: Int] = [:]
            for action in actions {
                switch action {
                case .reject(_, let payload, _):
                    let text = String(decoding: payload, as: UTF8.self)
                    let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
                    let id = (object?["id"] as? Int) ?? Int(object?["RequestID"] as? String ?? "") ?? -1
                    #expect(sent[id].map { $0.alone > maxBytes } == true, "seed \(seed): rejected only when too large")
                    rejects += 1
                    seen[id, default: 0] += 1
                case .emit(let message, let acknowledgements):
                    #expect(message.body.count <= maxBytes, "seed \(seed): a body passed the cap")
                    let held = acknowledgements.tokens
                    var ids: [Int] = []
                    if message.topic == propertyTopic {
                        let object = try #require(JSONSerialization.jsonObject(with: Data(message.body)) as? [String: Any])
                        let properties = try #require(object["Property"] as? [String: [String: Any]])
                        let values = properties.values.compactMap { $0["Value"] as? Int }
                        #expect(values.count == properties.count)
                        ids = Array(Set(values.map { $0 / 10 })).sorted()
                        let expectedProperties = ids.reduce(0) { $0 + (sent[$1]?.properties ?? 0) }
                        #expect(properties.count == expectedProperties, "seed \(seed): a property was overwritten")
                        #expect(object["RequestID"] as? String == ids.first.map(String.init), "seed \(seed): the first post's RequestID")
                        #expect(message.recordCount == ids.count)
                        if ids.count > 1 { mergedPosts += 1 }
                    } else {
                        let documents: [Any]
                        switch encoding {
                        case .jsonArray:
                            documents = try #require(JSONSerialization.jsonObject(with: Data(message.body)) as? [Any])
                        case .ndjson:
                            documents = try message.text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) }
                        }
                        ids = documents.compactMap { ($0 as? [String: Any])?["id"] as? Int }
                        #expect(ids.count == message.recordCount)
                        // `parts` cuts the body back into the records.
                        var start = encoding == .jsonArray ? 1 : 0
                        var fromParts: [Int] = []
                        for end in message.parts {
                            let part = Data(message.body[start..<end])
                            fromParts.append(((try JSONSerialization.jsonObject(with: part)) as? [String: Any])?["id"] as? Int ?? -1)
                            start = end + 1
                        }
                        #expect(fromParts == ids, "seed \(seed): parts do not match the records")
                        if ids.count > 1 { multiRecordBatches += 1 }
                    }
                    for id in ids {
                        seen[id, default: 0] += 1
                        let record = try #require(sent[id])
                        #expect(record.topic == message.topic, "seed \(seed): wrong topic")
                        #expect(held.contains { $0.answers(for: record.chunk) }, "seed \(seed): acknowledgement not held")
                        let key = message.topic ?? "<default>"
                        #expect((lastPerTopic[key] ?? -1) < id, "seed \(seed): order within a topic changed")
                        lastPerTopic[key] = id
                    }
                }
            }
            #expect(seen.count == nextRecord && seen.values.allSatisfy { $0 == 1 }, "seed \(seed): lost or duplicated records")
            withExtendedLifetime(tokens) {}
        }
        #expect(mergedPosts > 100 && multiRecordBatches > 100 && rejects > 100, "\(mergedPosts) \(multiRecordBatches) \(rejects)")
    }
}

// MARK: The stage

@Suite struct BatchTransformTests {
    private func pipeline(batch options: String) -> String {
        """
        sources:
          in: { type: stdin }
        transforms:
          wrap: { type: json, inputs: [in], mode: json }
          t: { type: batch, inputs: [wrap], \(options) }
        sinks:
          out: { type: stdout, inputs: [t] }
        """
    }

    /// `stdin -> json -> shadow -> t (batch) -> stdout`: a batch of messages; `t` is on line 6.
    private func pipeline(batchOfMessages options: String) -> String {
        """
        sources:
          in: { type: stdin }
        transforms:
          wrap: { type: json, inputs: [in], mode: json }
          model: { type: shadow, inputs: [wrap], product_sn: P, device_sn: D }
          t: { type: batch, inputs: [model], \(options) }
        sinks:
          out: { type: stdout, inputs: [t] }
        """
    }

    @Test func recordsBecomeBatchesOnTheirTopicAndEndOfInputFlushes() async throws {
        let transform = try builtTransform(
            "t", in: pipeline(batch: "topic: /p/d/upload, encoding: ndjson"), as: BatchTransform<Record>.self)
        let counter = AckCounter()
        let result = try await run(transform, [
            EventChunk(records([["a": .int(1)], ["b": .string("é\n")]]), acknowledgements: Acknowledgements([counter.token()])),
            EventChunk(records([["c": .null]]), acknowledgements: Acknowledgements([counter.token()])),
        ])
        #expect(result.events.map(\.text) == ["{\"a\":1}\n{\"b\":\"é\\n\"}\n{\"c\":null}"])
        #expect(result.events.map(\.topic) == ["/p/d/upload"])
        #expect(result.chunks.map(\.acknowledgements.tokens.count) == [2])
        #expect(counter.deliveredCount == 0, "held by the batch until the sink answers")
        result.chunks.forEach { $0.acknowledgements.resolve(.delivered) }
        withExtendedLifetime(result) {}
    }

    @Test func acknowledgementsFinishWhenTheBatchIsReleased() async throws {
        let transform = try builtTransform("t", in: pipeline(batch: "max_events: 2"), as: BatchTransform<Record>.self)
        let counter = AckCounter()
        do {
            let result = try await run(transform, (0..<3).map {
                EventChunk(records([["n": .int(Int64($0))]]), acknowledgements: Acknowledgements([counter.token()]))
            })
            #expect(result.events.map(\.text) == [#"[{"n":0},{"n":1}]"#, #"[{"n":2}]"#])
            for chunk in result.chunks { chunk.acknowledgements.resolve(.delivered) }
        }
        #expect(counter.deliveredCount == 3 && counter.otherCount == 0)
    }

    /// Chunks whose records go on from one batch into the next (by `max_events` or by `max_bytes`): each batch
    /// holds only its part of each chunk's acknowledgement, cut at the offset of the first record it does not
    /// hold, so the source hears each part when that batch is answered, in whatever order.
    @Test(arguments: ["max_events: 3, encoding: ndjson", "max_bytes: 1KiB, encoding: ndjson"])
    func aChunkSpreadOverBatchesIsAcknowledgedPerBatch(options: String) async throws {
        let transform = try builtTransform("t", in: pipeline(batch: options), as: BatchTransform<Record>.self)
        let heard = Mutex<[AcknowledgedRange]>([])
        func token(_ range: Range<Int64>) -> Acknowledgement {
            Acknowledgement(range: range) { part in heard.withLock { $0.append(part) } }
        }
        // Records of 300 bytes each (three fit in 1 KiB), record n at offset 10 n: chunk 0..<80 holds records
        // 0-7, chunk 80..<100 records 8 and 9.
        func chunk(_ numbers: Range<Int>, _ range: Range<Int64>) -> EventChunk<Record> {
            var events = records(numbers.map { ["n": .int(Int64($0)), "pad": .string(String(repeating: "x", count: 284))] })
            for index in events.indices { events[index].offset = Int64(numbers.lowerBound + index) * 10 }
            return EventChunk(events, acknowledgements: Acknowledgements([token(range)]))
        }
        var outputs = try await run(transform, [chunk(0..<8, 0..<80), chunk(8..<10, 80..<100)]).chunks
        #expect(outputs.map { $0.events.map(\.recordCount) } == [[3], [3], [3], [1]])
        #expect(heard.withLock { $0 }.isEmpty, "every part is held by its batch")
        // The second batch is delivered first, then the fourth; the first fails; the third is dropped.
        func answer(_ index: Int, _ status: DeliveryStatus?) {
            if let status { outputs[index].acknowledgements.resolve(status) }
            outputs[index] = EventChunk([])
        }
        answer(1, .delivered)
        #expect(heard.withLock { $0 } == [AcknowledgedRange(range: 30..<60, status: .delivered, isLast: false)])
        answer(3, .delivered)
        answer(0, .failed)
        answer(2, nil)
        #expect(
            heard.withLock { $0 } == [
                AcknowledgedRange(range: 30..<60, status: .delivered, isLast: false),
                AcknowledgedRange(range: 90..<100, status: .delivered, isLast: false),
                AcknowledgedRange(range: 0..<30, status: .failed, isLast: false),
                AcknowledgedRange(range: 60..<80, status: .dropped, isLast: true),
                AcknowledgedRange(range: 80..<90, status: .dropped, isLast: true),
            ])
    }

    /// Messages from one chunk (`thing_model`, `shadow` keep their record's offset): a message passed through
    /// alone is a batch of its own, cut from the next; a property post that cannot merge (a repeated identifier)
    /// ends its batch. Each batch holds its part of the chunk's acknowledgement. While a batch of another topic
    /// is open with records of the chunk, nothing is cut (shown in the second chunk).
    @Test func messagesOfAChunkAreAcknowledgedPerBatch() async throws {
        let batch = try builtTransform("t", in: pipeline(batchOfMessages: ""), as: BatchTransform<Message>.self)
        let heard = Mutex<[AcknowledgedRange]>([])
        func token(_ range: Range<Int64>) -> Acknowledgement {
            Acknowledgement(range: range) { part in heard.withLock { $0.append(part) } }
        }
        func post(_ value: Int, at offset: Int64) -> Message {
            var message = Message(
                topic: propertyTopic, body: Array(#"{"RequestID":"\#(value)","Property":{"temp":{"Value":\#(value)}}}"#.utf8))
            message.offset = offset
            return message
        }
        func update(_ value: Int, at offset: Int64) -> Message {
            var message = Message(
                topic: "/$system/abcdefgh12345678/device001/shadow/upstream", body: Array(#"{"v":\#(value)}"#.utf8))
            message.offset = offset
            return message
        }
        let shared = token(100..<130)
        var outputs = try await run(batch, [
            EventChunk(
                [update(0, at: 0), update(1, at: 10), update(2, at: 20), post(3, at: 30), post(4, at: 40)],
                acknowledgements: Acknowledgements([token(0..<50)])),
            EventChunk([post(5, at: 100), update(6, at: 110), update(7, at: 120)], acknowledgements: Acknowledgements([shared])),
        ]).chunks
        func postText(_ value: Int) -> String { #"{"RequestID":"\#(value)","Property":{"temp":{"Value":\#(value)}}}"# }
        #expect(outputs.map { $0.events.map(\.text) } == [
            [#"{"v":0}"#], [#"{"v":1}"#], [#"{"v":2}"#], [postText(3)], [postText(4)], [#"{"v":6}"#, #"{"v":7}"#],
            [postText(5)],
        ])
        // The second chunk: post 5 was open in its batch when the updates passed through: nothing is cut, and
        // the updates (one chunk downstream) and post 5's batch each hold a share of the whole token.
        #expect(outputs[5].acknowledgements.tokens.count == 1 && outputs[5].acknowledgements.tokens[0].answers(for: shared))
        #expect(outputs[6].acknowledgements.tokens.count == 1 && outputs[6].acknowledgements.tokens[0].answers(for: shared))
        #expect(outputs[5].acknowledgements.tokens[0] !== outputs[6].acknowledgements.tokens[0])
        func answer(_ index: Int, _ status: DeliveryStatus?) {
            if let status { outputs[index].acknowledgements.resolve(status) }
            outputs[index] = EventChunk([])
        }
        answer(4, .delivered)
        answer(2, .failed)
        answer(0, .delivered)
        answer(3, nil)
        #expect(heard.withLock { $0 }.count == 4, "the update of 10 is still in flight")
        answer(1, .delivered)
        #expect(
            heard.withLock { $0 } == [
                AcknowledgedRange(range: 40..<50, status: .delivered, isLast: false),
                AcknowledgedRange(range: 20..<30, status: .failed, isLast: false),
                AcknowledgedRange(range: 0..<10, status: .delivered, isLast: false),
                AcknowledgedRange(range: 30..<40, status: .dropped, isLast: false),
                AcknowledgedRange(range: 10..<20, status: .delivered, isLast: true),
            ])
        withExtendedLifetime(shared) {}
    }

    /// Where a cut cannot be placed exactly (a token that covers no range, records without offsets or out of
    /// order), each batch holds its own share of the chunk's token: the chunk is delivered once every batch is.
    @Test func chunksThatCannotBeCutGiveEachBatchAShare() async throws {
        let transform = try builtTransform("t", in: pipeline(batch: "max_events: 2"), as: BatchTransform<Record>.self)
        let counter = AckCounter()
        var unordered = records((0..<4).map { ["n": .int(Int64($0))] })
        for (index, offset) in [0, 20, 10, 30].enumerated() { unordered[index].offset = Int64(offset) }
        let heard = Mutex<[AcknowledgedRange]>([])
        let ranged = Acknowledgement(range: 0..<40) { part in heard.withLock { $0.append(part) } }
        do {
            let whole = counter.token()
            let result = try await run(transform, [
                EventChunk(records((0..<4).map { ["n": .int(Int64($0))] }), acknowledgements: Acknowledgements([whole])),
                EventChunk(unordered, acknowledgements: Acknowledgements([ranged])),
            ])
            try #require(result.chunks.map(\.count) == [1, 1, 1, 1])
            #expect(result.chunks.map { $0.acknowledgements.tokens.count } == [1, 1, 1, 1])
            #expect(result.chunks[0...1].allSatisfy { $0.acknowledgements.tokens[0].answers(for: whole) })
            #expect(result.chunks[2...3].allSatisfy { $0.acknowledgements.tokens[0].answers(for: ranged) })
            #expect(result.chunks[2].acknowledgements.tokens[0] !== result.chunks[3].acknowledgements.tokens[0])
            for chunk in result.chunks { chunk.acknowledgements.resolve(.delivered) }
        }
        #expect(counter.deliveredCount == 1)
        #expect(heard.withLock { $0 }.isEmpty, "the test still holds the token")
        withExtendedLifetime(ranged) {}
    }

    /// The first batch of a chunk that cannot be cut is delivered and the second is lost (a stop while it waits
    /// for the sink): the chunk is not delivered, so a file tail does not checkpoint past the second batch.
    /// (With one token shared by both batches, the first batch's answer stood for the second.)
    @Test func aBatchLostAtAStopHoldsBackAChunkWhoseOtherBatchWasDelivered() async throws {
        let transform = try builtTransform("t", in: pipeline(batch: "max_events: 2"), as: BatchTransform<Record>.self)
        let counter = AckCounter()
        let heard = Mutex<[AcknowledgedRange]>([])
        var unordered = records((0..<4).map { ["n": .int(Int64($0))] })
        for (index, offset) in [0, 20, 10, 30].enumerated() { unordered[index].offset = Int64(offset) }
        do {
            let ranged = Acknowledgement(range: 0..<40) { part in heard.withLock { $0.append(part) } }
            let result = try await run(transform, [
                EventChunk(records((0..<4).map { ["n": .int(Int64($0))] }), acknowledgements: Acknowledgements([counter.token()])),
                EventChunk(unordered, acknowledgements: Acknowledgements([ranged])),
            ])
            try #require(result.chunks.count == 4)
            // The first batch of each chunk is delivered; the second is dropped.
            var answered: [Bool] = [false, false]
            for chunk in result.chunks {
                let origin = chunk.acknowledgements.tokens[0].answers(for: ranged) ? 1 : 0
                if !answered[origin] { chunk.acknowledgements.resolve(.delivered) }
                answered[origin] = true
            }
        }
        #expect(counter.deliveredCount == 0 && counter.otherCount == 1)
        #expect(heard.withLock { $0 } == [AcknowledgedRange(range: 0..<40, status: .dropped, isLast: true)])
    }

    @Test func aRecordTooLargeAloneIsDeadLetteredWithItsReason() async throws {
        let directory = try temporaryDirectory()
        let transform = try builtTransform("t", in: pipeline(batch: "max_bytes: 1KiB"), as: BatchTransform<Record>.self)
        let counter = AckCounter()
        let big: Fields = ["blob": .string(String(repeating: "z", count: 2000))]
        let result = try await run(
            transform, [EventChunk(records([big]), acknowledgements: Acknowledgements([counter.token()]))],
            id: "b", dataDirectory: directory)
        #expect(result.events.isEmpty)
        #expect(result.metrics.errors == 1)
        #expect(counter.deliveredCount == 1, "dead-lettering is the record's final answer")
        let letters = try jsonLines(directory + "/b/dead-letters.jsonl")
        #expect(letters.map { $0["reason"] as? String } == ["the record is 2013 bytes encoded on its own, over max_bytes (1024): it can never be sent"])
        let payload = try #require(Data(base64Encoded: letters.first?["payload_base64"] as? String ?? ""))
        #expect(String(decoding: payload, as: UTF8.self) == Value.object(big).jsonText)
    }

    @Test(.timeLimit(.minutes(1))) func aBatchIsSentAtItsTimeoutWhileTheInputIsIdle() async throws {
        let transform = try builtTransform("t", in: pipeline(batch: "timeout: 30ms"), as: BatchTransform<Record>.self)
        try await withLiveTransform(transform, type: "batch") { input, output in
            try await input.send(EventChunk(records([["n": .int(1)]])))
            // The input stays open: only the timeout can send this batch.
            let first = await output.next()
            #expect(first?.events.map(\.text) == [#"[{"n":1}]"#])
            try await input.send(EventChunk(records([["n": .int(2)]])))
            input.finishProducer()
            let second = await output.next()
            #expect(second?.events.map(\.text) == [#"[{"n":2}]"#], "the end of input flushes what is open")
            // Nil once the transform has ended.
            #expect(await output.next() == nil)
        }
    }

    /// The input never idles (a producer keeps chunks ready, so reads need not wait): a batch is still sent at its
    /// timeout, and every record is in exactly one batch, in order.
    @Test(.timeLimit(.minutes(1))) func aBatchIsSentAtItsTimeoutWhileChunksKeepArriving() async throws {
        let transform = try builtTransform(
            "t", in: pipeline(batch: "timeout: 1ms, max_events: 100000, encoding: ndjson"), as: BatchTransform<Record>.self)
        try await withLiveTransform(transform, type: "batch", inputCapacity: 4, outputCapacity: 1 << 20) { input, output in
            // Bounded: stops once the first batch is out (a 1 ms timeout), or after a million records.
            var sent = 0
            while sent < 1_000_000 && output.bufferedEvents == 0 {
                try await input.send(EventChunk(records([["n": .int(Int64(sent))]])))
                sent += 1
            }
            input.finishProducer()
            var batches: [Message] = []
            // Until the transform has ended.
            while let chunk = await output.next() { batches += chunk.events }
            #expect(sent < 1_000_000, "a batch went out while the input was still open")
            #expect(batches[0].body.count < 100_000, "at its timeout, not at max_bytes")
            let lines = batches.flatMap { $0.text.split(separator: "\n").map(String.init) }
            #expect(lines == (0..<sent).map { #"{"n":\#($0)}"# })
        }
    }

    @Test func thingModelPostsMergeIntoTheSpecsExampleWithoutParsing() async throws {
        let withTime = try builtTransform(
            "t", in: UplinkPluginsTests.pipeline(thingModel: "product_sn: abcdefgh12345678, device_sn: device001"), as: ThingModelTransform.self)
        let withoutTime = try builtTransform(
            "t", in: UplinkPluginsTests.pipeline(thingModel: "product_sn: abcdefgh12345678, device_sn: device001, include_time: false"),
            as: ThingModelTransform.self)
        let state = try stateDirectory(requestIDsFrom: 100)
        var posts = try await run(withTime, records([["temp": .double(26.5)]]), dataDirectory: state).events
        posts += try await run(withoutTime, records([["hum": .int(57)]]), dataDirectory: state).events
        #expect(posts.allSatisfy { !$0.metadata.isEmpty })
        let batch = try builtTransform("t", in: pipeline(batchOfMessages: ""), as: BatchTransform<Message>.self)
        let merged = try await run(batch, posts)
        #expect(merged.events.map(\.text) == [#"{"RequestID":"100","Property":{"temp":{"Value":26.5,"Time":1524448722000},"hum":{"Value":57}}}"#])
        #expect(merged.events.map(\.topic) == [propertyTopic])
    }

    @Test func messagesHoldingTheSameAcknowledgementsShareAChunkOthersDoNot() async throws {
        let batch = try builtTransform("t", in: pipeline(batchOfMessages: ""), as: BatchTransform<Message>.self)
        let counter = AckCounter()
        let update = Message(topic: "/$system/P/D/shadow/upstream", body: Array(#"{"Method":"update"}"#.utf8))
        let result = try await run(batch, [
            EventChunk([update, update, update], acknowledgements: Acknowledgements([counter.token()])),
            EventChunk([update], acknowledgements: Acknowledgements([counter.token()])),
        ])
        #expect(result.chunks.map(\.count) == [3, 1])
        #expect(result.chunks.map(\.acknowledgements.tokens.count) == [1, 1])
    }

    @Test func csvToThingModelToBatchMergesDistinctPropertiesOnly() async throws {
        let yaml = """
            sources:
              in: { type: stdin }
            transforms:
              wrap: { type: json, inputs: [in], mode: csv, columns: [sensor, value:float] }
              model: { type: thing_model, inputs: [wrap], product_sn: P, device_sn: D, properties: { temp: value }, include_time: false }
              t: { type: batch, inputs: [model] }
            sinks:
              out: { type: stdout, inputs: [t] }
            """
        let (topology, errors) = buildPipeline(yaml)
        #expect(errors.isEmpty)
        guard case .transform(let wrapStage)? = topology?.node("wrap")?.stage, let wrap = wrapStage as? JSONTransform,
            case .transform(let modelStage)? = topology?.node("model")?.stage, let model = modelStage as? ThingModelTransform,
            case .transform(let batchStage)? = topology?.node("t")?.stage, let batch = batchStage as? BatchTransform<Message>
        else {
            Issue.record("pipeline did not build")
            return
        }
        let state = try stateDirectory(id: "model", requestIDsFrom: 7)
        let parsed = try await run(wrap, rawEvents(["a,20.5", "b,21"])).events
        let posts = try await run(model, parsed, id: "model", dataDirectory: state).events
        let batches = try await run(batch, posts).events
        // Both records post `temp`: the second starts a new message instead of overwriting the first sample.
        #expect(batches.map(\.text) == [
            #"{"RequestID":"7","Property":{"temp":{"Value":20.5}}}"#, #"{"RequestID":"8","Property":{"temp":{"Value":21.0}}}"#,
        ])
    }

    @Test(arguments: [
        ("max_bytes: 200KiB", "'max_bytes' must be between 1KiB and 131072 (IoT-Core's limit for one request), got 204800"),
        ("max_bytes: 100", "'max_bytes' must be between 1KiB and 131072"),
        ("max_events: 0", "'max_events' must be between 1 and 100000"),
        ("timeout: 0", "'timeout' must be between 1ms and 1h"),
        ("encoding: csv", "must be one of json_array, ndjson"),
        ("dead_letter_max_size: 10", "'dead_letter_max_size' must be at least 1KiB"),
        ("dead_letter_max_bytes: 10", "'dead_letter_max_size' must be at least 1KiB"),
    ])
    func misconfigurationIsReported(_ options: String, _ expected: String) {
        let (_, errors) = buildPipeline(pipeline(batch: options))
        #expect(errors.contains { $0.contains(expected) && $0.hasPrefix("test.yaml:5:") }, "\(errors)")
    }

    @Test func topicIsRefusedForMessageInput() {
        let (_, errors) = buildPipeline(pipeline(batchOfMessages: "topic: /x"))
        #expect(errors == ["test.yaml:6:45: error: 'topic' is only used with record input: messages keep their own topic"])
    }

    @Test func theDefaultsAreIoTCoresLimit() throws {
        let transform = try builtTransform("t", in: pipeline(batch: ""), as: BatchTransform<Record>.self)
        #expect(transform.maxBytes == 131_072)
        #expect(transform.topic == nil)
    }
}
