import Foundation
import Logging
import Synchronization
import Testing
import UplinkCore
@testable import UplinkPlugins

/// What a source hears about a chunk it sent: the status its acknowledgement finished with.
private final class AcknowledgementProbe: Sendable {
    private let statuses = Mutex<[DeliveryStatus]>([])

    func token() -> Acknowledgement {
        Acknowledgement { status in self.statuses.withLock { $0.append(status) } }
    }

    var heard: [DeliveryStatus] { statuses.withLock { $0 } }
}

/// Runs a transform over chunks (each with a fresh acknowledgement from `probe`) and collects what leaves its
/// default output and each of `outputs` (named outputs nobody reads are left out of `outputs`). The chunks that
/// come out are released before returning, so the probe then has heard of every one a sink would have answered.
private func drive<T: TransformStage>(
    _ stage: T, _ chunks: [[T.Input]], probe: AcknowledgementProbe, outputs: [String] = [],
    resolveOutputs: DeliveryStatus? = nil, answers: [String: DeliveryStatus] = [:], dataDirectory: String = "/nonexistent"
) async throws -> (events: [String: [T.Output]], metrics: ComponentMetrics) {
    let input = EventChannel<T.Input>(capacity: 1 << 16)
    input.addProducer()
    for events in chunks {
        var chunk = EventChunk(events, acknowledgements: Acknowledgements([probe.token()]))
        _ = chunk.measureByteCount()  // as the upstream stage's outbox does
        try await input.send(chunk)
    }
    input.finishProducer()
    let main = EventChannel<T.Output>(capacity: 1 << 16)
    main.addProducer()
    var named: [String: [any EventEdge<T.Output>]] = [:]
    var channels: [String: EventChannel<T.Output>] = ["": main]
    for name in outputs {
        let channel = EventChannel<T.Output>(capacity: 1 << 16)
        channel.addProducer()
        named[name] = [channel]
        channels[name] = channel
    }
    // Outputs nobody reads are declared with no edges, as the runtime declares every output the stage has.
    for name in (stage as? any NamedOutputStage)?.outputNames ?? [] where named[name] == nil { named[name] = [] }
    let metrics = ComponentMetrics()
    let context = ComponentContext(
        id: "t", type: "test", role: .transform, logger: Logger(label: "test"), metrics: metrics,
        dataDirectory: dataDirectory)
    try await stage.run(
        context: context, input: Inbox(channel: input, metrics: metrics),
        output: Outbox(channels: [main], named: named, metrics: metrics))
    var collected: [String: [T.Output]] = [:]
    for (name, channel) in channels {
        channel.finishProducer()
        var events: [T.Output] = []
        while let chunk = await channel.next() {
            if let status = resolveOutputs ?? answers[name] { chunk.acknowledgements.resolve(status) }
            events += chunk.events
        }
        collected[name] = events
    }
    return (collected, metrics)
}

private func records(_ list: [Fields]) -> [Record] {
    list.map { Record(fields: $0, origin: EventOrigin(sourceID: "in"), timestamp: 1) }
}

private func filter(_ options: String) throws -> FilterTransform<Record> {
    try builtTransform("t", in: edgePipeline("type: filter, \(options)"), as: FilterTransform<Record>.self)
}

/// `stdin -> json (mode: json) -> t -> stdout`, `t` written on line 5 in flow style.
private func edgePipeline(_ options: String, sink: String = "t") -> String {
    """
    sources:
      in: { type: stdin }
    transforms:
      wrap: { type: json, inputs: [in], mode: json }
      t: { inputs: [wrap], \(options) }
    sinks:
      out: { type: stdout, inputs: [\(sink)] }
    """
}

