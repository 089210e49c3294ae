/// Counters of what the emulator answered, for tests and the `/_emulator/stats` endpoint.
public struct EmulatorStatistics: Sendable, Hashable {
    /// Answers given to `/auth` and `/topic/...` requests, by RetCode.
    public var answersByRetCode: [Int: Int]
    /// Successful authentications (tokens issued).
    public var authentications: Int
    /// Accepted messages (also those no longer retained in memory).
    public var acceptedMessages: Int
    /// Body bytes of the accepted messages.
    public var acceptedBytes: Int
    /// Connections closed right after accept because refusal was active.
    public var connectionsRefused: Int
    /// HTTP requests seen, inspection endpoints included.
    public var requests: Int
    /// The most `/auth` and `/topic` requests being answered at the same time (from the body read to the
    /// answer), so tests can tell concurrent sending from one-at-a-time.
    public var maxConcurrentRequests: Int = 0

    /// Creates statistics; all counters default to zero.
    public init(
        answersByRetCode: [Int: Int] = [:],
        authentications: Int = 0,
        acceptedMessages: Int = 0,
        acceptedBytes: Int = 0,
        connectionsRefused: Int = 0,
        requests: Int = 0
    ) {
        self.answersByRetCode = answersByRetCode
        self.authentications = authentications
        self.acceptedMessages = acceptedMessages
        self.acceptedBytes = acceptedBytes
        self.connectionsRefused = connectionsRefused
        self.requests = requests
    }

    /// The number of answers with `retCode`.
    public func answers(_ retCode: Int) -> Int {
        self.answersByRetCode[retCode, default: 0]
    }
}
