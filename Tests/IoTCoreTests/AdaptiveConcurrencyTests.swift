import Testing

@testable import IoTCore

@Suite("Adaptive concurrency")
struct AdaptiveConcurrencyTests {
    /// Runs `windows` rounds of a sender that keeps `limit` requests in flight, each answered after `rtt` seconds,
    /// `answer130` deciding per request (given the in-flight count) whether the service refuses it.
    static func drive(
        _ limiter: AdaptiveConcurrency, windows: Int, rtt: (Int) -> Double = { _ in 0.05 },
        answer130: (Int) -> Bool = { _ in false }
    ) -> [Int] {
        var limits: [Int] = []
        for _ in 0..<windows {
            let limit = limiter.limit
            for _ in 0..<limit { limiter.begin() }
            for _ in 0..<limit { limiter.end(seconds: rtt(limit), overloaded: answer130(limit)) }
            limits.append(limiter.limit)
        }
        return limits
    }

    @Test("a long round trip with a busy limit grows it to the ceiling (slow start), no further")
    func growsToTheCeiling() {
        let limiter = AdaptiveConcurrency(initial: 4, ceiling: 32)
        let limits = Self.drive(limiter, windows: 10)
        #expect(limits.prefix(3) == [8, 16, 32])
        #expect(limits.allSatisfy { $0 <= 32 })
        #expect(limiter.limit == 32)
    }

    @Test("130 answers above what the service accepts bring the limit down and keep it at or below that")
    func staysWithinWhatTheServiceAccepts() {
        let limiter = AdaptiveConcurrency(initial: 4, ceiling: 64)
        // The service answers 130 whenever more than 10 requests are in flight.
        let limits = Self.drive(limiter, windows: 40, answer130: { $0 > 10 })
        #expect(limits.suffix(20).allSatisfy { $0 <= 10 }, "\(limits)")
        #expect(limits.suffix(20).allSatisfy { $0 >= 5 }, "it must not collapse: \(limits)")
    }

    @Test("a round trip that doubles (queueing) shrinks the limit, not below the configured start")
    func queueingShrinksToTheStart() {
        let limiter = AdaptiveConcurrency(initial: 4, ceiling: 32)
        _ = Self.drive(limiter, windows: 4)
        #expect(limiter.limit == 32)
        // Every request in flight beyond 8 adds 20 ms: the link queues.
        let limits = Self.drive(limiter, windows: 30, rtt: { 0.05 + 0.02 * Double(max(0, $0 - 8)) })
        #expect(limits.last! < 32, "\(limits)")
        #expect(limits.allSatisfy { $0 >= 4 }, "\(limits)")
    }

    @Test("a fixed limit never changes")
    func fixed() {
        let limiter = AdaptiveConcurrency(initial: 4, ceiling: 4)
        #expect(Self.drive(limiter, windows: 5, answer130: { _ in true }) == [4, 4, 4, 4, 4])
        #expect(!limiter.isAdaptive)
    }
}
