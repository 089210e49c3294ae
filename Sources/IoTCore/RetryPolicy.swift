/// How ``IoTCoreClient`` retries.
///
/// | key | type | default | meaning |
/// |---|---|---|---|
/// | `initialBackoff` | Duration | 500 ms | the cap of the first retry's delay |
/// | `maxBackoff` | Duration | 60 s | the largest delay between two attempts |
/// | `maxAttempts` | Int? | nil | failed attempts before ``IoTCoreError/Code/retriesExhausted``; nil never gives up |
/// | `credentialBackoff` | Duration | 5 min | the pause after `/auth` refused the credentials |
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
