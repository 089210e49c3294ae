import Testing
import UplinkCore
@testable import UplinkPlugins

@Suite struct DeadbandTransformTests {
    private func filter(_ options: String) throws -> DeadbandFilter {
        try builtTransform("t", in: pipeline(stage: "deadband", options), as: DeadbandTransform.self).filter
    }

    private func record(_ fields: Fields) -> Record { Record(fields: fields, timestamp: 0) }

    @Test func theFirstRecordPassesThenOnlyMovesPastTheAbsoluteBand() throws {
        var deadband = try filter("fields: { temp: 0.5 }")
        let temps: [Double] = [20, 20.4, 20.5, 20.51, 20.2, 21.02]
        let decisions = temps.map { deadband.decide(record(["temp": .double($0)]), now: 0) }
        // Compared with the last passed value (20, then 20.51), not the previous record.
        #expect(decisions == [.emit, .suppress, .suppress, .emit, .suppress, .emit])
    }

    @Test func aPercentBandIsOfTheLastPassedValueAndFromZeroAnyMoveCounts() throws {
        var deadband = try filter("fields: { hum: 2% }")
        let values: [Int64] = [50, 51, 52, 53, 54, 0, 0, 1]
        let decisions = values.map { deadband.decide(record(["hum": .int($0)]), now: 0) }
        // 50 -> band 1: 51 is not past it, 52 is; 52 -> band 1.04: 53 not, 54 is; 0 -> any move.
        #expect(decisions == [.emit, .suppress, .emit, .suppress, .emit, .emit, .suppress, .emit])
    }

    @Test func missingNullAndTextCompareByEquality() throws {
        var deadband = try filter("fields: { temp: 1, state: 0 }")
        let inputs: [Fields] = [
            ["temp": .int(20), "state": .string("ok")],
            ["temp": .int(20), "state": .string("ok")],
            ["temp": .int(20), "state": .string("fault")],
            ["state": .string("fault")],
            ["state": .string("fault")],
            ["temp": .null, "state": .string("fault")],
            ["temp": .null, "state": .string("fault")],
            ["temp": .string("20"), "state": .string("fault")],
            ["temp": .double(20.5), "state": .string("fault")],
            ["temp": .double(21.6), "state": .string("fault")],
        ]
        let decisions = inputs.map { deadband.decide(record($0), now: 0) }
        #expect(decisions == [.emit, .suppress, .emit, .emit, .suppress, .emit, .suppress, .emit, .emit, .emit])
    }

    @Test func eachGroupKeepsItsOwnReferenceAndAMissingKeyFieldIsNull() throws {
        var deadband = try filter("fields: { temp: 1 }, group_by: [sensor]")
        let inputs: [Fields] = [
            ["sensor": .string("a"), "temp": .int(10)],
            ["sensor": .string("b"), "temp": .int(10)],
            ["sensor": .string("a"), "temp": .int(10)],
            ["temp": .int(10)],
            ["sensor": .null, "temp": .int(10)],
            ["sensor": .string("b"), "temp": .int(12)],
        ]
        let decisions = inputs.map { deadband.decide(record($0), now: 0) }
        #expect(decisions == [.emit, .emit, .suppress, .emit, .suppress, .emit])
    }

    @Test func aHeartbeatPassesARecordAfterMaxIntervalSinceTheLastPassed() throws {
        var deadband = try filter("fields: { temp: 1 }, max_interval: 10m")
        let steady: Fields = ["temp": .int(20)]
        #expect(deadband.decide(record(steady), now: 1_000) == .emit)
        #expect(deadband.decide(record(steady), now: 1_000 + 599_999) == .suppress)
        #expect(deadband.decide(record(steady), now: 1_000 + 600_000) == .emit)
        #expect(deadband.decide(record(steady), now: 1_000 + 600_001) == .suppress, "the interval restarts at each pass")
    }

    @Test func pastMaxGroupsANewKeyPassesUnfilteredAndIsCounted() async throws {
        var transform = try builtTransform(
            "t", in: pipeline(stage: "deadband", "fields: { v: 1 }, group_by: [k], max_groups: 2"), as: DeadbandTransform.self)
        transform.clock = ManualClock(0).clock
        let inputs: [Fields] = (0..<3).flatMap { _ in (0..<3).map { ["k": .int($0), "v": .int(1)] as Fields } }
        let result = try await run(transform, records(inputs))
        // Keys 0 and 1 pass once then are suppressed; key 2 passes every time.
        #expect(result.events.map { $0.fields["k"] } == [.int(0), .int(1), .int(2), .int(2), .int(2)])
        #expect(result.metrics.droppedByReason[.deadband] == 4)
        #expect(result.counters["uplink_transform_group_limit_hits_total"] == 3)
    }

    @Test func suppressedRecordsAreAFinalAnswerAndPassedOnesWaitForTheSink() async throws {
        var transform = try builtTransform("t", in: pipeline(stage: "deadband", "fields: { v: 1 }"), as: DeadbandTransform.self)
        transform.clock = ManualClock(0).clock
        let counter = AckCounter()
        do {
            let result = try await run(transform, [
                EventChunk(records([["v": .int(1)], ["v": .int(1)]]), acknowledgements: Acknowledgements([counter.token()])),
                EventChunk(records([["v": .int(1)], ["v": .double(1.5)]]), acknowledgements: Acknowledgements([counter.token()])),
            ])
            #expect(counter.deliveredCount == 1, "the all-suppressed chunk resolved as delivered")
            #expect(result.events.count == 1)
            #expect(result.chunks.map(\.acknowledgements.tokens.count) == [1])
            result.chunks.forEach { $0.acknowledgements.resolve(.delivered) }
        }
        #expect(counter.deliveredCount == 2 && counter.otherCount == 0)
    }

    @Test func badBandsAndOptionsAreRefusedWhereTheyAreWritten() {
        let (_, badBand) = buildPipeline(pipeline(stage: "deadband", "fields: { temp: -1, hum: 2%%, p: abc }"))
        #expect(badBand == [
            "test.yaml:5:50: error: the band of 'temp' must be a number >= 0 or a percent like 2%, got '-1'",
            "test.yaml:5:60: error: the band of 'hum' must be a number >= 0 or a percent like 2%, got '2%%'",
            "test.yaml:5:70: error: the band of 'p' must be a number >= 0 or a percent like 2%, got 'abc'",
        ])
        let (_, missing) = buildPipeline(pipeline(stage: "deadband", "max_interval: 1m"))
        #expect(missing.count == 1 && missing[0].hasPrefix("test.yaml:5:") && missing[0].contains("fields"))
        let (_, empty) = buildPipeline(pipeline(stage: "deadband", "fields: {}"))
        #expect(empty == ["test.yaml:5:48: error: 'fields' must name at least one field"])
        let (_, groups) = buildPipeline(pipeline(stage: "deadband", "fields: { v: 1 }, max_groups: 0"))
        #expect(groups.count == 1 && groups[0].hasPrefix("test.yaml:5:") && groups[0].contains("max_groups"))
    }
}
