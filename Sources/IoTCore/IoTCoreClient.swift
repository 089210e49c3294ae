import FoundationEssentials
import Logging
import Synchronization

/// A device's client for the IoT-Core HTTPS interface: authenticates, keeps the token fresh, publishes.
///
/// ```swift
/// let client = try IoTCoreClient(
///     configuration: .init(region: .cnSh2, credentials: credentials), logger: logger)
/// defer { client.shutdown() }
/// switch try await client.publish(topic: "/\(psn)/\(dsn)/upload", body: Array(json.utf8)) {
/// case .delivered(let messageID): ...
/// case .rejected(_, let reason), .tooLarge(_, let reason): ... // dead-letter or split
/// }
/// ```
///
/// ``publish(topic:body:)`` follows the service's RetCode table: it retries transient failures with
/// exponential back-off and full jitter, authenticates again when the token is refused, and backs off long
/// when `/auth` refuses the credentials. It returns only when the data is delivered or can never be, and throws
/// only when it gives up (``RetryPolicy/maxAttempts``), the client is shut down, or the task is cancelled; the
/// data then stays with the caller. All requests share one libcurl multi handle on one thread.
public final class IoTCoreClient: Sendable {
    /// The largest body the service accepts, checked before sending.
    public static let maxBodyBytes = 131_072

    /// The configuration the client was made with.
    public let configuration: Configuration
    /// The endpoint without a trailing slash.
    let endpoint: String
    let logger: Logger
    let transport: any HTTPTransport
    let time: TimeSource
    let tokenStore: TokenStore?
    let auth: Mutex<AuthStateMachine<CheckedContinuation<AuthFlow.Result, Never>>>
    let counters = Mutex(ClientStatistics())
    let health = Mutex(Health())
    let nextWaiterID = Atomic<UInt64>(0)
    /// How many publishes may be in flight now (see ``concurrencyLimit``).
    let concurrency: AdaptiveConcurrency

    /// Whether requests are failing, so an outage is logged when it starts and ends, not per request.
    struct Health {
        var failing = false
        var failures = 0
        /// When the current run of failures began (monotonic), for health checks.
        var since: ContinuousClock.Instant?
        /// The last failure's reason (never a secret).
        var reason = ""
    }

    /// Creates a client and starts its libcurl thread; loads the cached token from ``Configuration/stateDirectory``.
    ///
    /// - Throws: ``IoTCoreError`` with ``IoTCoreError/Code/invalidConfiguration`` listing every problem of
    ///   `configuration`, or ``IoTCoreError/Code/transport`` when libcurl cannot start.
    public convenience init(configuration: Configuration, logger: Logger) throws {
        try Self.validate(configuration)
        let transport = try CurlDriver(
            options: .init(
                maxInFlight: max(configuration.maxInFlight, configuration.maxConcurrency ?? 0),
                connectTimeout: configuration.connectTimeout,
                requestTimeout: configuration.requestTimeout, caFile: configuration.caFile,
                maxResponseBytes: configuration.maxResponseBytes, userAgent: configuration.userAgent))
        do {
            try self.init(configuration: configuration, logger: logger, transport: transport, time: .system())
        } catch {
            transport.shutdown()
            throw error
        }
    }

