import Foundation
import Testing
import UplinkCore
import UplinkPlugins

@Suite struct ThingModelTransformTests {
    private let device = "product_sn: abcdefgh12345678, device_sn: device001"

    private func messages(
        _ options: String, _ input: [Fields], time: Int64 = 1_524_448_722_000, requestIDsFrom next: Int = 100
    ) async throws -> [Message] {
        let transform = try builtTransform("t", in: pipeline(thingModel: device + ", " + options), as: ThingModelTransform.self)
        let directory = try stateDirectory(requestIDsFrom: next)
        return try await run(transform, records(input, time: time), dataDirectory: directory).events
    }

    // MARK: Golden payloads (docs/spec: thing model payloads)

    @Test func propertyPostIsByteForByteTheSpecsShape() async throws {
        let found = try await messages("kind: property", [["temp": .double(26.5)]])
        #expect(found.map(\.text) == [#"{"RequestID":"100","Property":{"temp":{"Value":26.5,"Time":1524448722000}}}"#])
        #expect(found.map(\.topic) == ["/$system/abcdefgh12345678/device001/tmodel/property/post"])
        #expect(found.map(\.recordCount) == [1])
    }

    @Test func propertyPostsDescribeThemselvesForBatch() async throws {
        let found = try await messages("include_time: false", [["temp": .double(26.5), "hum": .int(57)]])
        let post = try #require(found.first)
        #expect(post.metadata == [
            "thing_model.request_id": .string("100"),
            "thing_model.properties": .array([.string("temp"), .string("hum")]),
            "thing_model.entries_start": .int(Int64(#"{"RequestID":"100","Property":{"#.utf8.count)),
        ])
        let events = try await messages("kind: event, identifier: e", [["a": .int(1)]])
        #expect(events.first?.metadata.isEmpty == true)
    }

    @Test func propertyWithoutTimeIsTheSpecsSecondProperty() async throws {
        let found = try await messages("include_time: false", [["hum": .int(57)]])
        #expect(found.map(\.text) == [#"{"RequestID":"100","Property":{"hum":{"Value":57}}}"#])
    }

    @Test func eventPostIsByteForByteTheSpecsExample() async throws {
        let found = try await messages(
            "kind: event, identifier: overheat", [["temp": .int(90)]], time: 1_524_448_723_000, requestIDsFrom: 101)
        #expect(found.map(\.text) == [#"{"RequestID":"101","Identifier":"overheat","Output":{"temp":90},"Time":1524448723000}"#])
        #expect(found.map(\.topic) == ["/$system/abcdefgh12345678/device001/tmodel/event/post"])
    }

    // MARK: Fields, names and time

    @Test func propertiesMappingSelectsAndRenamesInItsOwnOrder() async throws {
        let found = try await messages(
            "properties: { hum: humidity, temp: temperature, absent: nope }, include_time: false",
            [["temperature": .double(21.5), "noise": .int(1), "humidity": .int(40)]])
        #expect(found.map(\.text) == [#"{"RequestID":"100","Property":{"hum":{"Value":40},"temp":{"Value":21.5}}}"#])
    }

