/// Counters of one ``IoTCoreClient`` since it started; a snapshot, read through
/// ``IoTCoreClient/statistics``.
public struct ClientStatistics: Sendable, Hashable {
    /// HTTP requests handed to the transport (`/auth` and publishes, retries included).
    public var requests: Int = 0
    /// Responses with a readable RetCode, by RetCode.
    public var responsesByRetCode: [Int: Int] = [:]
    /// Responses without a readable RetCode (not JSON, no RetCode, truncated).
    public var malformedResponses: Int = 0
    /// Requests that got no complete response.
    public var transportFailures: Int = 0
    /// Attempts that were repeated after a failure (back-off retries and re-authentications).
    public var retries: Int = 0
    /// Tokens obtained from `/auth`.
    public var authRenewals: Int = 0
    /// `/auth` requests sent.
    public var authRequests: Int = 0
    /// Publish body bytes handed to the transport, retries included.
    public var bytesSent: Int = 0
    /// Publish body bytes the service acknowledged with RetCode 0.
    public var bytesDelivered: Int = 0
    /// Publishes acknowledged with RetCode 0.
    public var messagesDelivered: Int = 0
    /// Publishes answered ``PublishOutcome/rejected(retCode:reason:)`` or ``PublishOutcome/tooLarge(retCode:reason:)``.
    public var messagesRefused: Int = 0
    /// Request latencies of complete responses.
    public var latency = LatencySummary()

    /// Creates empty statistics.
    public init() {}

    /// A histogram of request latencies in seconds, Prometheus style.
    public struct LatencySummary: Sendable, Hashable {
        /// The bucket upper bounds in seconds; a last implicit bucket holds everything larger.
        public static let bucketBounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

        /// Observations.
        public var count: Int = 0
        /// The sum of the observations in seconds.
        public var sum: Double = 0
        /// Observations per bucket, not cumulative: `bucketCounts[i]` counts latencies in
        /// `(bucketBounds[i-1], bucketBounds[i]]`; the last entry counts those above the last bound.
        public var bucketCounts: [Int] = Array(repeating: 0, count: bucketBounds.count + 1)

        /// Creates an empty summary.
        public init() {}

        /// Adds one observation.
        public mutating func record(seconds: Double) {
            count += 1
            sum += seconds
            let index = Self.bucketBounds.firstIndex(where: { seconds <= $0 }) ?? Self.bucketBounds.count
            bucketCounts[index] += 1
        }
    }
}