    /// The seam for tests: any transport, any clocks.
    init(configuration: Configuration, logger: Logger, transport: any HTTPTransport, time: TimeSource) throws {
        try Self.validate(configuration)
        guard case .success(let endpoint) = Configuration.normalizedEndpoint(configuration.endpoint) else {
            throw IoTCoreError(code: .invalidConfiguration, message: "endpoint: invalid")
        }
        self.configuration = configuration
        self.endpoint = endpoint
        self.logger = logger
        self.transport = transport
        self.time = time
        self.concurrency = AdaptiveConcurrency(
            initial: configuration.maxInFlight, ceiling: max(configuration.maxInFlight, configuration.maxConcurrency ?? 0))
        self.tokenStore = configuration.stateDirectory.map {
            TokenStore(directory: $0, credentials: configuration.credentials)
        }
        var cached: AuthToken?
        if let tokenStore {
            switch tokenStore.load(endpoint: endpoint) {
            case .success(let token) where token.info.isUsable(at: time.wall()):
                cached = token
                logger.debug(
                    "using the cached IoT-Core token",
                    metadata: ["iotcore.token.expires_at": "\(token.info.expiresAt.timeIntervalSince1970)"])
            case .success:
                logger.debug("the cached IoT-Core token has expired")
            case .failure(let error):
                logger.debug("no cached IoT-Core token", metadata: ["error": "\(error.message)"])
            }
        }
        self.auth = Mutex(AuthStateMachine(token: cached))
    }

    deinit {
        transport.shutdown()
    }

    private static func validate(_ configuration: Configuration) throws(IoTCoreError) {
        let problems = configuration.problems()
        guard problems.isEmpty else {
            throw IoTCoreError(
                code: .invalidConfiguration,
                message: "invalid IoT-Core configuration: " + problems.joined(separator: "; "))
        }
    }

    /// The executor that runs tasks on the libcurl thread, between its turns of the event loop (nil with a test
    /// transport). A caller that publishes many requests back to back runs its publishing tasks there
    /// (`withTaskExecutorPreference`): an answer then resumes its task on the thread that read it, and the next
    /// request goes out from there, with no thread of the cooperative pool woken per request. Such tasks must not
    /// block; they run on the global executor once the client is shut down.
    public var taskExecutor: (any TaskExecutor)? { transport as? CurlDriver }

    /// Stops the libcurl thread; requests in flight or queued fail with ``IoTCoreError/Code/shutdown``.
    /// Idempotent.
    public func shutdown() {
        transport.shutdown()
    }

    /// How many publishes a caller should keep in flight now: ``Configuration/maxInFlight`` when
    /// ``Configuration/maxConcurrency`` is not set, otherwise adapted between them (``AdaptiveConcurrency``).
    public var concurrencyLimit: Int {
        concurrency.limit
    }

    /// The most ``concurrencyLimit`` may grow to (``Configuration/maxConcurrency``, or ``Configuration/maxInFlight``
    /// for a fixed limit).
    public var concurrencyCeiling: Int {
        concurrency.ceiling
    }

    /// Publishes on the wire now (auth requests are not counted), at most ``concurrencyLimit`` when the caller
    /// keeps to it.
    public var requestsInFlight: Int {
        concurrency.inFlight
    }

    /// A snapshot of the client's counters.
    public var statistics: ClientStatistics {
        counters.withLock { $0 }
    }

    /// Since when requests have been failing without a publish answered in between (transient errors, refused
    /// credentials, tokens refused again and again), and the last reason; nil while publishes are answered. A
    /// successful `/auth` alone does not end a failure. For health checks: a long failure means the
    /// device cannot deliver.
    public var failure: (since: ContinuousClock.Instant, reason: String)? {
        health.withLock { health in health.since.map { ($0, health.reason) } }
    }

