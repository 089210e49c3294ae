import Synchronization
import Testing
import UplinkCore

@Suite struct DedicatedThreadTests {
    /// Sets its flag when the last reference to it goes, as a chunk's acknowledgements report then.
    final class Token: Sendable {
        let released: Shared
        init(_ released: Shared) { self.released = released }
        deinit { released.flag.store(true, ordering: .releasing) }
    }

    final class Shared: Sendable {
        let flag = Atomic(false)
    }

    static func job(holding token: Token) -> @Sendable () -> Void { { _ = token } }

    /// A disk buffer's `send` relies on it: what its job captured (the chunk) is let go before `send` goes on, so
    /// the chunk's acknowledgements have reported by then. Before, the thread dropped the job after resuming the
    /// caller, and the last release raced with the caller.
    @Test func whatAJobCapturedIsReleasedBeforeTheCallerGoesOn() async {
        let thread = DedicatedThread(purpose: "a test")
        defer { thread.stop() }
        var late = 0
        for _ in 0..<2000 {
            let released = Shared()
            await thread.run(Self.job(holding: Token(released)))
            if !released.flag.load(ordering: .acquiring) { late += 1 }
        }
        #expect(late == 0, "\(late) of 2000 jobs still held their captures when the caller went on")
    }
}