    @Test func timeFieldGivesTimeAndIsNotAProperty() async throws {
        let found = try await messages(
            "time_field: ts", [["ts": .int(1_600_000_000_123), "temp": .double(20.5), "state": .string("on\n\"x\"")]])
        #expect(found.map(\.text) == [
            #"{"RequestID":"100","Property":{"temp":{"Value":20.5,"Time":1600000000123},"state":{"Value":"on\n\"x\"","Time":1600000000123}}}"#
        ])
    }

    @Test func nullPropertiesAreLeftOutAndStructuredValuesKept() async throws {
        let found = try await messages(
            "include_time: false",
            [["a": .null, "pos": .object(["x": .int(1), "y": .double(2.5)]), "list": .array([.bool(true)])]])
        #expect(found.map(\.text) == [#"{"RequestID":"100","Property":{"pos":{"Value":{"x":1,"y":2.5}},"list":{"Value":[true]}}}"#])
    }

    @Test func eventIdentifierFromAFieldIsNotAnOutput() async throws {
        let found = try await messages(
            "kind: event, identifier_field: name, time_field: at",
            [["name": .string("door_open"), "at": .int(5), "who": .string("温度 🚀")]])
        #expect(found.map(\.text) == [#"{"RequestID":"100","Identifier":"door_open","Output":{"who":"温度 🚀"},"Time":5}"#])
    }

    @Test func anEventMayHaveNoOutputs() async throws {
        let found = try await messages("kind: event, identifier: reboot, include_time: false", [[:]])
        #expect(found.map(\.text) == [#"{"RequestID":"100","Identifier":"reboot","Output":{}}"#])
    }

    // MARK: Per-record checks

    @Test func recordsThatCannotBePostedAreDeadLetteredWithTheirReason() async throws {
        let transform = try builtTransform(
            "t", in: pipeline(thingModel: device + ", time_field: ts"), as: ThingModelTransform.self)
        let directory = try stateDirectory(requestIDsFrom: 1)
        let many = Fields((0..<101).map { Fields.Field(name: "p\($0)", value: .int(Int64($0))) } + [.init(name: "ts", value: .int(1))])
        let input: [Fields] = [
            ["ts": .int(1), "bad-name": .int(1)],
            ["ts": .int(1), "x": .string(String(repeating: "a", count: 2049))],
            ["temp": .int(1)],
            ["ts": .string("yesterday"), "temp": .int(1)],
            ["ts": .int(1), "only": .null],
            many,
            ["ts": .int(7), "fine": .bool(false)],
        ]
        let result = try await run(transform, records(input), dataDirectory: directory)
        #expect(result.events.map(\.text) == [#"{"RequestID":"1","Property":{"fine":{"Value":false,"Time":7}}}"#])
        #expect(result.metrics.errors == 6)
        let letters = try jsonLines(directory + "/t/dead-letters.jsonl")
        #expect(letters.map { $0["reason"] as? String ?? "" } == [
            "'bad-name' is not a thing-model identifier ([A-Za-z_][A-Za-z0-9_]*, at most 32 characters)",
            "'x' is a string of 2049 bytes; the thing model allows 2048",
            "the record has no 'ts' field (time_field)",
            #"'ts' is string "yesterday", not a Unix time in ms"#,
            "the record has no property to post",
            "the record has 101 properties; the thing model allows 100",
        ])
        #expect(letters.allSatisfy { $0["topic"] as? String == "/$system/abcdefgh12345678/device001/tmodel/property/post" })
        let first = try #require(Data(base64Encoded: letters[0]["payload_base64"] as? String ?? ""))
        #expect(String(decoding: first, as: UTF8.self) == #"{"ts":1,"bad-name":1}"#, "the record as JSON")
    }

    @Test func eventChecksIdentifiersAndOutputCountPerRecord() async throws {
        let transform = try builtTransform(
            "t", in: pipeline(thingModel: device + ", kind: event, identifier_field: id, on_error: drop"),
            as: ThingModelTransform.self)
        let tooMany = Fields([.init(name: "id", value: .string("e"))] + (0..<21).map { .init(name: "o\($0)", value: .int(1)) })
        let input: [Fields] = [
            ["id": .string("9lives")], ["id": .int(3)], [:], tooMany,
            ["id": .string(String(repeating: "x", count: 33))], ["id": .string(String(repeating: "x", count: 32))],
        ]
        let result = try await run(transform, records(input), dataDirectory: try stateDirectory(requestIDsFrom: 1))
        #expect(result.events.count == 1)
        #expect(result.metrics.errors == 5)
        #expect(result.metrics.droppedEvents == 5)
    }

    // MARK: RequestIDs

    @Test func requestIDsAreUniqueAndIncreasingAcrossRestarts() async throws {
        let transform = try builtTransform("t", in: pipeline(thingModel: device), as: ThingModelTransform.self)
        let directory = try temporaryDirectory()
        var seen: [Int] = []
        for _ in 0..<3 {
            let result = try await run(transform, records(Array(repeating: ["v": .int(1)], count: 5)), dataDirectory: directory)
            for message in result.events {
                let object = try JSONSerialization.jsonObject(with: Data(message.body)) as? [String: Any]
                let id = try #require(object?["RequestID"] as? String, "RequestID is a string")
                seen.append(try #require(Int(id)))
            }
        }
        #expect(seen.count == 15)
        #expect(seen == seen.sorted() && Set(seen).count == 15)
        #expect(seen.first == 1)
        #expect(seen[5] > seen[4] && seen[10] > seen[9], "a restart resumes after the reserved block")
    }

    // MARK: Configuration

    @Test func productAndDeviceComeFromTheSinkWhenNotSetHere() throws {
        let yaml = """
            sources:
              in: { type: stdin }
            transforms:
              wrap: { type: json, inputs: [in], mode: json }
              t: { type: thing_model, inputs: [wrap], device_sn: own-device }
            sinks:
              cloud: { type: fake_iotcore, inputs: [t], product_sn: fromSink, device_sn: sinkDevice }
            """
        let transform = try builtTransform("t", in: yaml, as: ThingModelTransform.self, registry: registryWithDeviceSink)
        #expect(transform.topic == "/$system/fromSink/own-device/tmodel/property/post")
    }

    /// A gateway: one board, two devices, each with its own sink. Each transform speaks for the device it feeds
    /// (through a batch too); before, both took the identity of whichever sink was built last.
    @Test func eachTransformTakesTheIdentityOfTheSinkItFeeds() throws {
        let yaml = """
            sources:
              in: { type: stdin }
            transforms:
              wrap: { type: json, inputs: [in], mode: json }
              first: { type: thing_model, inputs: [wrap] }
              second: { type: thing_model, inputs: [wrap] }
              second_batches: { type: batch, inputs: [second] }
            sinks:
              device1: { type: fake_iotcore, inputs: [first], product_sn: p1, device_sn: device001 }
              device2: { type: fake_iotcore, inputs: [second_batches], product_sn: p1, device_sn: device002 }
            """
        let first = try builtTransform("first", in: yaml, as: ThingModelTransform.self, registry: registryWithDeviceSink)
        let second = try builtTransform("second", in: yaml, as: ThingModelTransform.self, registry: registryWithDeviceSink)
        #expect(first.topic == "/$system/p1/device001/tmodel/property/post")
        #expect(second.topic == "/$system/p1/device002/tmodel/property/post")
    }

    @Test func sinksThatDisagreeAreAnErrorNamingBoth() {
        let yaml = """
            sources:
              in: { type: stdin }
            transforms:
              wrap: { type: json, inputs: [in], mode: json }
              t: { type: thing_model, inputs: [wrap] }
            sinks:
              device1: { type: fake_iotcore, inputs: [t], product_sn: p1, device_sn: device001 }
              device2: { type: fake_iotcore, inputs: [t], product_sn: p1, device_sn: device002 }
            """
        let (_, errors) = buildPipeline(yaml, registry: registryWithDeviceSink)
        #expect(errors == [
            "test.yaml:5:6: error: 'device_sn' is not set and the iotcore sinks this transform feeds disagree on it: 'device1' (test.yaml:7:3) has 'device001' and 'device2' (test.yaml:8:3) has 'device002'; set 'device_sn' on this transform, or give each sink a transform of its own"
        ])
        // Its own device_sn settles it: the sinks agree on the product.
        let (topology, _) = buildPipeline(
            yaml.replacingOccurrences(of: "inputs: [wrap] }", with: "inputs: [wrap], device_sn: device001 }"),
            registry: registryWithDeviceSink)
        #expect(topology != nil)
    }

    @Test func missingProductOrDeviceSaysBothWaysToFixIt() {
        let (_, errors) = buildPipeline(pipeline(thingModel: "device_sn: d1"))
        #expect(errors == [
            "test.yaml:5:6: error: missing 'product_sn': set it on this transform, or send its output to an iotcore sink that has 'product_sn' (the transform then uses the sink's)"
        ])
    }

    @Test(arguments: [
        ("properties: { bad-id: x }", "5:57: error: 'properties': 'bad-id' is not a thing-model identifier"),
        ("properties: [temp, temp]", "'properties': 'temp' is listed twice"),
        ("properties: { \(String(repeating: "a", count: 33)): x }", "is not a thing-model identifier"),
        ("kind: event", "kind: event needs 'identifier' (one event for every record) or 'identifier_field'"),
        ("kind: event, identifier: 1st", "'identifier': '1st' is not a thing-model identifier"),
        ("kind: event, identifier: a, identifier_field: b", "set 'identifier' or 'identifier_field', not both"),
        ("kind: event, identifier: a, properties: [x]", "'properties' is only used with kind: property (kind is event)"),
        ("identifier: a", "'identifier' is only used with kind: event (kind is property)"),
        ("kind: event, identifier: a, outputs: [\((0..<21).map { "o\($0)" }.joined(separator: ", "))]", "'outputs' lists 21 identifiers; the thing model allows at most 20"),
        ("include_time: false, time_field: ts", "'time_field' is set but include_time is false"),
        ("on_error: drop, dead_letter_path: /tmp/x", "'dead_letter_path' is not used: on_error is not dead_letter"),
        ("kind: events", "did you mean 'event'?"),
    ])
    func misconfigurationIsReportedWhereItIsWritten(_ options: String, _ expected: String) {
        let (_, errors) = buildPipeline(pipeline(thingModel: options + ", product_sn: p, device_sn: d"))
        #expect(errors.contains { $0.contains(expected) && $0.hasPrefix("test.yaml:5:") }, "\(errors)")
    }

    @Test func snThatCannotBeATopicLevelIsRefused() {
        let (_, errors) = buildPipeline(pipeline(thingModel: "product_sn: 'a/b', device_sn: d"))
        #expect(errors == ["test.yaml:5:55: error: 'product_sn' may only use letters, digits and - _ @ : (it is part of every topic), got 'a/b'"])
    }

    @Test func aTopicOverIoTCoresLimitIsRefused() {
        let long = String(repeating: "d", count: 100)
        let (_, errors) = buildPipeline(pipeline(thingModel: "product_sn: p, device_sn: \(long)"))
        #expect(errors.contains { $0.contains("IoT-Core allows at most 128") })
    }
}