    /// Publishes `body` to `topic`.
    ///
    /// - Parameters:
    ///   - topic: the MQTT topic with its leading `/`, such as `/PSN/DSN/upload` or
    ///     `/$system/PSN/DSN/tmodel/property/post`; it becomes the URL path `/topic` + `topic`.
    ///   - body: at most ``maxBodyBytes`` bytes.
    /// - Returns: ``PublishOutcome/delivered(messageID:)``, or why the data can never be delivered as it is.
    /// - Throws: `CancellationError` when the task is cancelled; ``IoTCoreError`` with
    ///   ``IoTCoreError/Code/retriesExhausted`` after ``RetryPolicy/maxAttempts`` failed attempts, or
    ///   ``IoTCoreError/Code/shutdown``. The data stays with the caller in every case.
    public func publish(topic: String, body: [UInt8]) async throws -> PublishOutcome {
        if let problem = TopicValidation.problem(in: topic) {
            counters.withLock { $0.messagesRefused += 1 }
            return .rejected(retCode: nil, reason: problem)
        }
        guard body.count <= Self.maxBodyBytes else {
            counters.withLock { $0.messagesRefused += 1 }
            return .tooLarge(
                retCode: nil, reason: "the body is \(body.count) bytes; the limit is \(Self.maxBodyBytes)")
        }
        let url = endpoint + "/topic" + topic
        var retry = RetryState(policy: configuration.retry)
        var reauthenticationsInARow = 0

        while true {
            try Task.checkCancellation()
            let token: AuthToken
            switch try await obtainToken(forced: false) {
            case .success(let current):
                token = current
            case .failure(.shutdown):
                throw IoTCoreError(code: .shutdown, message: "the client was shut down")
            case .failure(let failure):
                // After refused credentials the next obtainToken sleeps until /auth may be tried again.
                try await retryAfterFailure(&retry, failure, backOff: failure.code != .credentials)
                continue
            }

            let request = HTTPRequest(
                url: url,
                headers: [("Password", token.value.exposedValue), ("Content-Type", "application/octet-stream")],
                body: body)
            let outcome = try await exchange(request, publishBytes: body.count)
            switch RetCodePolicy(request: .publish).action(for: outcome) {
            case .succeed:
                var messageID = ""
                if case .response(_, let answer?) = outcome { messageID = answer.messageID ?? "" }
                counters.withLock {
                    $0.messagesDelivered += 1
                    $0.bytesDelivered += body.count
                }
                noteSuccess()
                return .delivered(messageID: messageID)
            case .reject(let retCode, let reason):
                counters.withLock { $0.messagesRefused += 1 }
                noteSuccess()
                return .rejected(retCode: retCode, reason: reason)
            case .tooLarge(let retCode, let reason):
                counters.withLock { $0.messagesRefused += 1 }
                noteSuccess()
                return .tooLarge(retCode: retCode, reason: reason)
            case .reauthenticate(let retCode, let reason):
                auth.withLock { $0.invalidate(token) }
                reauthenticationsInARow += 1
                logger.debug(
                    "IoT-Core refused the token; authenticating again",
                    metadata: ["iotcore.retcode": "\(retCode)", "iotcore.reason": "\(reason)"])
                // Once is normal (expiry); a fresh token refused again must not ping-pong at full speed.
                if reauthenticationsInARow == 1 {
                    counters.withLock { $0.retries += 1 }
                } else {
                    try await retryAfterFailure(&retry, .transient(retCode: retCode, reason: reason), backOff: true)
                }
            case .retry(let retCode, let reason, let cause):
                try await retryAfterFailure(
                    &retry, .transient(retCode: retCode, reason: reason, cause: cause), backOff: true)
            // The /auth-only actions; the policy never answers them for a publish.
            case .credentialsRefused(let retCode, let reason):
                try await retryAfterFailure(&retry, .transient(retCode: retCode, reason: reason), backOff: true)
            case .authenticateWithoutTimestamp(let reason):
                try await retryAfterFailure(&retry, .transient(retCode: 100070, reason: reason), backOff: true)
            }
        }
    }

    /// The per-call retry budget and back-off.
    struct RetryState {
        var backoff: Backoff
        var failures = 0
        let maxAttempts: Int?

        init(policy: RetryPolicy) {
            backoff = Backoff(policy: policy)
            maxAttempts = policy.maxAttempts
        }
    }

