/// One HTTP POST as the client hands it to a transport. Its description shows header names only: the
/// `Password` and `Authorization` values are credentials.
struct HTTPRequest: Sendable, CustomStringConvertible, CustomReflectable {
    /// The absolute URL.
    var url: String
    /// Header lines as `(name, value)`; values are already checked to hold no line breaks.
    var headers: [(name: String, value: String)]
    /// The body bytes.
    var body: [UInt8]

    var description: String {
        "HTTPRequest(POST \(url), headers: \(headers.map(\.name)), body: \(body.count) bytes)"
    }

    var customMirror: Mirror {
        Mirror(self, children: ["url": url, "headers": headers.map(\.name), "bodyBytes": body.count])
    }
}

/// A complete HTTP response, its body bounded by the transport.
struct HTTPResponse: Sendable, Hashable {
    /// The status code (0 when the server sent no status line).
    var status: Int
    /// The body, at most the transport's cap.
    var body: [UInt8]
    /// The time from submitting the request to the last byte of the answer.
    var latency: Duration
}

/// Why a request got no complete response. Every kind is transient for the retry policy; the kinds exist for
/// log lines and statistics.
struct TransportFailure: Error, Sendable, Hashable, CustomStringConvertible {
    enum Kind: String, Sendable, Hashable {
        case connect = "connect"
        case timeout = "timeout"
        case connectionReset = "connection_reset"
        case tls = "tls"
        case responseTooLarge = "response_too_large"
        case shutdown = "shutdown"
        case other = "other"
    }

    var kind: Kind
    /// libcurl's explanation; never contains request headers or the body.
    var message: String
    /// The libcurl code, when libcurl reported it.
    var curlCode: Int?

    var description: String {
        if let curlCode { return "\(kind.rawValue): \(message) (curl \(curlCode))" }
        return "\(kind.rawValue): \(message)"
    }
}

/// What the client needs from an HTTP stack. The production conformance is ``CurlDriver``; tests script
/// answers with a fake.
protocol HTTPTransport: Sendable {
    /// Sends `request`; throws a ``TransportFailure`` when no complete response came back and
    /// `CancellationError` when the calling task was cancelled (the request is then abandoned).
    func send(_ request: HTTPRequest) async throws -> HTTPResponse

    /// Runs a short blocking job (a file write with fsync) off the cooperative thread pool.
    func performBlocking<T: Sendable>(_ job: @escaping @Sendable () -> T) async -> T

    /// Fails queued and running requests and frees the transport's resources; idempotent.
    func shutdown()
}
