import Testing

@testable import IoTCore
import UplinkTestSupport

@Suite("Backoff")
struct IoTCoreBackoffTests {
    @Test("caps double from the initial value up to the maximum")
    func caps() {
        var backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(60))
        var generator = SeededGenerator(seed: 1)
        var caps: [Duration] = []
        for _ in 0..<10 {
            caps.append(backoff.currentCap)
            _ = backoff.next(using: &generator)
        }
        #expect(
            caps == [
                .milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(32),
                .seconds(60), .seconds(60), .seconds(60),
            ])
        #expect(backoff.attempt == 10)
    }

    @Test("every delay lies within 0 ... cap", arguments: [1, 2, 3, 99] as [UInt64])
    func bounds(_ seed: UInt64) {
        var backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(10))
        var generator = SeededGenerator(seed: seed)
        for _ in 0..<200 {
            let cap = backoff.currentCap
            let delay = backoff.next(using: &generator)
            #expect(delay >= .zero && delay <= cap)
        }
    }

    @Test("full jitter spreads the delays, seeded sequences repeat")
    func jitter() {
        func sequence(seed: UInt64) -> [Duration] {
            var backoff = Backoff(initial: .seconds(60), maximum: .seconds(60))
            var generator = SeededGenerator(seed: seed)
            return (0..<64).map { _ in backoff.next(using: &generator) }
        }
        let first = sequence(seed: 7)
        #expect(first == sequence(seed: 7))
        #expect(first != sequence(seed: 8))
        // Uniform in 0...60 s: both halves are used.
        #expect(first.contains { $0 < .seconds(30) })
        #expect(first.contains { $0 > .seconds(30) })
    }

    @Test("no overflow after many attempts, reset starts over")
    func overflow() {
        var backoff = Backoff(initial: .seconds(1), maximum: .seconds(3600))
        var generator = SeededGenerator(seed: 3)
        for _ in 0..<1000 { _ = backoff.next(using: &generator) }
        #expect(backoff.currentCap == .seconds(3600))
        backoff.reset()
        #expect(backoff.currentCap == .seconds(1))
    }

    @Test("zero and inverted bounds are safe")
    func degenerate() {
        var zero = Backoff(initial: .zero, maximum: .zero)
        var generator = SeededGenerator(seed: 4)
        #expect(zero.next(using: &generator) == .zero)
        let inverted = Backoff(initial: .seconds(5), maximum: .seconds(1))
        #expect(inverted.maximum == .seconds(5))
    }

    @Test("the policy's defaults")
    func defaults() {
        let policy = RetryPolicy()
        #expect(policy.initialBackoff == .milliseconds(500))
        #expect(policy.maxBackoff == .seconds(60))
        #expect(policy.maxAttempts == nil)
        #expect(policy.credentialBackoff == .seconds(300))
    }
}