    /// Counts a failed attempt; throws when the budget is spent, otherwise sleeps the next back-off delay.
    ///
    /// - Throws: ``IoTCoreError/Code/retriesExhausted`` with the last failure as `underlying`, or
    ///   `CancellationError`.
    func retryAfterFailure(_ retry: inout RetryState, _ failure: AuthFlow.Failure, backOff: Bool) async throws {
        let retCode = failure.retCode
        let reason = failure.reason
        retry.failures += 1
        let hopeless = configuration.retry.failFast && (failure.code == .connect || failure.code == .credentials)
        // Refused credentials have their own, more useful warning; a call that gives up now says why itself.
        noteFailure(retCode: retCode, reason: reason, quiet: failure.code == .credentials || hopeless)
        if hopeless || retry.maxAttempts.map({ retry.failures >= $0 }) == true {
            throw IoTCoreError(
                code: .retriesExhausted, message: "gave up after \(retry.failures) failed attempts: \(reason)",
                retCode: retCode, underlying: IoTCoreError(code: failure.code, message: reason, retCode: retCode))
        }
        counters.withLock { $0.retries += 1 }
        guard backOff else { return }
        var random = ClosureRandomNumberGenerator(source: time.random)
        let delay = retry.backoff.next(using: &random)
        logger.debug(
            "retrying an IoT-Core request",
            metadata: [
                "iotcore.reason": "\(reason)", "iotcore.retcode": "\(retCode.map(String.init) ?? "none")",
                "iotcore.attempt": "\(retry.failures)", "iotcore.delay_ms": "\(delay.clampedNanoseconds / 1_000_000)",
            ])
        try await time.sleep(delay)
    }

    /// Sends one request and turns the answer into the policy's input, counting it.
    ///
    /// - Throws: `CancellationError`, or ``IoTCoreError/Code/shutdown``.
    func exchange(_ request: HTTPRequest, publishBytes: Int?) async throws -> RetCodePolicy.Outcome {
        counters.withLock {
            $0.requests += 1
            if let publishBytes { $0.bytesSent += publishBytes } else { $0.authRequests += 1 }
        }
        let isPublish = publishBytes != nil
        if isPublish { concurrency.begin() }
        do {
            let response: HTTPResponse
            do {
                response = try await transport.send(request)
            } catch {
                if isPublish {
                    concurrency.end(seconds: nil, overloaded: (error as? TransportFailure)?.kind == .timeout)
                }
                throw error
            }
            let answer = ServerAnswer.parse(response.body)
            if isPublish { concurrency.end(seconds: response.latency.seconds, overloaded: answer?.retCode == 130) }
            counters.withLock {
                $0.latency.record(seconds: response.latency.seconds)
                if let retCode = answer?.retCode {
                    $0.responsesByRetCode[retCode, default: 0] += 1
                } else {
                    $0.malformedResponses += 1
                }
            }
            return .response(status: response.status, answer: answer)
        } catch let failure as TransportFailure {
            if failure.kind == .shutdown {
                throw IoTCoreError(code: .shutdown, message: "the client was shut down", underlying: failure)
            }
            counters.withLock { $0.transportFailures += 1 }
            return .transportFailure(failure)
        }
    }

    func noteFailure(retCode: Int?, reason: String, quiet: Bool) {
        let first = health.withLock { health in
            health.failures += 1
            health.reason = retCode.map { "RetCode \($0): \(reason)" } ?? reason
            if health.since == nil { health.since = .now }
            defer { health.failing = true }
            return !health.failing
        }
        if first && !quiet {
            logger.warning(
                "IoT-Core requests are failing; retrying with back-off",
                metadata: ["iotcore.reason": "\(reason)", "iotcore.retcode": "\(retCode.map(String.init) ?? "none")"])
        }
    }

    func noteSuccess() {
        let failures = health.withLock { health in
            defer {
                health.failing = false
                health.failures = 0
                health.since = nil
            }
            return health.failing ? health.failures : 0
        }
        if failures > 0 {
            logger.notice("IoT-Core requests succeed again", metadata: ["iotcore.failed_attempts": "\(failures)"])
        }
    }
}
