import FoundationEssentials
import Testing

@testable import IoTCore

@Suite("Auth state machine")
struct IoTCoreAuthStateMachineTests {
    typealias Machine = AuthStateMachine<Int>

    static let wallNow = Date(timeIntervalSince1970: 1_700_000_000)
    static let token = AuthToken(
        value: Secret("t"),
        info: TokenInfo(token: Fixtures.jwt(exp: 1_700_604_800, iat: 1_700_000_000), receivedAt: wallNow))
    static let day = Duration.seconds(86_400)

    static func finish(
        _ machine: inout Machine, _ outcome: AuthFlow.AttemptOutcome, forced: Bool = false, wall: Date = wallNow
    )
        -> Machine.Finish
    {
        machine.leaderFinished(
            outcome, forced: forced, now: .seconds(10), wallNow: wall, credentialBackoff: .seconds(300),
            renewalPause: .seconds(60))
    }

    @Test("no token: one leader, the rest wait and share its token")
    func singleFlight() {
        var machine = Machine()
        #expect(machine.acquire(forced: false, now: .zero, wallNow: Self.wallNow, renewBefore: Self.day) == .lead)
        #expect(machine.acquire(forced: false, now: .zero, wallNow: Self.wallNow, renewBefore: Self.day) == .wait)
        let added = [machine.addWaiter(1, 101), machine.addWaiter(2, 102)]
        #expect(added == [true, true])
        let removed = machine.removeWaiter(2)
        #expect(removed == 102)
        let finish = Self.finish(&machine, .token(Self.token))
        #expect(finish.waiters == [101])
        #expect(finish.waiterResult == .token(Self.token))
        #expect(finish.leader == .token(Self.token))
        let late = machine.addWaiter(3, 103)
        #expect(!late)
        #expect(
            machine.acquire(forced: false, now: .zero, wallNow: Self.wallNow, renewBefore: Self.day) == .use(Self.token)
        )
        #expect(machine.acquire(forced: true, now: .zero, wallNow: Self.wallNow, renewBefore: Self.day) == .lead)
    }

    @Test("refused credentials block /auth for the credential back-off and warn once")
    func credentials() {
        var machine = Machine()
        _ = machine.acquire(forced: false, now: .zero, wallNow: Self.wallNow, renewBefore: Self.day)
        let failure = AuthFlow.Failure.credentials(retCode: 171, reason: "r")
        let first = Self.finish(&machine, .failed(failure))
        #expect(first.warnAboutCredentials)
        #expect(first.leader == .failed(failure))
        #expect(
            machine.acquire(forced: false, now: .seconds(10), wallNow: Self.wallNow, renewBefore: Self.day)
                == .sleep(.seconds(300)))
        #expect(
            machine.acquire(forced: false, now: .seconds(310), wallNow: Self.wallNow, renewBefore: Self.day) == .lead)
        #expect(!Self.finish(&machine, .failed(failure)).warnAboutCredentials)
        _ = machine.acquire(forced: true, now: .seconds(11), wallNow: Self.wallNow, renewBefore: Self.day)
        _ = Self.finish(&machine, .token(Self.token))
        #expect(machine.blockedUntil == nil)
        _ = machine.acquire(forced: true, now: .seconds(12), wallNow: Self.wallNow, renewBefore: Self.day)
        #expect(Self.finish(&machine, .failed(failure)).warnAboutCredentials)
    }

    @Test("renewal: the old token keeps working while an attempt runs or after it fails")
    func renewal() {
        var machine = Machine(token: Self.token)
        let late = Self.wallNow.addingTimeInterval(6.5 * 86_400)
        #expect(machine.acquire(forced: false, now: .zero, wallNow: late, renewBefore: Self.day) == .lead)
        #expect(machine.acquire(forced: false, now: .zero, wallNow: late, renewBefore: Self.day) == .use(Self.token))
        let failure = AuthFlow.Failure.transient(retCode: 130, reason: "busy")
        let finish = Self.finish(&machine, .failed(failure), wall: late)
        #expect(finish.leader == .token(Self.token))
        #expect(finish.waiterResult == .staleToken(Self.token, failure))
        #expect(
            machine.acquire(forced: false, now: .seconds(20), wallNow: late, renewBefore: Self.day) == .use(Self.token))
        #expect(machine.acquire(forced: false, now: .seconds(71), wallNow: late, renewBefore: Self.day) == .lead)
        // A forced leader does not accept the old token.
        #expect(Self.finish(&machine, .failed(failure), forced: true, wall: late).leader == .failed(failure))
    }

    @Test("an expired token is not used; invalidate drops only the token that was refused")
    func expiry() {
        var machine = Machine(token: Self.token)
        let expired = Self.wallNow.addingTimeInterval(8 * 86_400)
        #expect(machine.acquire(forced: false, now: .zero, wallNow: expired, renewBefore: Self.day) == .lead)
        let other = AuthToken(value: Secret("other"), info: Self.token.info)
        _ = Self.finish(&machine, .token(other))
        machine.invalidate(Self.token)
        #expect(machine.token == other)
        machine.invalidate(other)
        #expect(machine.token == nil)
    }

    @Test("a cancelled leader or a dropped Timestamp sends everyone back to ask again")
    func again() {
        var machine = Machine()
        _ = machine.acquire(forced: false, now: .zero, wallNow: Self.wallNow, renewBefore: Self.day)
        _ = machine.addWaiter(1, 1)
        let cancelled = Self.finish(&machine, .cancelled)
        #expect(cancelled.waiterResult == .again)
        #expect(!machine.authenticating)
        _ = machine.acquire(forced: false, now: .zero, wallNow: Self.wallNow, renewBefore: Self.day)
        let timestamp = Self.finish(&machine, .timestampRejected)
        #expect(timestamp.warnAboutTimestamp)
        #expect(machine.timestampDisabled)
        #expect(timestamp.leader == .again)
    }
}
