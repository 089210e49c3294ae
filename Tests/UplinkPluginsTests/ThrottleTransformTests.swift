import Foundation
import Synchronization
import Testing
import UplinkCore
@testable import UplinkPlugins

@Suite struct ThrottleTransformTests {
    private typealias Rate = ThrottleBuckets.Rate

    private func throttle(_ options: String) throws -> ThrottleTransform<Record> {
        try builtTransform("t", in: pipeline(stage: "throttle", options), as: ThrottleTransform<Record>.self)
    }

    @Test func ratesAreReadPerPeriodInEventsOrSizes() {
        #expect(Rate("100/s", sizes: false) == Rate(amount: 100, periodMilliseconds: 1_000))
        #expect(Rate("600/min", sizes: false) == Rate(amount: 600, periodMilliseconds: 60_000))
        #expect(Rate("5/10s", sizes: false) == Rate(amount: 5, periodMilliseconds: 10_000))
        #expect(Rate("64KiB/min", sizes: true) == Rate(amount: 65_536, periodMilliseconds: 60_000))
        #expect(Rate("1MB/h", sizes: true) == Rate(amount: 1_000_000, periodMilliseconds: 3_600_000))
        for bad in ["100", "0/s", "abc/s", "10/x", "1.5/s", "10/0s", "10/s/s", "-1/s", "64KiB/min"] {
            #expect(Rate(bad, sizes: false) == nil, "\(bad)")
        }
        #expect(Rate("0B/min", sizes: true) == nil)
    }

    @Test func aBucketAllowsOnePeriodsBurstThenRefillsAtTheRate() throws {
        var buckets = try throttle("events: 2/s, group_by: [k]").buckets
        var overLimit = false
        let a: GroupKeys.Key = [.string("a")], b: GroupKeys.Key = [.string("b")]
        #expect(buckets.take(1, key: a, now: 0, overLimit: &overLimit) == .pass)
        #expect(buckets.take(1, key: a, now: 0, overLimit: &overLimit) == .pass)
        #expect(buckets.take(1, key: a, now: 0, overLimit: &overLimit) == .exceeded(waitMilliseconds: 500))
        #expect(buckets.take(1, key: b, now: 0, overLimit: &overLimit) == .pass, "each key has its own budget")
        #expect(buckets.take(1, key: a, now: 499, overLimit: &overLimit) == .exceeded(waitMilliseconds: 1))
        #expect(buckets.take(1, key: a, now: 500, overLimit: &overLimit) == .pass)
        // Idle time refills up to one period's budget, no more.
        #expect(buckets.take(1, key: a, now: 60_000, overLimit: &overLimit) == .pass)
        #expect(buckets.take(1, key: a, now: 60_000, overLimit: &overLimit) == .pass)
        #expect(buckets.take(1, key: a, now: 60_000, overLimit: &overLimit) == .exceeded(waitMilliseconds: 500))
        #expect(!overLimit)
    }

    @Test func aRecordOverAWholePeriodsBudgetPassesWhenTheBucketIsFull() throws {
        var buckets = try throttle("bytes: 100/s").buckets
        var overLimit = false
        #expect(buckets.take(1_000, key: [], now: 0, overLimit: &overLimit) == .pass)
        #expect(buckets.take(1_000, key: [], now: 500, overLimit: &overLimit) == .exceeded(waitMilliseconds: 500))
        #expect(buckets.take(1_000, key: [], now: 1_000, overLimit: &overLimit) == .pass)
    }

    @Test func pastMaxGroupsNewKeysShareOneOverflowBucket() throws {
        var buckets = try throttle("events: 1/s, group_by: [k], max_groups: 1").buckets
        var overLimit = false
        #expect(buckets.take(1, key: [.int(1)], now: 0, overLimit: &overLimit) == .pass)
        #expect(!overLimit)
        #expect(buckets.take(1, key: [.int(2)], now: 0, overLimit: &overLimit) == .pass)
        #expect(overLimit)
        #expect(buckets.take(1, key: [.int(3)], now: 0, overLimit: &overLimit) == .exceeded(waitMilliseconds: 1_000))
    }

    @Test func dropCountsAndAcknowledgesWhatIsOverTheRate() async throws {
        var transform = try throttle("events: 2/s")
        transform.clock = ManualClock(0).clock
        let counter = AckCounter()
        do {
            let result = try await run(transform, [
                EventChunk(records([["n": .int(1)], ["n": .int(2)], ["n": .int(3)]]), acknowledgements: Acknowledgements([counter.token()])),
                EventChunk(records([["n": .int(4)]]), acknowledgements: Acknowledgements([counter.token()])),
            ])
            #expect(result.events.map { $0.fields["n"] } == [.int(1), .int(2)])
            #expect(result.metrics.droppedByReason[.throttled] == 2)
            #expect(counter.deliveredCount == 1, "the chunk dropped whole is a final answer")
            #expect(result.chunks.map(\.acknowledgements.tokens.count) == [1])
            result.chunks.forEach { $0.acknowledgements.resolve(.delivered) }
        }
        #expect(counter.deliveredCount == 2 && counter.otherCount == 0)
    }