@Suite struct FilterTransformTests {
    @Test func passesWhatHoldsAndCountsWhatIsFiltered() async throws {
        let stage = try filter("condition: '.temp > -40 && .temp < 125'")
        let probe = AcknowledgementProbe()
        let (events, metrics) = try await drive(
            stage, [records([["temp": .int(20)], ["temp": .int(500)], ["temp": .double(-3.5)]])], probe: probe)
        #expect(events[""]!.map(\.json) == [#"{"temp":20}"#, #"{"temp":-3.5}"#])
        #expect(metrics.droppedEvents(reason: .filtered) == 1)
        // The chunk went on: its answer is the sink's, and nobody here answered.
        #expect(probe.heard == [.dropped])
    }

    @Test func aChunkFilteredEntirelyIsAnsweredAsDelivered() async throws {
        let stage = try filter("condition: '.temp < 0'")
        let probe = AcknowledgementProbe()
        let (events, metrics) = try await drive(stage, [records([["temp": .int(1)], ["temp": .int(2)]])], probe: probe)
        #expect(events[""]!.isEmpty)
        #expect(metrics.droppedEvents(reason: .filtered) == 2)
        #expect(probe.heard == [.delivered], "a tail checkpoint must move past filtered lines")
    }

    @Test func bytesSentAreThoseOfTheEventsKept() async throws {
        // The first chunk passes whole (its byte count, measured upstream, goes on with it); the second loses one
        // record (counted again).
        let stage = try filter("condition: '.temp < 100'")
        let first = records([["temp": .int(20), "site": .string("plant-4")], ["temp": .int(21)]])
        let second = records([["temp": .int(500), "note": .string("far too hot")], ["temp": .double(-3.5)]])
        let (events, metrics) = try await drive(stage, [first, second], probe: AcknowledgementProbe())
        #expect(events[""]!.count == 3)
        #expect(metrics.snapshot.receivedBytes == Record.totalByteCount(of: first + second))
        #expect(metrics.snapshot.sentBytes == Record.totalByteCount(of: events[""]!))
    }

    @Test func onErrorDropKeepAndDeadLetter() async throws {
        let input = records([["temp": .string("hot")], ["temp": .int(30)]])
        let dropping = try filter("condition: '.temp > 25'")
        var (events, metrics) = try await drive(dropping, [input], probe: AcknowledgementProbe())
        #expect(events[""]!.map(\.json) == [#"{"temp":30}"#])
        #expect(metrics.droppedEvents(reason: .processingError) == 1)
        #expect(metrics.snapshot.errors == 1)

        let keeping = try filter("condition: '.temp > 25', on_error: keep")
        (events, metrics) = try await drive(keeping, [input], probe: AcknowledgementProbe())
        #expect(events[""]!.count == 2)
        #expect(metrics.snapshot.droppedEvents == 0)

        let directory = try temporaryDirectory()
        let letters = try filter("condition: '.temp > 25', on_error: dead_letter")
        (events, metrics) = try await drive(letters, [input], probe: AcknowledgementProbe(), dataDirectory: directory)
        #expect(events[""]!.count == 1)
        #expect(metrics.droppedEvents(reason: .deadLetter) == 1)
        let file = try String(contentsOfFile: directory + "/t/dead-letters.jsonl", encoding: .utf8)
        #expect(file.contains("condition: '>' cannot compare string \\\"hot\\\" with int 25"))
    }

