/// How ``IoTCoreClient`` retries.
///
/// | key | type | default | meaning |
/// |---|---|---|---|
/// | `initialBackoff` | Duration | 500 ms | the cap of the first retry's delay |
/// | `maxBackoff` | Duration | 60 s | the largest delay between two attempts |
/// | `maxAttempts` | Int? | nil | failed attempts before ``IoTCoreError/Code/retriesExhausted``; nil never gives up |
/// | `credentialBackoff` | Duration | 5 min | the pause after `/auth` refused the credentials |
/// | `failFast` | Bool | false | no connection, or refused credentials, end the call at once |
///
/// Delays grow exponentially with full jitter: the n-th delay is uniform in
/// `0 ... min(maxBackoff, initialBackoff * 2^n)`.
public struct RetryPolicy: Sendable, Hashable {
    /// The cap of the first retry's delay.
    public var initialBackoff: Duration
    /// The largest delay between two attempts.
    public var maxBackoff: Duration
    /// Failed attempts of one call before it throws ``IoTCoreError/Code/retriesExhausted``; `nil` retries
    /// retryable failures for as long as the task runs.
    public var maxAttempts: Int?
    /// The pause after `/auth` refused the credentials (RetCode 171, 100071, 100072): long, because only
    /// someone fixing the console or the configuration can help.
    public var credentialBackoff: Duration
    /// For one-shot commands (`uplink auth`, `uplink publish`): when no connection can be made or `/auth`
    /// refuses the credentials, the call throws ``IoTCoreError/Code/retriesExhausted`` at once (as curl exits 7)
    /// instead of waiting for a server that is not there or a secret someone has to fix. An agent keeps the
    /// default and rides the outage out with its data kept.
    public var failFast = false

    /// Creates a policy; every argument has the documented default.
    public init(
        initialBackoff: Duration = .milliseconds(500),
        maxBackoff: Duration = .seconds(60),
        maxAttempts: Int? = nil,
        credentialBackoff: Duration = .seconds(300)
    ) {
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.maxAttempts = maxAttempts
        self.credentialBackoff = credentialBackoff
    }
}