    @Test func waitHoldsRecordsUntilTheBudgetReturnsAndLosesNothing() async throws {
        var transform = try throttle("bytes: 16/s, when_exceeded: wait")
        let clock = ManualClock(0)
        let waits = Mutex<[Int64]>([])
        transform.clock = clock.clock
        transform.wait = { milliseconds in
            waits.withLock { $0.append(milliseconds) }
            clock.advance(milliseconds)
        }
        let counter = AckCounter()
        do {
            // {"n":1} is 7 bytes: two fit in 16, the third waits 313 ms for the 5 bytes missing at 16/s,
            // the fourth 437 ms for 6.992.
            let result = try await run(transform, [
                EventChunk(records([["n": .int(1)], ["n": .int(2)], ["n": .int(3)], ["n": .int(4)]]), acknowledgements: Acknowledgements([counter.token()])),
            ])
            #expect(result.events.map { $0.fields["n"] } == [.int(1), .int(2), .int(3), .int(4)])
            #expect(waits.withLock { $0 } == [313, 437])
            #expect(result.metrics.droppedByReason[.throttled] == 0)
            #expect(result.chunks.map(\.count) == [2, 1, 1])
            #expect(counter.deliveredCount == 0, "every part holds the chunk's acknowledgement")
            result.chunks.forEach { $0.acknowledgements.resolve(.delivered) }
        }
        #expect(counter.deliveredCount == 1 && counter.otherCount == 0)
    }

    /// The first part of a chunk sent before a wait is delivered; a later part is lost (a stop while it waits
    /// downstream): the chunk is not delivered. (With the chunk's token on every part, the first part's answer
    /// stood for the others.)
    @Test func aChunkCutByWaitsIsDeliveredOnlyWhenEveryPartIs() async throws {
        var transform = try throttle("bytes: 16/s, when_exceeded: wait")
        let clock = ManualClock(0)
        transform.clock = clock.clock
        transform.wait = { milliseconds in clock.advance(milliseconds) }
        let counter = AckCounter()
        do {
            let result = try await run(transform, [
                EventChunk(records([["n": .int(1)], ["n": .int(2)], ["n": .int(3)], ["n": .int(4)]]), acknowledgements: Acknowledgements([counter.token()])),
            ])
            #expect(result.chunks.map(\.count) == [2, 1, 1])
            result.chunks[0].acknowledgements.resolve(.delivered)
            result.chunks[1].acknowledgements.resolve(.delivered)
        }
        #expect(counter.deliveredCount == 0 && counter.otherCount == 1)
    }

    @Test func messagesAreThrottledByTheirBodySize() async throws {
        let yaml = """
            sources:
              in: { type: stdin }
            transforms:
              wrap: { type: json, inputs: [in], mode: json }
              model: { type: shadow, inputs: [wrap], product_sn: P, device_sn: D }
              t: { type: throttle, inputs: [model], bytes: 100/min }
            sinks:
              out: { type: stdout, inputs: [t] }
            """
        var transform = try builtTransform("t", in: yaml, as: ThrottleTransform<Message>.self)
        transform.clock = ManualClock(0).clock
        let body = Array(repeating: UInt8(ascii: "x"), count: 40)
        let result = try await run(transform, [Message(topic: "/t", body: body), Message(topic: "/t", body: body), Message(topic: "/t", body: body)])
        #expect(result.events.count == 2, "two 40-byte bodies fit in 100 bytes, a third does not")
        #expect(result.metrics.droppedByReason[.throttled] == 1)
        let (_, grouped) = buildPipeline(yaml.replacingOccurrences(of: "bytes: 100/min", with: "bytes: 100/min, group_by: [k]"))
        #expect(grouped.count == 1 && grouped[0].contains("'group_by' needs record input"))
    }

    @Test func configErrorsPointAtTheirPlace() {
        let (_, bad) = buildPipeline(pipeline(stage: "throttle", "events: 100/fortnight"))
        #expect(bad == ["test.yaml:5:48: error: 'events' must be a whole number per period, like 100/s, 600/min or 5/10s, got '100/fortnight'"])
        let (_, badBytes) = buildPipeline(pipeline(stage: "throttle", "bytes: lots/min"))
        #expect(badBytes == ["test.yaml:5:47: error: 'bytes' must be a size per period, like 64KiB/min or 1MB/h, got 'lots/min'"])
        let (_, both) = buildPipeline(pipeline(stage: "throttle", "events: 1/s, bytes: 1KiB/s"))
        #expect(both.count == 1 && both[0].contains("set one of 'events' and 'bytes'"))
        let (_, none) = buildPipeline(pipeline(stage: "throttle", "when_exceeded: wait"))
        #expect(none.count == 1 && none[0].hasPrefix("test.yaml:5:") && none[0].contains("throttle needs a rate"))
        let (_, policy) = buildPipeline(pipeline(stage: "throttle", "events: 1/s, when_exceeded: block"))
        #expect(policy.count == 1 && policy[0].contains("must be one of drop, wait"))
    }
}
