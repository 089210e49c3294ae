import Logging
import Testing
import UplinkCore
@testable import UplinkPlugins

@Suite struct AggregateTransformTests {
    private func windows(_ options: String) throws -> AggregateWindows {
        try builtTransform("t", in: pipeline(stage: "aggregate", options), as: AggregateTransform.self).windows
    }

    private func record(_ fields: Fields) -> Record { Record(fields: fields, timestamp: 0) }

    /// 2026-12-05 14:00:00 UTC, a whole minute.
    private let minute: Int64 = 1_796_479_200_000

    @Test func everyFunctionOverOneWindowWithMissingNullAndText() throws {
        var table = try windows("window: 1m, fields: { temp: [mean, min, max, sum, count, first, last], hum: last }")
        var closed: [AggregateWindows.Closed] = []
        let inputs: [Fields] = [
            ["temp": .int(20), "hum": .int(40)],
            ["temp": .double(22.5)],
            ["temp": .null, "hum": .string("n/a")],
            ["temp": .string("hot")],
            ["temp": .int(18), "hum": .int(41)],
        ]
        for (index, fields) in inputs.enumerated() {
            table.add(record(fields), acknowledgements: .none, chunk: 0, now: minute + 1_000 * Int64(index), into: &closed)
        }
        #expect(closed.isEmpty)
        table.closeAll(into: &closed)
        #expect(closed.map(\.record.json) == [
            #"{"temp_mean":20.166666666666668,"temp_min":18,"temp_max":22.5,"temp_sum":60.5,"temp_count":4,"temp_first":20,"temp_last":18,"hum_last":41,"count":5,"window_start":1796479200000,"window_end":1796479260000}"#
        ])
        #expect(closed.first?.record.timestamp == minute + 60_000)
    }

    @Test func integerSumsStayIntegersAndAFunctionWithNoValueIsLeftOut() throws {
        var table = try windows("window: 1m, fields: { n: [sum, mean], s: [min, count] }")
        var closed: [AggregateWindows.Closed] = []
        table.add(record(["n": .int(2), "s": .string("a")]), acknowledgements: .none, chunk: 0, now: minute, into: &closed)
        table.add(record(["n": .int(3)]), acknowledgements: .none, chunk: 0, now: minute, into: &closed)
        table.closeAll(into: &closed)
        #expect(closed.map(\.record.json) == [
            #"{"n_sum":5,"n_mean":2.5,"s_count":1,"count":2,"window_start":1796479200000,"window_end":1796479260000}"#
        ])
    }

    @Test func windowsAreAlignedToTheClockAndCloseAtTheirEnd() throws {
        var table = try windows("window: 1m, fields: { v: sum }, group_by: [sensor]")
        var closed: [AggregateWindows.Closed] = []
        #expect(table.start(of: minute + 59_999) == minute)
        #expect(table.start(of: minute + 60_000) == minute + 60_000)
        table.add(record(["sensor": .string("a"), "v": .int(1)]), acknowledgements: .none, chunk: 0, now: minute + 30_000, into: &closed)
        table.add(record(["v": .int(10)]), acknowledgements: .none, chunk: 0, now: minute + 40_000, into: &closed)
        table.add(record(["sensor": .string("a"), "v": .int(2)]), acknowledgements: .none, chunk: 0, now: minute + 59_999, into: &closed)
        #expect(table.nextClose == minute + 60_000)
        table.closeExpired(now: minute + 59_999, into: &closed)
        #expect(closed.isEmpty)
        // The first record of the next window closes the previous one before it is counted.
        table.add(record(["sensor": .string("a"), "v": .int(4)]), acknowledgements: .none, chunk: 0, now: minute + 60_000, into: &closed)
        #expect(closed.map(\.record.json) == [
            #"{"sensor":"a","v_sum":3,"count":2,"window_start":1796479200000,"window_end":1796479260000}"#,
            #"{"sensor":null,"v_sum":10,"count":1,"window_start":1796479200000,"window_end":1796479260000}"#,
        ])
        closed.removeAll()
        table.closeExpired(now: minute + 120_000, into: &closed)
        #expect(closed.map(\.record.json) == [
            #"{"sensor":"a","v_sum":4,"count":1,"window_start":1796479260000,"window_end":1796479320000}"#
        ])
        #expect(table.nextClose == nil && table.openCount == 0)
    }

    @Test func aClockSetBackJoinsTheOpenWindow() throws {
        var table = try windows("window: 1m, fields: { v: sum }")
        var closed: [AggregateWindows.Closed] = []
        table.add(record(["v": .int(1)]), acknowledgements: .none, chunk: 0, now: minute + 30_000, into: &closed)
        table.add(record(["v": .int(2)]), acknowledgements: .none, chunk: 0, now: minute - 90_000, into: &closed)
        table.closeAll(into: &closed)
        #expect(closed.map(\.record.json) == [
            #"{"v_sum":3,"count":2,"window_start":1796479200000,"window_end":1796479260000}"#
        ])
    }

    @Test func theEndOfInputSendsOpenWindowsHoldingTheirInputsAcknowledgements() async throws {
        var transform = try builtTransform(
            "t", in: pipeline(stage: "aggregate", "window: 1h, fields: { v: [sum] }, group_by: [k]"), as: AggregateTransform.self)
        transform.clock = ManualClock(minute).clock
        let counter = AckCounter()
        do {
            let first = counter.token(), second = counter.token()
            let result = try await run(transform, [
                EventChunk(records([["k": .int(1), "v": .int(1)], ["k": .int(2), "v": .int(2)]]), acknowledgements: Acknowledgements([first])),
                EventChunk(records([["k": .int(1), "v": .int(3)]]), acknowledgements: Acknowledgements([second])),
            ])
            #expect(result.events.map { $0.fields["v_sum"] } == [.int(4), .int(2)])
            // Key 1 holds shares of both chunks' tokens; key 2 a share of the first's.
            #expect(result.chunks.map { $0.acknowledgements.tokens.map { $0.answers(for: first) ? "first" : "second" } } == [["first", "second"], ["first"]])
            #expect(counter.deliveredCount == 0 && counter.otherCount == 0, "held until the aggregates are delivered")
            result.chunks[0].acknowledgements.resolve(.delivered)
            result.chunks[1].acknowledgements.resolve(.delivered)
        }
        #expect(counter.deliveredCount == 2 && counter.otherCount == 0)
    }

    /// A chunk whose records join two windows: one aggregate delivered, the other lost (a stop while it waits
    /// downstream). The chunk is not delivered. (With one token shared by both windows, the first aggregate's
    /// answer stood for the other.)
    @Test func aChunkInTwoWindowsIsDeliveredOnlyWhenBothAggregatesAre() async throws {
        var transform = try builtTransform(
            "t", in: pipeline(stage: "aggregate", "window: 1h, fields: { v: [sum] }, group_by: [k]"), as: AggregateTransform.self)
        transform.clock = ManualClock(minute).clock
        let counter = AckCounter()
        do {
            let result = try await run(transform, [
                EventChunk(
                    records([["k": .int(1), "v": .int(1)], ["k": .int(2), "v": .int(2)]]),
                    acknowledgements: Acknowledgements([counter.token()])),
            ])
            #expect(result.chunks.count == 2)
            result.chunks.first?.acknowledgements.resolve(.delivered)
        }
        #expect(counter.deliveredCount == 0 && counter.otherCount == 1)
    }

    @Test(.timeLimit(.minutes(1))) func aWindowClosesAtItsEndWhileTheInputIsIdle() async throws {
        var configured = try builtTransform(
            "t", in: pipeline(stage: "aggregate", "window: 1m, fields: { v: sum }"), as: AggregateTransform.self)
        let clock = ManualClock(minute + 59_990)
        configured.clock = clock.clock
        try await withLiveTransform(configured, type: "aggregate") { input, output in
            try await input.send(EventChunk(records([["v": .int(7)]])))
            // Once the stage has read the time for the chunk and again to wait for the window's end, time
            // moves past it; the input stays open, so only the window's end can send this aggregate.
            while clock.reads < 2 { await Task.yield() }
            clock.set(minute + 60_000)
            let first = await output.next()
            #expect(first?.events.map { $0.fields["v_sum"] } == [.int(7)])
            input.finishProducer()
            // Nil once the transform has ended.
            #expect(await output.next() == nil, "nothing was left open")
        }
    }

    @Test func pastMaxGroupsANewKeyIsAWindowOfItsOwnSentAtOnceAndCounted() async throws {
        var transform = try builtTransform(
            "t", in: pipeline(stage: "aggregate", "window: 1m, fields: { v: sum }, group_by: [k], max_groups: 1"),
            as: AggregateTransform.self)
        transform.clock = ManualClock(minute).clock
        let result = try await run(transform, records([["k": .int(1), "v": .int(1)], ["k": .int(2), "v": .int(5)], ["k": .int(1), "v": .int(1)]]))
        #expect(result.events.map(\.json) == [
            #"{"k":2,"v_sum":5,"count":1,"window_start":1796479200000,"window_end":1796479260000}"#,
            #"{"k":1,"v_sum":2,"count":2,"window_start":1796479200000,"window_end":1796479260000}"#,
        ])
        #expect(result.counters["uplink_transform_group_limit_hits_total"] == 1)
    }

    @Test func configErrorsPointAtTheirPlace() {
        let (_, unknown) = buildPipeline(pipeline(stage: "aggregate", "window: 1m, fields: { temp: [mean, maxx] }"))
        #expect(unknown == ["test.yaml:5:76: error: unknown function 'maxx' for 'temp'; one of mean, min, max, sum, count, first, last; did you mean 'max'?"])
        let (_, window) = buildPipeline(pipeline(stage: "aggregate", "window: 10ms, fields: { v: sum }"))
        #expect(window.count == 1 && window[0].hasPrefix("test.yaml:5:") && window[0].contains("'window' must be between 1s and 24h"))
        let (_, noFields) = buildPipeline(pipeline(stage: "aggregate", "window: 1m, fields: [v]"))
        #expect(noFields.count == 1 && noFields[0].contains("'fields' must map fields to functions"))
        let (_, missing) = buildPipeline(pipeline(stage: "aggregate", "fields: { v: sum }"))
        #expect(missing.count == 1 && missing[0].contains("window"))
    }
}