    @Test func filtersMessagesByTopicAndJSONBody() async throws {
        let stage = try builtTransform(
            "t",
            in: """
                sources:
                  in: { type: stdin }
                transforms:
                  wrap: { type: json, inputs: [in], mode: json }
                  model: { type: thing_model, inputs: [wrap], product_sn: abcdefgh12345678, device_sn: device001 }
                  t: { type: filter, inputs: [model], condition: 'ends_with(.topic, "/property/post") && .params.temp.value > 30' }
                sinks:
                  out: { type: stdout, inputs: [t] }
                """, as: FilterTransform<Message>.self)
        let hot = Message(topic: "/sys/a/b/thing/property/post", body: Array(#"{"params":{"temp":{"value":31}}}"#.utf8))
        let cold = Message(topic: "/sys/a/b/thing/property/post", body: Array(#"{"params":{"temp":{"value":3}}}"#.utf8))
        let (events, _) = try await drive(stage, [[hot, cold]], probe: AcknowledgementProbe())
        #expect(events[""]!.map(\.text) == [#"{"params":{"temp":{"value":31}}}"#])
    }

    @Test func configurationErrorsAreLocatedInsideTheExpression() {
        // Line 5: `  t: { inputs: [wrap], type: filter, condition: '.temp > 3 && contain(.x, "a")' }`
        let (_, errors) = buildPipeline(edgePipeline("type: filter, condition: '.temp > 3 && contain(.x, \"a\")'"))
        #expect(errors == ["test.yaml:5:63: error: 'condition': unknown function 'contain'; did you mean 'contains'?"])
        let (_, missing) = buildPipeline(edgePipeline("type: filter"))
        #expect(missing.count == 1)
        #expect(missing.first?.contains("missing required option 'condition'") == true)
        let (_, notBool) = buildPipeline(edgePipeline("type: filter, condition: '.temp + 1'"))
        #expect(notBool.first?.contains("a condition must give true or false") == true)
    }
}

@Suite struct RemapTransformTests {
    @Test func operationsRunInTheOrderWritten() async throws {
        let stage = try builtTransform(
            "t",
            in: edgePipeline(
                "type: remap, rename: { t: temp }, set: { temp_f: '.temp * 9 / 5 + 32', site: '\"plant-4\"' }, remove: [raw, temp]"),
            as: RemapTransform.self)
        let (events, _) = try await drive(
            stage, [records([["t": .int(20), "raw": .string("x"), "hum": .int(40)]])], probe: AcknowledgementProbe())
        #expect(events[""]!.map(\.json) == [#"{"hum":40,"temp_f":68.0,"site":"plant-4"}"#])
    }

    @Test func bytesSentAreThoseOfTheRecordsChanged() async throws {
        let stage = try builtTransform(
            "t", in: edgePipeline("type: remap, set: { site: '\"plant-4\"' }, remove: [raw]"), as: RemapTransform.self)
        let input = records([["t": .int(20), "raw": .string("a long raw line")], ["t": .int(21)]])
        let (events, metrics) = try await drive(stage, [input], probe: AcknowledgementProbe())
        #expect(metrics.snapshot.receivedBytes == Record.totalByteCount(of: input))
        #expect(metrics.snapshot.sentBytes == Record.totalByteCount(of: events[""]!))
        #expect(metrics.snapshot.sentBytes != metrics.snapshot.receivedBytes)
    }

    /// The byte count measured upstream is adjusted by each change (no walk of the records again); it must be what
    /// a walk gives, whatever the operations did: a new field, a replaced one of another type, a rename onto an
    /// existing name and of duplicates, a remove, a name that is equal only as a Swift string (the Kelvin sign is
    /// "K"), and records dropped by `on_error` after some operations ran.
    @Test func bytesSentAreAdjustedByEachChange() async throws {
        let stage = try builtTransform(
            "t",
            in: edgePipeline(
                "type: remap, set: { site: '\"plant-4\"', t: '.t * 2', K: '(.K ?? 0) + 1', f: '10 / .t' }, rename: { a: b }, remove: [raw]"),
            as: RemapTransform.self)
        let input = records([
            ["t": .int(20), "raw": .string("a long raw line"), "a": .string("x"), "b": .int(1), "a2": .null],
            ["t": .double(2.5), "a": .int(1), "site": .string("old site name"), "\u{212A}": .int(4)],
            ["t": .int(0), "a": .string("dropped: 10 / 0 after the other operations changed it")],
            ["t": .string("dropped at the first set"), "raw": .string("r")],
        ])
        var duplicated = input
        duplicated[1].fields.append("a", .string("a duplicate name"))
        duplicated[1].fields.append("b", .bool(true))
        let (events, metrics) = try await drive(stage, [duplicated], probe: AcknowledgementProbe())
        #expect(events[""]!.count == 2)
        #expect(metrics.snapshot.receivedBytes == Record.totalByteCount(of: duplicated))
        #expect(metrics.snapshot.sentBytes == Record.totalByteCount(of: events[""]!))
    }

    @Test func renameKeepsThePositionAndReplacesAnExistingField() throws {
        let stage = RemapTransform(operations: [.rename(from: "a", to: "c")])
        var failures = ExpressionFailures(
            policy: .drop, deadLetters: DeadLetterSettings(),
            context: ComponentContext(
                id: "t", type: "remap", role: .transform, logger: Logger(label: "t"), metrics: ComponentMetrics(),
                dataDirectory: "/nonexistent"))
        var record = Record(fields: ["a": .int(1), "b": .int(2), "c": .int(3)], timestamp: 0)
        var byteDelta = 0
        let before = record.byteCount
        #expect(stage.apply(to: &record, failures: &failures, byteDelta: &byteDelta))
        #expect(record.json == #"{"c":1,"b":2}"#)
        #expect(record.byteCount == before + byteDelta)
        var missing = Record(fields: ["b": .int(2)], timestamp: 0)
        #expect(stage.apply(to: &missing, failures: &failures, byteDelta: &byteDelta))
        #expect(missing.json == #"{"b":2}"#)
    }

    @Test func aFailingSetFollowsOnError() async throws {
        let input = records([["temp": .string("x"), "n": .int(1)], ["temp": .int(10), "n": .int(2)]])
        let dropping = try builtTransform("t", in: edgePipeline("type: remap, set: { f: '.temp * 2' }"), as: RemapTransform.self)
        var (events, metrics) = try await drive(dropping, [input], probe: AcknowledgementProbe())
        #expect(events[""]!.map(\.json) == [#"{"temp":10,"n":2,"f":20}"#])
        #expect(metrics.droppedEvents(reason: .processingError) == 1)
        let keeping = try builtTransform(
            "t", in: edgePipeline("type: remap, on_error: keep, set: { f: '.temp * 2', g: '.n + 1' }"), as: RemapTransform.self)
        (events, metrics) = try await drive(keeping, [input], probe: AcknowledgementProbe())
        #expect(events[""]!.map(\.json) == [#"{"temp":"x","n":1,"g":2}"#, #"{"temp":10,"n":2,"f":20,"g":3}"#])
    }

    /// Records are changed in the chunk's own array: one that fails leaves the others in order, and its dead letter
    /// holds it as it arrived, not as the operations before the failing one left it.
    @Test func aDeadLetterHoldsTheRecordAsItArrived() async throws {
        let input = records([
            ["temp": .int(10), "n": .int(1)], ["temp": .string("x"), "n": .int(2)], ["temp": .int(30), "n": .int(3)],
        ])
        let directory = try temporaryDirectory()
        let stage = try builtTransform(
            "t",
            in: edgePipeline(
                "type: remap, on_error: dead_letter, rename: { n: m }, set: { site: '\"p\"', f: '.temp * 2' }"),
            as: RemapTransform.self)
        let (events, metrics) = try await drive(stage, [input], probe: AcknowledgementProbe(), dataDirectory: directory)
        #expect(events[""]!.map(\.json) == [#"{"temp":10,"m":1,"site":"p","f":20}"#, #"{"temp":30,"m":3,"site":"p","f":60}"#])
        #expect(metrics.droppedEvents(reason: .deadLetter) == 1)
        let file = try String(contentsOfFile: directory + "/t/dead-letters.jsonl", encoding: .utf8)
        #expect(file.contains(Data(#"{"temp":"x","n":2}"#.utf8).base64EncodedString()))
    }

    @Test func errorsInSetAreLocated() {
        let (_, errors) = buildPipeline(edgePipeline("type: remap, set: { f: '.temp * \"x\"' }"))
        #expect(errors == [#"test.yaml:5:56: error: 'set.f': '*' needs an int or a float, but "x" is a string"#])
        let (_, empty) = buildPipeline(edgePipeline("type: remap"))
        #expect(empty.first?.contains("remap needs at least one of 'set', 'rename' or 'remove'") == true)
    }
}

@Suite struct RouteTransformTests {
    private func route(_ routes: String, readers: String = "[split.alarms, split.readings]") throws -> (Topology, RouteTransform<Record>) {
        let yaml = """
            sources:
              in: { type: stdin }
            transforms:
              wrap: { type: json, inputs: [in], mode: json }
              split: { type: route, inputs: [wrap], routes: \(routes) }
            sinks:
              out: { type: stdout, inputs: \(readers) }
            """
        let (topology, errors) = buildPipeline(yaml)
        guard let topology, case .transform(let stage) = topology.node("split")?.stage,
            let typed = stage as? RouteTransform<Record>
        else { throw PipelineInvalid(errors: errors) }
        return (topology, typed)
    }

    @Test func eachRecordGoesToEveryRouteItMatchesAndTheRestToUnmatched() async throws {
        let (topology, stage) = try route("{ alarms: '.level == \"alarm\"', readings: 'exists(.temp)' }")
        #expect(stage.outputNames == ["alarms", "readings", "_unmatched"])
        #expect(topology.node("out")?.inputReferences.map(\.reference) == ["split.alarms", "split.readings"])
        #expect(topology.consumers(of: "split", output: "alarms") == ["out"])
        #expect(topology.consumers(of: "split").isEmpty)
        let input = records([
            ["level": .string("alarm"), "temp": .int(130)], ["temp": .int(20)], ["level": .string("info")],
        ])
        let (events, metrics) = try await drive(
            stage, [input], probe: AcknowledgementProbe(), outputs: ["alarms", "readings", "_unmatched"])
        #expect(events["alarms"]!.map(\.json) == [#"{"level":"alarm","temp":130}"#])
        #expect(events["readings"]!.map(\.json) == [#"{"level":"alarm","temp":130}"#, #"{"temp":20}"#])
        #expect(events["_unmatched"]!.map(\.json) == [#"{"level":"info"}"#])
        #expect(events[""]!.isEmpty)
        #expect(metrics.snapshot.droppedEvents == 0)
    }

    @Test func unreadOutputsDropCountedAndAnswerTheChunk() async throws {
        let (_, stage) = try route("{ alarms: '.level == \"alarm\"' }", readers: "[split.alarms]")
        let probe = AcknowledgementProbe()
        // Nobody reads `_unmatched`: the first chunk reaches nobody (answered delivered); the second partly.
        let (events, metrics) = try await drive(
            stage,
            [records([["level": .string("info")]]), records([["level": .string("alarm")], ["level": .string("x")]])],
            probe: probe, outputs: ["alarms"], resolveOutputs: .delivered)
        #expect(events["alarms"]!.count == 1)
        #expect(metrics.droppedEvents(reason: .unmatched) == 2)
        #expect(probe.heard == [.delivered, .delivered])
    }

    /// A record in two routes: the alarms branch delivers it, the readings branch loses it (a stop). The chunk
    /// is not delivered, so a file tail does not checkpoint past it. (With the chunk's token in both outputs, the
    /// alarms branch's answer stood for the other.)
    @Test func aChunkInSeveralRoutesIsDeliveredOnlyWhenEveryRouteDeliveredIt() async throws {
        let (_, stage) = try route("{ alarms: '.level == \"alarm\"', readings: 'exists(.temp)' }")
        let input = records([["level": .string("alarm"), "temp": .int(130)]])
        let lost = AcknowledgementProbe()
        _ = try await drive(stage, [input], probe: lost, outputs: ["alarms", "readings"], answers: ["alarms": .delivered])
        #expect(lost.heard == [.dropped])
        let both = AcknowledgementProbe()
        _ = try await drive(
            stage, [input], probe: both, outputs: ["alarms", "readings"],
            answers: ["alarms": .delivered, "readings": .delivered])
        #expect(both.heard == [.delivered])
    }

    @Test func aRuntimeErrorTakesTheRecordOutOfEveryRouteUnlessKept() async throws {
        let routes = "{ hot: '.temp > 50', any: 'true' }"
        let input = records([["temp": .string("n/a")], ["temp": .int(60)]])
        let (_, dropping) = try route(routes, readers: "[split.hot, split.any]")
        var (events, metrics) = try await drive(dropping, [input], probe: AcknowledgementProbe(), outputs: ["hot", "any"])
        #expect(events["any"]!.count == 1)
        #expect(metrics.droppedEvents(reason: .processingError) == 1)
        let (_, keeping) = try route(routes + ", on_error: keep", readers: "[split.hot, split.any]")
        (events, metrics) = try await drive(keeping, [input], probe: AcknowledgementProbe(), outputs: ["hot", "any"])
        #expect(events["any"]!.count == 2)
        #expect(events["hot"]!.count == 1)
    }

    @Test func theTopologyChecksOutputNames() {
        func errors(_ readers: String, routes: String = "{ alarms: 'true', readings: 'true' }") -> [String] {
            let yaml = """
                sources:
                  in: { type: stdin }
                transforms:
                  wrap: { type: json, inputs: [in], mode: json }
                  split: { type: route, inputs: [wrap], routes: \(routes) }
                sinks:
                  out: { type: stdout, inputs: \(readers) }
                """
            return buildPipeline(yaml).1
        }
        #expect(errors("[split.alarm]") == ["test.yaml:7:33: error: 'split' has no output 'alarm'; did you mean 'split.alarms'?"])
        #expect(errors("[split]") == [
            "test.yaml:7:33: error: 'split' (route) sends its events through named outputs: read one of split.alarms, split.readings, split._unmatched"
        ])
        #expect(errors("[wrap.x]") == ["test.yaml:7:33: error: 'wrap' (json) has no named outputs: read it as 'wrap', not 'wrap.x'"])
        #expect(errors("[split.alarms, split.alarms]").first?.contains("input 'split.alarms' is listed twice") == true)
        #expect(errors("[split._unmatched]").isEmpty)
        #expect(errors("[split.alarms]", routes: "{ _x: 'true' }").first?.contains("does not start with '_'") == true)
        #expect(errors("[split.alarms]", routes: "{ alarms: '.a >' }") == ["test.yaml:5:64: error: 'routes.alarms': expected a value, a field (.name) or a function call, found the end of the expression"])
    }

    @Test func routesMessagesByTopic() async throws {
        let stage = RouteTransform<Message>(routes: [
            .init(name: "events", condition: try Expression(condition: #"ends_with(.topic ?? "", "/event/post")"#))
        ])
        let event = Message(topic: "/x/event/post", body: Array(#"{"a":1}"#.utf8))
        let post = Message(topic: "/x/property/post", body: Array(#"{"b":2}"#.utf8))
        let (events, _) = try await drive(stage, [[event, post]], probe: AcknowledgementProbe(), outputs: ["events", "_unmatched"])
        #expect(events["events"]!.map(\.topic) == ["/x/event/post"])
        #expect(events["_unmatched"]!.map(\.topic) == ["/x/property/post"])
    }

    @Test func theGraphDrawsNamedOutputs() throws {
        let (topology, _) = try route("{ alarms: 'true', readings: 'true' }")
        #expect(topology.dot.contains(#""split" -> "out" [label="alarms: record"];"#))
        #expect(topology.dot.contains(#""split" -> "out" [label="readings: record"];"#))
        #expect(topology.mermaid.contains("-->|alarms: record|"))
    }
}
