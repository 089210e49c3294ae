import Foundation
import Testing
import UplinkCore
import UplinkPlugins

/// Process plugins in real child processes (small Python and shell scripts), inside in-process pipelines.
@Suite(.timeLimit(.minutes(2))) struct ProcessPluginTests {
    /// A transform that adds `doubled` and acknowledges each batch with its outputs in one message.
    static let doubler = """
        init = handshake("doubler", "transform", input="record", output="record")
        factor = init["config"].get("factor", 2)
        while True:
            message = receive()
            if message is None or message["type"] == "shutdown":
                break
            events = [dict(event, doubled=event["n"] * factor) for event in message["events"]]
            send({"type": "ack", "id": message["id"], "events": events})
        """

    @Test func recordsGoThroughATransformInOrderAndAreAcknowledged() async throws {
        let fixture = try ProcessFixture()
        try fixture.python("doubler.py", Self.doubler)
        let pipeline = try fixture.pipeline(
            """
            sources:
              numbers: { type: counter, count: 1000, chunk: 70 }
            transforms:
              double:
                type: process
                inputs: [numbers]
                command: [python3, doubler.py]
                config: { factor: 3 }
                batch_max_events: 50
            sinks:
              out: { type: collect, inputs: [double] }
            """)
        try await fixture.run(pipeline)
        let lines = fixture.collected.all
        #expect(lines.count == 1000)
        #expect(lines.first == #"{"n":0,"doubled":0}"#)
        #expect(lines == (0..<1000).map { #"{"n":\#($0),"doubled":\#($0 * 3)}"# })
        #expect(fixture.delivered == 1000)
        #expect(fixture.dropped == 0)
        #expect(pipeline.metrics["double"]?.snapshot.sentEvents == 1000)
    }

    @Test func aSinkAcknowledgesWhatItDelivered() async throws {
        let fixture = try ProcessFixture()
        try fixture.python(
            "sink.py",
            """
            init = handshake("file-sink", "sink", input="record")
            with open(init["config"]["path"], "a") as out:
                while True:
                    message = receive()
                    if message is None or message["type"] == "shutdown":
                        break
                    for event in message["events"]:
                        out.write(json.dumps(event) + "\\n")
                    out.flush()
                    send({"type": "ack", "id": message["id"]})
            """)
        let pipeline = try fixture.pipeline(
            """
            sources:
              numbers: { type: counter, count: 500, chunk: 100 }
            sinks:
              out:
                type: process
                inputs: [numbers]
                command: [python3, sink.py]
                batch_max_events: 30
                config: { path: \(fixture.path("out.jsonl")) }
            """)
        try await fixture.run(pipeline)
        let lines = fixture.read("out.jsonl").split(separator: "\n")
        #expect(lines.count == 500)
        #expect(lines.last == #"{"n": 499}"#)
        // Each chunk of 100 was cut into 4 batches; it counts as delivered only once all 4 were acknowledged.
        #expect(fixture.delivered == 500)
        #expect(fixture.dropped == 0)
    }

    @Test func aSinkThatGivesABatchUpFailsItsAcknowledgements() async throws {
        let fixture = try ProcessFixture()
        try fixture.python(
            "picky.py",
            """
            handshake("picky", "sink", input="record")
            while True:
                message = receive()
                if message is None or message["type"] == "shutdown":
                    break
                if any(event["n"] == 7 for event in message["events"]):
                    send({"type": "ack", "id": message["id"], "status": "failed", "error": "7 is unlucky"})
                else:
                    send({"type": "ack", "id": message["id"]})
            """)
        let pipeline = try fixture.pipeline(
            """
            sources:
              numbers: { type: counter, count: 20, chunk: 5 }
            sinks:
              out: { type: process, inputs: [numbers], command: [python3, picky.py] }
            """)
        try await fixture.run(pipeline)
        #expect(fixture.delivered == 15)
        #expect(fixture.failed == 5)
        #expect(pipeline.metrics["out"]?.snapshot.errors == 1)
    }

    @Test func aTransformThatGivesABatchUpDropsItWhole() async throws {
        let fixture = try ProcessFixture()
        try fixture.python(
            "picky.py",
            """
            handshake("picky", "transform", input="record", output="record")
            while True:
                message = receive()
                if message is None or message["type"] == "shutdown":
                    break
                send({"type": "events", "id": message["id"], "events": message["events"]})
                if any(event["n"] == 7 for event in message["events"]):
                    send({"type": "error", "id": message["id"], "message": "7 is unlucky"})
                else:
                    send({"type": "ack", "id": message["id"]})
            """)
        let pipeline = try fixture.pipeline(
            """
            sources:
              numbers: { type: counter, count: 20, chunk: 5 }
            transforms:
              picky: { type: process, inputs: [numbers], command: [python3, picky.py] }
            sinks:
              out: { type: collect, inputs: [picky] }
            """)
        try await fixture.run(pipeline)
        #expect(fixture.collected.all == (0..<20).filter { !(5..<10).contains($0) }.map { #"{"n":\#($0)}"# })
        #expect(pipeline.metrics["picky"]?.snapshot.droppedEvents == 5)
        #expect(pipeline.metrics["picky"]?.snapshot.errors == 1)
        #expect(fixture.delivered == 15)
    }

    @Test func aCrashedTransformIsRestartedAndNothingIsLostOrDuplicated() async throws {
        let fixture = try ProcessFixture()
        // Crashes twice: on its first run after emitting (but not acknowledging) its third batch, and on its
        // second run at once after the hello. The restarted plugin must get every unacknowledged batch again.
        try fixture.python(
            "crashy.py",
            """
            handshake("crashy", "transform", input="record", output="record")
            runs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs")
            with open(runs, "a") as f:
                f.write("run\\n")
            run = len(open(runs).read().split())
            if run == 2:
                os._exit(9)
            seen = 0
            while True:
                message = receive()
                if message is None or message["type"] == "shutdown":
                    break
                seen += 1
                send({"type": "events", "id": message["id"], "events": message["events"]})
                if run == 1 and seen == 3:
                    os._exit(3)
                send({"type": "ack", "id": message["id"]})
            """)
        let pipeline = try fixture.pipeline(
            """
            sources:
              numbers: { type: counter, count: 400, chunk: 25 }
            transforms:
              crashy:
                type: process
                inputs: [numbers]
                command: [python3, crashy.py]
                restart_backoff: 10ms
                max_in_flight: 3
                batch_max_events: 10
            sinks:
              out: { type: collect, inputs: [crashy] }
            """)
        try await fixture.run(pipeline)
        let numbers = fixture.collected.all
        #expect(numbers.count == 400)
        #expect(Set(numbers).count == 400, "no record is forwarded twice")
        #expect(numbers == (0..<400).map { #"{"n":\#($0)}"# })
        #expect(fixture.delivered == 400)
        #expect(fixture.read("runs").split(separator: "\n").count == 3)
        #expect(pipeline.metrics["crashy"]?.snapshot.errors == 2)
    }

    @Test func aCrashedSinkGetsItsUnacknowledgedBatchesAgain() async throws {
        let fixture = try ProcessFixture()
        try fixture.python(
            "flaky.py",
            """
            init = handshake("flaky", "sink", input="record")
            marker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crashed")
            with open(init["config"]["path"], "a") as out:
                while True:
                    message = receive()
                    if message is None or message["type"] == "shutdown":
                        break
                    if any(event["n"] == 123 for event in message["events"]) and not os.path.exists(marker):
                        open(marker, "w").close()
                        os._exit(1)
                    for event in message["events"]:
                        out.write(str(event["n"]) + "\\n")
                    out.flush()
                    send({"type": "ack", "id": message["id"]})
            """)
        let pipeline = try fixture.pipeline(
            """
            sources:
              numbers: { type: counter, count: 300, chunk: 20 }
            sinks:
              out:
                type: process
                inputs: [numbers]
                command: [python3, flaky.py]
                restart_backoff: 10ms
                config: { path: \(fixture.path("delivered.txt")) }
            """)
        try await fixture.run(pipeline)
        let delivered = fixture.read("delivered.txt").split(separator: "\n").compactMap { Int($0) }
        #expect(delivered.sorted() == Array(0..<300))
        #expect(fixture.delivered == 300)
        #expect(FileManager.default.fileExists(atPath: fixture.path("crashed")))
    }

    @Test func aHangingPluginTimesOutAndIsGivenUpOn() async throws {
        let fixture = try ProcessFixture()
        // In sh rather than Python: its start-up is instant even on a loaded machine, so the hello is never late.
        try fixture.write(
            "hang.sh",
            """
            #!/bin/sh
            read -r init
            printf '%s\\n' '{"type":"hello","protocol":1,"name":"sleepy","input":"record","output":"record"}'
            while read -r line; do :; done
            """, executable: true)
        let pipeline = try fixture.pipeline(
            """
            shutdown_timeout: 5s
            sources:
              numbers: { type: counter, count: 10, chunk: 10, endless: true }
            transforms:
              sleepy:
                type: process
                inputs: [numbers]
                command: [./hang.sh]
                timeout: 1s
                restart_backoff: 10ms
                max_restarts: 1
            sinks:
              out: { type: collect, inputs: [sleepy] }
            """)
        let clock = ContinuousClock()
        let start = clock.now
        await #expect {
            try await fixture.run(pipeline)
        } throws: { error in
            let text = String(describing: error)
            return text.contains("component 'sleepy' failed")
                && text.contains("process plugin `./hang.sh`: no answer within 1.0 seconds (timeout); killed")
                && text.contains("gave up after 2 failures in a row (max_restarts: 1)")
        }
        // Two 1 s timeouts and a 5 s shutdown bound; a plugin left hanging would run into the time limit instead.
        #expect(clock.now - start < .seconds(30))
        #expect(fixture.collected.all.isEmpty)
        // What was never answered is not reported as delivered.
        #expect(fixture.delivered == 0)
    }

    @Test func aHandshakeThatNeverComesTimesOut() async throws {
        let fixture = try ProcessFixture()
        try fixture.write("silent.sh", "#!/bin/sh\nexec sleep 30\n", executable: true)
        let pipeline = try fixture.pipeline(
            """
            sources:
              numbers: { type: counter, count: 1 }
            sinks:
              out: { type: process, inputs: [numbers], command: [./silent.sh], timeout: 200ms, max_restarts: 0 }
            """)
        await #expect {
            try await fixture.run(pipeline)
        } throws: { error in
            String(describing: error).contains("process plugin `./silent.sh`: no hello within 0.2 seconds of its init")
        }
    }

    struct BadHandshake: Sendable, CustomTestStringConvertible {
        var script: String
        var expected: String
        var testDescription: String { expected }
    }

    @Test(arguments: [
        BadHandshake(
            script: #"print("hello there", flush=True)"#,
            expected: "expected a hello, got not a JSON object: 'hello there'"),
        BadHandshake(
            script:
                #"receive(); send({"type": "hello", "protocol": 2, "name": "future", "input": "record", "output": "record"})"#,
            expected: "it speaks protocol 2; this uplink speaks 1"),
        BadHandshake(
            script:
                #"receive(); send({"type": "hello", "protocol": 1, "name": "rawish", "input": "record", "output": "raw"})"#,
            expected: "'rawish' emits raw events, but output_kind is record"),
        BadHandshake(
            script:
                #"receive(); send({"type": "hello", "protocol": 1, "name": "sinky", "role": "sink", "input": "record"})"#,
            expected: "'sinky' is a sink, not a transform"),
        BadHandshake(
            script: #"receive(); send({"type": "hello", "protocol": 1, "name": "mute", "input": "record"})"#,
            expected: "'mute''s hello must declare \"output\""),
        BadHandshake(
            script: #"receive(); send({"type": "error", "message": "missing API key"})"#,
            expected: "refused to start: missing API key"),
        BadHandshake(script: "sys.exit(4)", expected: "exited before its hello (exited with status 4)"),
    ])
    func aWrongHandshakeIsAClearError(_ bad: BadHandshake) async throws {
        let fixture = try ProcessFixture()
        try fixture.python("bad.py", bad.script + "\n")
        let pipeline = try fixture.pipeline(
            """
            sources:
              numbers: { type: counter, count: 3 }
            transforms:
              bad: { type: process, inputs: [numbers], command: [python3, bad.py], max_restarts: 0, restart_backoff: 1ms }
            sinks:
              out: { type: collect, inputs: [bad] }
            """)
        var message = ""
        do {
            try await fixture.run(pipeline)
        } catch {
            message = String(describing: error)
        }
        #expect(
            message.contains("component 'bad' failed: process plugin `python3 bad.py`: \(bad.expected)"), "\(message)")
    }

    @Test func aSourceSendsEventsAndIsToldWhenTheyAreDelivered() async throws {
        let fixture = try ProcessFixture()
        try fixture.python(
            "ticks.py",
            """
            handshake("ticks", "source", output="record")
            for i in range(5):
                send({"type": "events", "id": i, "events": [{"tick": i}, {"tick": i, "copy": True}]})
            acked = []
            while len(acked) < 5:
                message = receive()
                if message["type"] == "ack":
                    acked.append((message["id"], message["status"]))
            with open("acks.txt", "w") as f:
                f.write(" ".join("%d:%s" % pair for pair in sorted(acked)))
            send({"type": "done"})
            """)
        let pipeline = try fixture.pipeline(
            """
            sources:
              ticks: { type: process, command: [python3, ticks.py] }
            sinks:
              out: { type: collect, inputs: [ticks] }
            """)
        try await fixture.run(pipeline)
        #expect(fixture.collected.all.count == 10)
        #expect(fixture.collected.all.first == #"{"tick":0}"#)
        #expect(fixture.read("acks.txt") == "0:delivered 1:delivered 2:delivered 3:delivered 4:delivered")
    }

    @Test func aShellSourceThatNeverReadsStdinIsStoppedWithThePipeline() async throws {
        let fixture = try ProcessFixture()
        try fixture.write(
            "forever.sh",
            """
            #!/bin/sh
            read init
            printf '%s\\n' '{"type":"hello","protocol":1,"name":"forever","output":"raw"}'
            while :; do
              printf '%s\\n' '{"type":"events","events":[{"text":"tick"}]}'
              sleep 0.05
            done
            """, executable: true)
        let pipeline = try fixture.pipeline(
            """
            sources:
              ticks: { type: process, command: [./forever.sh], output_kind: raw }
            transforms:
              wrap: { type: json, inputs: [ticks] }
            sinks:
              out: { type: collect, inputs: [wrap] }
            """)
        let clock = ContinuousClock()
        let start = clock.now
        async let running: Void = fixture.run(pipeline)
        for _ in 0..<400 where fixture.collected.all.count < 3 { try await Task.sleep(for: .milliseconds(10)) }
        let stopping = clock.now
        pipeline.stop()
        try await running
        #expect(fixture.collected.all.count >= 3)
        #expect(fixture.collected.all.first == #"{"message":"tick"}"#)
        // Shutdown, then SIGTERM after a second to a plugin that never reads its stdin: the stop itself is
        // bounded (measured from stop(), so a loaded machine's slow start-up does not count).
        #expect(clock.now - stopping < .seconds(20))
        _ = start
    }

    @Test func theInFlightWindowBoundsWhatThePluginHolds() async throws {
        let fixture = try ProcessFixture()
        // Holds batches without acknowledging them; with 3 held, waits to see whether a 4th arrives (it must
        // not: max_in_flight is 3), then acknowledges them all. Reads stdin unbuffered, so "more input is
        // waiting" is exact.
        try fixture.python(
            "holder.py",
            """
            import select
            buffer = b""
            def next_line(wait):
                global buffer
                while b"\\n" not in buffer:
                    if wait is not None and not select.select([0], [], [], wait)[0]:
                        return None
                    chunk = os.read(0, 65536)
                    if not chunk:
                        return b""
                    buffer += chunk
                line, _, buffer = buffer.partition(b"\\n")
                return line
            next_line(None)
            send({"type": "hello", "protocol": 1, "name": "holder", "input": "record"})
            held, most, violations, done = [], 0, 0, False
            pending = None
            while not done:
                line = pending if pending is not None else next_line(None)
                pending = None
                if not line or json.loads(line)["type"] == "shutdown":
                    break
                held.append(json.loads(line)["id"])
                most = max(most, len(held))
                more = next_line(0.3)
                if more is not None and len(held) >= 3:
                    violations += 1
                if more is None or len(held) >= 3:
                    for id in held:
                        send({"type": "ack", "id": id})
                    held = []
                pending = more
            with open("most.txt", "w") as f:
                f.write("%d %d" % (most, violations))
            """)
        let pipeline = try fixture.pipeline(
            """
            sources:
              numbers: { type: counter, count: 100, chunk: 10 }
            sinks:
              out: { type: process, inputs: [numbers], command: [python3, holder.py], max_in_flight: 3, batch_max_events: 5 }
            """)
        try await fixture.run(pipeline)
        #expect(fixture.delivered == 100)
        let report = fixture.read("most.txt").split(separator: " ").compactMap { Int($0) }
        #expect(report.count == 2 && report[0] <= 3 && report[0] >= 1, "\(report)")
        #expect(report.last == 0, "a batch arrived while 3 were unacknowledged")
    }

    @Test func messagesTravelWithTopicAndBody() async throws {
        let fixture = try ProcessFixture()
        try fixture.python(
            "topics.py",
            """
            import base64
            handshake("topics", "transform", input="record", output="message")
            while True:
                message = receive()
                if message is None or message["type"] == "shutdown":
                    break
                out = []
                for event in message["events"]:
                    out.append({"topic": "/site/%d" % event["n"], "body": {"n": event["n"]}})
                    out.append({"body_base64": base64.b64encode(b"raw\\x00bytes").decode()})
                    out.append({"topic": 5, "body": "not a valid topic"})
                send({"type": "ack", "id": message["id"], "events": out})
            """)
        let settings = ProcessPluginSettings(
            command: ["python3", fixture.path("topics.py")], inputKind: .record, outputKind: .message)
        let outputs = try await runTransform(
            ProcessTransform<Record, Message>(settings: settings), [[Record(fields: ["n": .int(7)], timestamp: 1)]])
        let messages = outputs.flatMap(\.events)
        #expect(messages.count == 2, "the message with a numeric topic is dropped")
        #expect(messages.first?.topic == "/site/7")
        #expect(messages.first.map { String(decoding: $0.body, as: UTF8.self) } == #"{"n":7}"#)
        #expect(messages.last?.topic == nil)
        #expect(messages.last?.body == Array("raw\u{0}bytes".utf8))
    }

    @Test func rawEventsTravelAsTextOrBase64() async throws {
        let fixture = try ProcessFixture()
        try fixture.python(
            "echo.py",
            """
            handshake("echo", "transform", input="raw", output="raw")
            while True:
                message = receive()
                if message is None or message["type"] == "shutdown":
                    break
                out = [{"text": json.dumps(event)} for event in message["events"]]
                send({"type": "ack", "id": message["id"], "events": out})
            """)
        let settings = ProcessPluginSettings(
            command: ["python3", fixture.path("echo.py")], inputKind: .raw, outputKind: .raw)
        let origin = EventOrigin(sourceID: "test")
        let outputs = try await runTransform(
            ProcessTransform<RawEvent, RawEvent>(settings: settings),
            [
                [
                    RawEvent(bytes: ArraySlice("héllo".utf8), origin: origin, timestamp: 5),
                    RawEvent(bytes: [0xFF, 0x00, 0x41][...], origin: origin, timestamp: 6),
                ]
            ])
        let texts = outputs.flatMap(\.events).map { String(decoding: $0.bytes, as: UTF8.self) }
        #expect(texts == [#"{"text": "h\u00e9llo"}"#, #"{"base64": "/wBB"}"#])
        #expect(outputs.flatMap(\.events).first?.timestamp == 5)
    }
}

