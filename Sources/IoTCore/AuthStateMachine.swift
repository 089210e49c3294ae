import FoundationEssentials

/// The token's life as a pure state machine: who may use the current token, who must authenticate, who waits
/// for an authentication in flight, and how long `/auth` rests after refusing the credentials.
///
/// Single flight: at most one `/auth` request is in flight; callers that need a token meanwhile wait for its
/// result. One attempt is shared, not a whole retry loop: after a failed attempt every caller backs off on its
/// own schedule, and the next one to come back leads the next attempt. `Waiter` is whatever resumes a waiting
/// caller (a continuation in the client, a number in tests).
struct AuthStateMachine<Waiter> {
    typealias Failure = AuthFlow.Failure
    typealias AttemptOutcome = AuthFlow.AttemptOutcome
    typealias Acquire = AuthFlow.Acquire
    typealias Result = AuthFlow.Result

    /// The leader's report, digested.
    struct Finish {
        var leader: Result
        var waiters: [Waiter]
        var waiterResult: Result
        /// Log the credential warning now: the first refusal since the last success.
        var warnAboutCredentials: Bool
        /// Log that the Timestamp is dropped: the first 100070.
        var warnAboutTimestamp: Bool
    }

    private(set) var token: AuthToken?
    private(set) var authenticating = false
    private var waiters: [UInt64: Waiter] = [:]
    /// `/auth` is not tried before this monotonic time (set after the credentials were refused).
    private(set) var blockedUntil: Duration?
    /// A still-valid token is used without trying to renew it before this monotonic time.
    private(set) var renewalPausedUntil: Duration?
    private(set) var credentialWarningIssued = false
    /// Set for good after a 100070.
    private(set) var timestampDisabled = false

    init(token: AuthToken? = nil) {
        self.token = token
    }

    mutating func acquire(forced: Bool, now: Duration, wallNow: Date, renewBefore: Duration) -> Acquire {
        if !forced, let token, token.info.isUsable(at: wallNow) {
            if !token.info.needsRenewal(at: wallNow, renewBefore: renewBefore) { return .use(token) }
            // Renewing early must not hold anyone up while the old token still works.
            if authenticating { return .use(token) }
            if let paused = renewalPausedUntil, now < paused { return .use(token) }
        }
        if authenticating { return .wait }
        if !forced, let blockedUntil, now < blockedUntil {
            return .sleep(blockedUntil - now)
        }
        authenticating = true
        return .lead
    }

    /// Callers waiting for the attempt in flight.
    var waiterCount: Int { waiters.count }

    /// Registers a waiter; `false` when no attempt is in flight any more (ask again).
    mutating func addWaiter(_ id: UInt64, _ waiter: Waiter) -> Bool {
        guard authenticating else { return false }
        waiters[id] = waiter
        return true
    }

    /// Removes a waiter whose task was cancelled; `nil` when the attempt already resumed it.
    mutating func removeWaiter(_ id: UInt64) -> Waiter? {
        waiters.removeValue(forKey: id)
    }

    /// Ends the attempt in flight.
    mutating func leaderFinished(
        _ outcome: AttemptOutcome, forced: Bool, now: Duration, wallNow: Date, credentialBackoff: Duration,
        renewalPause: Duration
    ) -> Finish {
        authenticating = false
        let resumed = Array(waiters.values)
        waiters = [:]
        var finish = Finish(
            leader: .again, waiters: resumed, waiterResult: .again, warnAboutCredentials: false,
            warnAboutTimestamp: false)
        let usableOld = token.flatMap { $0.info.isUsable(at: wallNow) ? $0 : nil }

        switch outcome {
        case .token(let fresh):
            token = fresh
            blockedUntil = nil
            renewalPausedUntil = nil
            credentialWarningIssued = false
            finish.leader = .token(fresh)
            finish.waiterResult = .token(fresh)
        case .timestampRejected:
            finish.warnAboutTimestamp = !timestampDisabled
            timestampDisabled = true
        case .cancelled:
            break
        case .failed(let failure):
            if case .credentials = failure {
                blockedUntil = now + credentialBackoff
                finish.warnAboutCredentials = !credentialWarningIssued
                credentialWarningIssued = true
                if usableOld != nil { renewalPausedUntil = now + credentialBackoff }
            } else if case .transient = failure, usableOld != nil {
                renewalPausedUntil = now + renewalPause
            }
            if let usableOld, failure != .shutdown {
                finish.waiterResult = .staleToken(usableOld, failure)
                finish.leader = forced ? .failed(failure) : .token(usableOld)
            } else {
                finish.waiterResult = .failed(failure)
                finish.leader = .failed(failure)
            }
        }
        return finish
    }

    /// Drops `used` after the server refused it, unless a newer token already replaced it.
    mutating func invalidate(_ used: AuthToken) {
        if token == used {
            token = nil
            renewalPausedUntil = nil
        }
    }
}

/// The values ``AuthStateMachine`` exchanges with its callers; outside the generic type so a waiter can be a
/// continuation that resumes with ``AuthFlow/Result``.
enum AuthFlow {
    /// Why an attempt did not produce a token.
    enum Failure: Error, Sendable, Hashable {
        /// Retry with back-off.
        case transient(retCode: Int?, reason: String, cause: IoTCoreError.Code = .serviceUnavailable)
        /// `/auth` refused the credentials; `/auth` rests for the credential back-off.
        case credentials(retCode: Int, reason: String)
        /// The transport is shut down.
        case shutdown

        var retCode: Int? {
            switch self {
            case .transient(let retCode, _, _): retCode
            case .credentials(let retCode, _): retCode
            case .shutdown: nil
            }
        }

        var reason: String {
            switch self {
            case .transient(_, let reason, _), .credentials(_, let reason): reason
            case .shutdown: "the client was shut down"
            }
        }

        /// The kind of error this failure is when it ends a call.
        var code: IoTCoreError.Code {
            switch self {
            case .transient(_, _, let cause): cause
            case .credentials: .credentials
            case .shutdown: .shutdown
            }
        }
    }

    /// How one `/auth` attempt ended, as the leader reports it.
    enum AttemptOutcome: Sendable, Hashable {
        case token(AuthToken)
        case failed(Failure)
        /// 100070: the server refused the Timestamp.
        case timestampRejected
        /// The leader's task was cancelled before the attempt ended.
        case cancelled
    }

    /// What `AuthStateMachine.acquire` tells a caller to do.
    enum Acquire: Sendable, Hashable {
        /// Send with this token.
        case use(AuthToken)
        /// An attempt is in flight: register as a waiter.
        case wait
        /// `/auth` rests after refusing the credentials: sleep this long, then ask again.
        case sleep(Duration)
        /// Send `/auth` now, then report with `leaderFinished`.
        case lead
    }

    /// What a waiter (or the leader) gets when the attempt ends.
    enum Result: Sendable, Hashable {
        /// A fresh token.
        case token(AuthToken)
        /// The attempt failed but the old token is still valid: use it; a forced caller counts it as `failure`.
        case staleToken(AuthToken, Failure)
        case failed(Failure)
        /// Ask again at once (the leader was cancelled, or the Timestamp is dropped for the next attempt).
        case again
        /// The waiter's own task was cancelled.
        case cancelled
    }
}
