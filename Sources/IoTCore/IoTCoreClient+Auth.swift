import FoundationEssentials
import Logging
import Synchronization

extension IoTCoreClient {
    /// Authenticates now, even when the current token is still good, and returns what is known about the new
    /// token (never the token itself).
    ///
    /// Transient failures are retried with back-off under ``RetryPolicy``; a refused Timestamp (100070) is
    /// retried without it. Unlike ``publish(topic:body:)``, which waits out refused credentials and keeps
    /// trying, this method reports them at once, so a caller checking a configuration gets an answer.
    ///
    /// - Throws: ``IoTCoreError`` with ``IoTCoreError/Code/credentials`` (RetCode 171, 100071, 100072, 230),
    ///   ``IoTCoreError/Code/retriesExhausted`` or ``IoTCoreError/Code/shutdown``; `CancellationError`.
    @discardableResult
    public func authenticate() async throws -> TokenInfo {
        var retry = RetryState(policy: configuration.retry)
        while true {
            try Task.checkCancellation()
            switch try await obtainToken(forced: true) {
            case .success(let token):
                return token.info
            case .failure(.credentials(let retCode, let reason)):
                throw IoTCoreError(code: .credentials, message: reason, retCode: retCode)
            case .failure(.shutdown):
                throw IoTCoreError(code: .shutdown, message: "the client was shut down")
            case .failure(let failure):
                try await retryAfterFailure(&retry, failure, backOff: true)
            }
        }
    }

    /// What is known about the current token, if there is one; no request is made.
    public var currentToken: TokenInfo? {
        auth.withLock { $0.token?.info }
    }

    /// A token to send with, from the state machine or from one `/auth` attempt (led by this caller or shared
    /// with the caller leading it).
    ///
    /// - Parameter forced: authenticate even if the current token is good, and do not accept an old token
    ///   when the attempt fails.
    /// - Throws: `CancellationError`.
    func obtainToken(forced: Bool) async throws -> Result<AuthToken, AuthFlow.Failure> {
        while true {
            try Task.checkCancellation()
            let now = time.monotonic()
            let wallNow = time.wall()
            let renewBefore = configuration.renewBefore
            switch auth.withLock({ $0.acquire(forced: forced, now: now, wallNow: wallNow, renewBefore: renewBefore) }) {
            case .use(let token):
                return .success(token)
            case .sleep(let duration):
                logger.debug(
                    "waiting before authenticating again",
                    metadata: ["iotcore.delay_ms": "\(duration.clampedNanoseconds / 1_000_000)"])
                try await time.sleep(duration)
            case .wait:
                switch await waitForAttempt() {
                case .token(let token):
                    return .success(token)
                case .staleToken(let token, let failure):
                    if !forced { return .success(token) }
                    return .failure(failure)
                case .failed(let failure):
                    return .failure(failure)
                case .again:
                    continue
                case .cancelled:
                    throw CancellationError()
                }
            case .lead:
                switch try await leadAttempt(forced: forced) {
                case .token(let token), .staleToken(let token, _):
                    return .success(token)
                case .failed(let failure):
                    return .failure(failure)
                case .again, .cancelled:
                    continue
                }
            }
        }
    }

