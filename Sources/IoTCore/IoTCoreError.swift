/// An error of the IoT-Core client. It never carries the device secret or the token.
public struct IoTCoreError: Error, Sendable, CustomStringConvertible {
    /// What kind of error; an extensible set of values rather than an enum, so new kinds do not break `switch`es.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        /// What this kind of error means, for people (messages never show the type's name).
        public let summary: String

        private init(_ name: String, _ summary: String) {
            self.name = name
            self.summary = summary
        }

        public static func == (left: Code, right: Code) -> Bool { left.name == right.name }
        public func hash(into hasher: inout Hasher) { hasher.combine(name) }

        /// The request got no complete response (TLS, reset, an oversized answer).
        public static let transport = Code("transport", "cannot reach IoT-Core")
        /// No connection could be made: refused, unreachable, or the name did not resolve.
        public static let connect = Code("connect", "cannot connect to IoT-Core")
        /// The request got no answer within the request timeout.
        public static let timeout = Code("timeout", "IoT-Core did not answer in time")
        /// ``RetryPolicy/maxAttempts`` failed attempts in a row; the data stays with the caller.
        public static let retriesExhausted = Code("retries_exhausted", "IoT-Core kept failing")
        /// The configuration cannot work; ``IoTCoreError/message`` lists every problem found.
        public static let invalidConfiguration = Code("invalid_configuration", "the IoT-Core settings cannot work")
        /// `/auth` refused the credentials (RetCode 171, 100071, 100072 or 230).
        public static let credentials = Code("credentials", "IoT-Core refused the device's credentials")
        /// The server answered something the client cannot use (not JSON, no RetCode, no usable token).
        public static let malformedResponse = Code("malformed_response", "IoT-Core answered something unusable")
        /// The service answered a transient RetCode (130, 100077, or one the spec does not list).
        public static let serviceUnavailable = Code("service_unavailable", "IoT-Core is unavailable")
        /// The client was shut down while the call waited.
        public static let shutdown = Code("shutdown", "stopped")
        /// The token cache file could not be read or written.
        public static let tokenStore = Code("token_store", "the token cache")

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

    /// `IoT-Core kept failing: message (RetCode 130)`: for people, so no type name.
    public var description: String {
        var text = "\(code.summary): \(message)"
        if let retCode { text += " (RetCode \(retCode))" }
        return text
    }
}