@Suite struct ProcessProtocolUnitTests {
    @Test func restartDelaysDoubleUpToTheCapAndProgressStartsOver() {
        var policy = RestartPolicy(
            initialBackoff: .milliseconds(100), maximumBackoff: .milliseconds(350), maxRestarts: 4)
        #expect(policy.failed(madeProgress: false) == .restart(after: .milliseconds(100)))
        #expect(policy.failed(madeProgress: false) == .restart(after: .milliseconds(200)))
        #expect(policy.failed(madeProgress: false) == .restart(after: .milliseconds(350)))
        #expect(policy.failed(madeProgress: true) == .restart(after: .milliseconds(100)))
        for _ in 0..<3 { _ = policy.failed(madeProgress: false) }
        #expect(policy.failed(madeProgress: false) == .giveUp)
        var never = RestartPolicy(initialBackoff: .seconds(1), maxRestarts: 0)
        #expect(never.failed(madeProgress: true) == .giveUp)
    }

    @Test func settingsAreReadWithLocatedErrors() {
        let yaml = """
            sources:
              s: { type: process, command: [], output_kind: rec }
              s2: { type: process, command: [z] }
            transforms:
              t: { type: process, inputs: [s2], command: [x], input_kind: raw, max_in_flight: 0 }
            sinks:
              k: { type: process, inputs: [t, s], command: [y], config: [1, 2], output_kind: raw }
            """
        let diagnostics = DiagnosticCollector()
        var config = PipelineConfig(files: ["p.yaml"])
        ConfigLoader(environment: [:]).load(
            bytes: Array(yaml.utf8), file: "p.yaml", into: &config, diagnostics: diagnostics)
        _ = TopologyBuilder(registry: Builtins.registry).build(config, diagnostics: diagnostics)
        let errors = diagnostics.diagnostics.filter { $0.severity == .error }.map(\.description)
        #expect(
            errors.contains(
                "p.yaml:2:32: error: option 'command' must name a program, for example [python3, plugin.py]"))
        #expect(
            errors.contains(
                "p.yaml:2:49: error: option 'output_kind' must be one of raw, record, message, got 'rec'; did you mean 'record'?"))
        #expect(errors.contains("p.yaml:5:63: error: option 'input_kind' is raw, but the inputs produce record events"))
        #expect(errors.contains("p.yaml:5:83: error: option 'max_in_flight' must be between 1 and 65536, got 0"))
        #expect(errors.contains("p.yaml:7:61: error: option 'config' must be a mapping, not a list"))
        #expect(errors.contains("p.yaml:7:69: error: unknown option 'output_kind'; did you mean 'input_kind'?"))
    }

    @Test func processTransformsDeclareTheirOutputKindSoSinksAreBuiltForIt() throws {
        let yaml = """
            sources:
              s: { type: stdin }
            transforms:
              t: { type: process, inputs: [s], command: [x], output_kind: message }
            sinks:
              k: { type: stdout, inputs: [t] }
            """
        let diagnostics = DiagnosticCollector()
        var config = PipelineConfig(files: ["p.yaml"])
        ConfigLoader(environment: [:]).load(
            bytes: Array(yaml.utf8), file: "p.yaml", into: &config, diagnostics: diagnostics)
        let topology = try #require(
            TopologyBuilder(registry: Builtins.registry).build(config, diagnostics: diagnostics))
        #expect(topology.node("t")?.inputKind == .raw)
        #expect(topology.node("t")?.outputKind == .message)
        #expect(topology.node("k")?.inputKind == .message)
    }
}