    /// Waits for the attempt in flight; a cancelled task stops waiting at once.
    private func waitForAttempt() async -> AuthFlow.Result {
        let id = nextWaiterID.add(1, ordering: .relaxed).newValue
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<AuthFlow.Result, Never>) in
                let immediate: AuthFlow.Result? = auth.withLock { state in
                    if Task.isCancelled { return .cancelled }
                    return state.addWaiter(id, continuation) ? nil : .again
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            auth.withLock { $0.removeWaiter(id) }?.resume(returning: .cancelled)
        }
    }

    /// Sends one `/auth` request as the single flight's leader and hands its result to every waiter. Runs the
    /// state machine's `leaderFinished` on every path, so waiters are never left hanging.
    private func leadAttempt(forced: Bool) async throws -> AuthFlow.Result {
        let outcome: AuthFlow.AttemptOutcome
        var thrown: (any Error)?
        do {
            outcome = try await authAttempt()
        } catch let error as IoTCoreError where error.code == .shutdown {
            outcome = .failed(.shutdown)
        } catch {
            outcome = .cancelled
            thrown = error
        }
        let credentialBackoff = configuration.retry.credentialBackoff
        let renewalPause = configuration.retry.maxBackoff
        let now = time.monotonic()
        let wallNow = time.wall()
        let finish = auth.withLock {
            $0.leaderFinished(
                outcome, forced: forced, now: now, wallNow: wallNow, credentialBackoff: credentialBackoff,
                renewalPause: renewalPause)
        }
        for waiter in finish.waiters {
            waiter.resume(returning: finish.waiterResult)
        }
        if let thrown { throw thrown }

        if finish.warnAboutTimestamp {
            logger.warning("IoT-Core refused the auth Timestamp (device clock?); authenticating without it from now on")
        }
        switch outcome {
        case .token(let token):
            counters.withLock { $0.authRenewals += 1 }
            // Not a success for health: a token the service then refuses for every publish (100073) must not
            // restart the failure timer on each renewal. Only an answered publish ends a failure.
            logger.debug(
                "obtained an IoT-Core token",
                metadata: [
                    "iotcore.token.expires_at": "\(token.info.expiresAt.timeIntervalSince1970)",
                    "iotcore.token.expiry_source": "\(token.info.expirySource.rawValue)",
                ])
            await saveToken(token)
        case .failed(.credentials(let retCode, let reason)):
            if finish.warnAboutCredentials {
                // One clear line per episode; the repeats until it is fixed are debug-level.
                logger.warning(
                    "IoT-Core refused the device credentials; check product_sn, device_sn and device_secret",
                    metadata: [
                        "iotcore.retcode": "\(retCode)", "iotcore.reason": "\(reason)",
                        "iotcore.product_sn": "\(configuration.credentials.productSN)",
                        "iotcore.device_sn": "\(configuration.credentials.deviceSN)",
                        "iotcore.retry_in_s": "\(credentialBackoff.clampedNanoseconds / 1_000_000_000)",
                    ])
            } else {
                logger.debug(
                    "IoT-Core still refuses the device credentials",
                    metadata: ["iotcore.retcode": "\(retCode)", "iotcore.reason": "\(reason)"])
            }
        case .failed(.transient(let retCode, let reason, _)):
            if case .staleToken = finish.leader {
                logger.debug(
                    "renewing the IoT-Core token failed; the current one is still valid",
                    metadata: [
                        "iotcore.reason": "\(reason)", "iotcore.retcode": "\(retCode.map(String.init) ?? "none")",
                    ])
            }
        case .failed(.shutdown), .timestampRejected, .cancelled:
            break
        }
        return finish.leader
    }

    /// One `/auth` request and its verdict.
    ///
    /// - Throws: `CancellationError`, or ``IoTCoreError/Code/shutdown``.
    private func authAttempt() async throws -> AuthFlow.AttemptOutcome {
        let wanted =
            switch configuration.authTimestamp {
            case .never: false
            case .always: true
            case .whenSynchronised: time.clockSynchronised()
            }
        let sendTimestamp = wanted && !auth.withLock { $0.timestampDisabled }
        let body = Self.authBody(
            productSN: configuration.credentials.productSN, deviceSN: configuration.credentials.deviceSN,
            timestampMilliseconds: sendTimestamp ? Int64((time.wall().timeIntervalSince1970 * 1000).rounded()) : nil)
        let request = HTTPRequest(
            url: endpoint + "/auth",
            headers: [
                ("Content-Type", "application/json"),
                ("Authorization", Signer.sign(body: body, secret: configuration.credentials.deviceSecret)),
            ],
            body: body)
        let outcome = try await exchange(request, publishBytes: nil)
        switch RetCodePolicy(request: .auth).action(for: outcome) {
        case .succeed:
            guard case .response(_, let answer?) = outcome, let token = answer.usableToken else {
                return .failed(
                    .transient(retCode: 0, reason: "the /auth answer has no usable Token", cause: .malformedResponse))
            }
            return .token(AuthToken(value: Secret(token), info: TokenInfo(token: token, receivedAt: time.wall())))
        case .authenticateWithoutTimestamp(let reason):
            // Without a Timestamp in the request a 100070 cannot be fixed by dropping it: retry with back-off.
            return sendTimestamp ? .timestampRejected : .failed(.transient(retCode: 100070, reason: reason))
        case .credentialsRefused(let retCode, let reason):
            return .failed(.credentials(retCode: retCode, reason: reason))
        case .retry(let retCode, let reason, let cause):
            return .failed(.transient(retCode: retCode, reason: reason, cause: cause))
        case .reauthenticate(let retCode, let reason), .reject(let retCode, let reason),
            .tooLarge(let retCode, let reason):
            return .failed(.transient(retCode: retCode, reason: reason))
        }
    }

    /// Writes the token cache off the cooperative pool; a failure costs only an extra `/auth` after a restart.
    private func saveToken(_ token: AuthToken) async {
        guard let tokenStore else { return }
        let endpoint = self.endpoint
        let failure = await transport.performBlocking { () -> IoTCoreError? in
            do throws(IoTCoreError) {
                try tokenStore.save(token, endpoint: endpoint)
                return nil
            } catch {
                return error
            }
        }
        if let failure {
            logger.warning(
                "cannot write the IoT-Core token cache",
                metadata: ["file.path": "\(tokenStore.path)", "error": "\(failure.message)"])
        }
    }

    /// The exact `/auth` body: compact JSON, `ProductSN` then `DeviceSN` then the optional `Timestamp`. Built by
    /// hand because the signature covers these bytes and an encoder may reorder keys or escape `/`.
    static func authBody(productSN: String, deviceSN: String, timestampMilliseconds: Int64?) -> [UInt8] {
        var json = "{\"ProductSN\":" + jsonString(productSN) + ",\"DeviceSN\":" + jsonString(deviceSN)
        if let timestampMilliseconds { json += ",\"Timestamp\":\(timestampMilliseconds)" }
        json += "}"
        return Array(json.utf8)
    }

    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
