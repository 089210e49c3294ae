/// An error of the IoT-Core client. It never carries the device secret or the token.
public struct IoTCoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of error; an extensible set of values rather than an enum, so new kinds do not break `switch`es.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String

        private init(_ name: String) { self.name = name }

        /// The request got no complete response (TLS, reset, an oversized answer).
        public static let transport = Code("transport")
        /// No connection could be made: refused, unreachable, or the name did not resolve.
        public static let connect = Code("connect")
        /// The request got no answer within the request timeout.
        public static let timeout = Code("timeout")
        /// ``RetryPolicy/maxAttempts`` failed attempts in a row; the data stays with the caller.
        public static let retriesExhausted = Code("retries_exhausted")
        /// The configuration cannot work; ``IoTCoreError/message`` lists every problem found.
        public static let invalidConfiguration = Code("invalid_configuration")
        /// `/auth` refused the credentials (RetCode 171, 100071, 100072 or 230).
        public static let credentials = Code("credentials")
        /// The server answered something the client cannot use (not JSON, no RetCode, no usable token).
        public static let malformedResponse = Code("malformed_response")
        /// The service answered a transient RetCode (130, 100077, or one the spec does not list).
        public static let serviceUnavailable = Code("service_unavailable")
        /// The client was shut down while the call waited.
        public static let shutdown = Code("shutdown")
        /// The token cache file could not be read or written.
        public static let tokenStore = Code("token_store")

        /// A short snake_case name, fit for a metric label.
        public var description: String { name }
    }

    /// What kind of error.
    public var code: Code
    /// What happened, for people; free of secrets.
    public var message: String
    /// The server's RetCode when one was involved.
    public var retCode: Int?
    /// The cause, when another error led to this one.
    public var underlying: (any Error & Sendable)?
    /// Where the error was made.
    public var file: String
    /// Where the error was made.
    public var line: Int

    /// Creates an error.
    public init(
        code: Code, message: String, retCode: Int? = nil, underlying: (any Error & Sendable)? = nil,
        file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.retCode = retCode
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    /// ``code`` as a metric label.
    public var metricLabel: String { code.description }

    /// `IoTCoreError(retries_exhausted): message (RetCode 130)`.
    public var description: String {
        var text = "IoTCoreError(\(code)): \(message)"
        if let retCode { text += " (RetCode \(retCode))" }
        return text
    }
}
