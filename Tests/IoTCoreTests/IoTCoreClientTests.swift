import FoundationEssentials
import Logging
import Synchronization
import Testing

@testable import IoTCore

/// The client's retry, re-authentication and single-flight behaviour against a scripted transport, in virtual
/// time: nothing here sleeps for real.
@Suite("IoTCoreClient behaviour", .timeLimit(.minutes(1)))
struct IoTCoreClientTests {
    static let token = Fixtures.jwt(exp: 1_700_604_800, iat: 1_700_000_000)
    static let topic = "/abcdefgh12345678/device001/upload"

    static func client(
        _ transport: ScriptedTransport, time: ManualTime = ManualTime(), retry: RetryPolicy = RetryPolicy(),
        sendTimestamp: Bool = false, logger: Logger = Fixtures.logger
    ) throws -> IoTCoreClient {
        try IoTCoreClient(
            configuration: Fixtures.configuration(retry: retry, sendTimestamp: sendTimestamp), logger: logger,
            transport: transport, time: time.source)
    }

    static func isAuth(_ request: HTTPRequest) -> Bool { request.url.hasSuffix("/auth") }

    static func header(_ request: HTTPRequest?, _ name: String) -> String? {
        request?.headers.first { $0.name == name }?.value
    }

    @Test("auth then publish: headers, body, signature, statistics")
    func happyPath() async throws {
        let transport = ScriptedTransport { request, _ in
            Self.isAuth(request) ? Fixtures.authOK(token: Self.token) : Fixtures.publishOK("42")
        }
        let client = try Self.client(transport)
        #expect(try await client.publish(topic: Self.topic, body: Array("hello".utf8)) == .delivered(messageID: "42"))

        let auth = try #require(transport.authRequests.first)
        #expect(auth.url == "https://iot.example.test/auth")
        #expect(
            String(decoding: auth.body, as: UTF8.self) == #"{"ProductSN":"abcdefgh12345678","DeviceSN":"device001"}"#)
        #expect(Self.header(auth, "Content-Type") == "application/json")
        #expect(
            Self.header(auth, "Authorization") == "00a241845eef3cc51dfa41e30059e34b70d85d9d0fe769942e8b7d71a0dd77ae")

        let publish = try #require(transport.publishRequests.first)
        #expect(publish.url == "https://iot.example.test/topic/abcdefgh12345678/device001/upload")
        #expect(Self.header(publish, "Password") == Self.token)
        #expect(Self.header(publish, "Content-Type") == "application/octet-stream")
        #expect(publish.body == Array("hello".utf8))

        let statistics = client.statistics
        #expect(statistics.requests == 2)
        #expect(statistics.authRequests == 1)
        #expect(statistics.authRenewals == 1)
        #expect(statistics.responsesByRetCode == [0: 2])
        #expect(statistics.bytesSent == 5)
        #expect(statistics.bytesDelivered == 5)
        #expect(statistics.messagesDelivered == 1)
        #expect(statistics.retries == 0)
        #expect(statistics.latency.count == 2)

        // The token is reused.
        _ = try await client.publish(topic: Self.topic, body: [1])
        #expect(transport.authRequests.count == 1)
    }

    @Test(
        "permanent answers end the call",
        arguments: [
            (230, "rejected"), (100075, "rejected"), (100076, "tooLarge"),
        ])
    func permanent(_ retCode: Int, _ kind: String) async throws {
        let transport = ScriptedTransport { request, _ in
            Self.isAuth(request) ? Fixtures.authOK(token: Self.token) : Fixtures.retCode(retCode, message: "no")
        }
        let client = try Self.client(transport)
        let outcome = try await client.publish(topic: Self.topic, body: [1])
        switch outcome {
        case .rejected(let code, let reason) where kind == "rejected":
            #expect(code == retCode)
            #expect(reason.contains("\(retCode)"))
        case .tooLarge(let code, _) where kind == "tooLarge":
            #expect(code == retCode)
        default:
            Issue.record("RetCode \(retCode): \(outcome)")
        }
        #expect(transport.publishRequests.count == 1)
    }

    enum Transient: String, CaseIterable, Sendable {
        case retCode130, retCode100077, notJSON, serverError, noRetCode, reset, timeout, refused

        var response: HTTPResponse {
            get throws {
                switch self {
                case .retCode130: return Fixtures.retCode(130)
                case .retCode100077: return Fixtures.retCode(100077)
                case .notJSON: return Fixtures.json("<html>bad gateway</html>", status: 502)
                case .serverError: return Fixtures.json("", status: 503)
                case .noRetCode: return Fixtures.json(#"{"Message":"?"}"#)
                case .reset: throw TransportFailure(kind: .connectionReset, message: "reset", curlCode: 56)
                case .timeout: throw TransportFailure(kind: .timeout, message: "timeout", curlCode: 28)
                case .refused: throw TransportFailure(kind: .connect, message: "refused", curlCode: 7)
                }
            }
        }
    }

    @Test("transient failures are retried with growing, jittered back-off", arguments: Transient.allCases)
    func transient(_ failure: Transient) async throws {
        let publishes = Atomic(0)
        let transport = ScriptedTransport { request, _ in
            if Self.isAuth(request) { return Fixtures.authOK(token: Self.token) }
            // Fail four times, then succeed.
            if publishes.add(1, ordering: .relaxed).newValue <= 4 { return try failure.response }
            return Fixtures.publishOK()
        }
        let time = ManualTime()
        let client = try Self.client(transport, time: time)
        #expect(try await client.publish(topic: Self.topic, body: [7]) == .delivered(messageID: "123456"))
        #expect(transport.publishRequests.count == 5)
        #expect(transport.publishRequests.allSatisfy { $0.body == [7] })
        let sleeps = time.sleeps
        #expect(sleeps.count == 4)
        for (index, sleep) in sleeps.enumerated() {
            #expect(sleep >= .zero && sleep <= .milliseconds(500) * (1 << index))
        }
        #expect(client.statistics.retries == 4)
    }

    @Test("maxAttempts bounds the retries")
    func exhausted() async throws {
        let transport = ScriptedTransport { request, _ in
            Self.isAuth(request) ? Fixtures.authOK(token: Self.token) : Fixtures.retCode(130)
        }
        let client = try Self.client(transport, retry: RetryPolicy(maxAttempts: 3))
        do {
            _ = try await client.publish(topic: Self.topic, body: [1])
            Issue.record("expected an error")
        } catch let error as IoTCoreError {
            #expect(error.code == .retriesExhausted)
            #expect(error.retCode == 130)
            #expect((error.underlying as? IoTCoreError)?.code == .serviceUnavailable)
        }
        #expect(transport.publishRequests.count == 3)
    }

    @Test("a refused token means authenticating again and resending the same data", arguments: [100073, 100074])
    func reauthenticate(_ retCode: Int) async throws {
        let publishes = Atomic(0)
        let transport = ScriptedTransport { request, _ in
            if Self.isAuth(request) { return Fixtures.authOK(token: Self.token) }
            if publishes.add(1, ordering: .relaxed).newValue == 1 { return Fixtures.retCode(retCode) }
            return Fixtures.publishOK()
        }
        let time = ManualTime()
        let client = try Self.client(transport, time: time)
        #expect(try await client.publish(topic: Self.topic, body: [9, 9]) == .delivered(messageID: "123456"))
        #expect(transport.authRequests.count == 2)
        #expect(transport.publishRequests.map(\.body) == [[9, 9], [9, 9]])
        // The first re-authentication is immediate.
        #expect(time.sleeps.isEmpty)
        #expect(client.statistics.authRenewals == 2)
    }

    @Test("a token refused again and again backs off instead of ping-ponging")
    func reauthenticateLoop() async throws {
        let transport = ScriptedTransport { request, _ in
            Self.isAuth(request) ? Fixtures.authOK(token: Self.token) : Fixtures.retCode(100074)
        }
        let time = ManualTime()
        let client = try Self.client(transport, time: time, retry: RetryPolicy(maxAttempts: 5))
        await #expect(throws: IoTCoreError.self) {
            try await client.publish(topic: Self.topic, body: [1])
        }
        // One free re-authentication, then 4 counted failures with back-off between them.
        #expect(transport.publishRequests.count == 6)
        #expect(time.sleeps.count == 4)
    }

    @Test("refused credentials: one warning, long back-off, keep trying, then recover")
    func credentials() async throws {
        let auths = Atomic(0)
        let transport = ScriptedTransport { request, _ in
            if Self.isAuth(request) {
                return auths.add(1, ordering: .relaxed).newValue <= 3
                    ? Fixtures.retCode(100072, message: "device disabled") : Fixtures.authOK(token: Self.token)
            }
            return Fixtures.publishOK()
        }
        let handler = RecordingLogHandler()
        let time = ManualTime()
        let client = try Self.client(transport, time: time, logger: Logger(label: "t", factory: { _ in handler }))
        #expect(try await client.publish(topic: Self.topic, body: [1]) == .delivered(messageID: "123456"))
        #expect(transport.authRequests.count == 4)
        // Three refusals: each followed by the credential back-off (5 minutes), never a hot loop.
        #expect(time.sleeps.filter { $0 == .seconds(300) }.count == 3)
        let warnings = handler.records.withLock { $0 }.filter {
            $0.level == .warning && $0.message.contains("credentials")
        }
        #expect(warnings.count == 1)
        #expect(warnings.first?.metadata.contains("100072") == true)
    }

    @Test("authenticate() reports refused credentials at once")
    func authenticateCredentials() async throws {
        let transport = ScriptedTransport { _, _ in Fixtures.retCode(171, message: "signature error") }
        let client = try Self.client(transport)
        do {
            try await client.authenticate()
            Issue.record("expected an error")
        } catch let error as IoTCoreError {
            #expect(error.code == .credentials)
            #expect(error.retCode == 171)
        }
        #expect(transport.requests.count == 1)
    }

    @Test("authenticate() always makes a fresh /auth and returns the token's info")
    func authenticateForced() async throws {
        let transport = ScriptedTransport { _, _ in Fixtures.authOK(token: Self.token) }
        let client = try Self.client(transport)
        let first = try await client.authenticate()
        #expect(first.expiresAt == Date(timeIntervalSince1970: 1_700_604_800))
        #expect(first.expirySource == .jwt)
        _ = try await client.authenticate()
        #expect(transport.authRequests.count == 2)
    }

    @Test("100070 drops the Timestamp for good")
    func timestamp() async throws {
        let transport = ScriptedTransport { request, _ in
            if Self.isAuth(request) {
                let body = String(decoding: request.body, as: UTF8.self)
                return body.contains("Timestamp") ? Fixtures.retCode(100070) : Fixtures.authOK(token: Self.token)
            }
            return Fixtures.publishOK()
        }
        let time = ManualTime()
        let client = try Self.client(transport, time: time, sendTimestamp: true)
        #expect(try await client.publish(topic: Self.topic, body: [1]) == .delivered(messageID: "123456"))
        let bodies = transport.authRequests.map { String(decoding: $0.body, as: UTF8.self) }
        #expect(
            bodies == [
                #"{"ProductSN":"abcdefgh12345678","DeviceSN":"device001","Timestamp":1700000000000}"#,
                #"{"ProductSN":"abcdefgh12345678","DeviceSN":"device001"}"#,
            ])
        #expect(time.sleeps.isEmpty)
        _ = try await client.authenticate()
        #expect(!String(decoding: transport.authRequests.last!.body, as: UTF8.self).contains("Timestamp"))
    }

    @Test("a transient /auth failure backs off and retries")
    func authTransient() async throws {
        let auths = Atomic(0)
        let transport = ScriptedTransport { request, _ in
            if Self.isAuth(request) {
                if auths.add(1, ordering: .relaxed).newValue <= 2 {
                    throw TransportFailure(kind: .connect, message: "refused", curlCode: 7)
                }
                return Fixtures.authOK(token: Self.token)
            }
            return Fixtures.publishOK()
        }
        let time = ManualTime()
        let client = try Self.client(transport, time: time)
        #expect(try await client.publish(topic: Self.topic, body: [1]) == .delivered(messageID: "123456"))
        #expect(transport.authRequests.count == 3)
        #expect(time.sleeps.count == 2)
    }

    @Test("concurrent publishes share one /auth (single flight)")
    func singleFlight() async throws {
        let gate = Gate()
        let transport = ScriptedTransport { request, _ in
            if Self.isAuth(request) {
                await gate.wait()
                return Fixtures.authOK(token: Self.token)
            }
            return Fixtures.publishOK()
        }
        let client = try Self.client(transport)
        let publishers = 8
        try await withThrowingTaskGroup(of: PublishOutcome.self) { group in
            for index in 0..<publishers {
                group.addTask { try await client.publish(topic: Self.topic, body: [UInt8(index)]) }
            }
            // Open the gate once everyone but the leader waits for its attempt (bounded: 10 s).
            for _ in 0..<10_000 {
                if client.auth.withLock({ $0.waiterCount }) == publishers - 1 { break }
                try await Task.sleep(for: .milliseconds(1))
            }
            let waiting = client.auth.withLock { $0.waiterCount }
            #expect(waiting == publishers - 1)
            gate.open()
            for try await outcome in group {
                #expect(outcome == .delivered(messageID: "123456"))
            }
        }
        #expect(transport.authRequests.count == 1)
        #expect(transport.publishRequests.count == publishers)
    }

    @Test("cancellation ends a publish waiting for the network")
    func cancelInFlight() async throws {
        let transport = ScriptedTransport { request, _ in
            if Self.isAuth(request) { return Fixtures.authOK(token: Self.token) }
            try await Task.sleep(for: .seconds(3600))
            return Fixtures.publishOK()
        }
        let client = try Self.client(transport)
        let task = Task { try await client.publish(topic: Self.topic, body: [1]) }
        for _ in 0..<10_000 where transport.publishRequests.isEmpty {
            try await Task.sleep(for: .milliseconds(1))
        }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
    }

    @Test("cancellation ends a publish waiting out a back-off or the credential pause")
    func cancelInBackoff() async throws {
        let transport = ScriptedTransport { _, _ in Fixtures.retCode(171) }
        let client = try IoTCoreClient(
            configuration: Fixtures.configuration(), logger: Fixtures.logger, transport: transport,
            time: .system())
        let task = Task { try await client.publish(topic: Self.topic, body: [1]) }
        for _ in 0..<10_000 where transport.requests.isEmpty {
            try await Task.sleep(for: .milliseconds(1))
        }
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(transport.requests.count == 1)
    }

    @Test("a cancelled waiter does not disturb the leader")
    func cancelWaiter() async throws {
        let gate = Gate()
        let transport = ScriptedTransport { request, _ in
            if Self.isAuth(request) {
                await gate.wait()
                return Fixtures.authOK(token: Self.token)
            }
            return Fixtures.publishOK()
        }
        let client = try Self.client(transport)
        let leader = Task { try await client.publish(topic: Self.topic, body: [1]) }
        for _ in 0..<10_000 where transport.authRequests.isEmpty {
            try await Task.sleep(for: .milliseconds(1))
        }
        let waiter = Task { try await client.publish(topic: Self.topic, body: [2]) }
        for _ in 0..<10_000 where client.auth.withLock({ $0.waiterCount }) == 0 {
            try await Task.sleep(for: .milliseconds(1))
        }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        gate.open()
        #expect(try await leader.value == .delivered(messageID: "123456"))
    }

    @Test("a token close to expiry is renewed; if renewal fails the old one is still used")
    func renewal() async throws {
        let fail = Atomic(false)
        let transport = ScriptedTransport { request, _ in
            if Self.isAuth(request) {
                if fail.load(ordering: .relaxed) { return Fixtures.retCode(130) }
                return Fixtures.authOK(token: Self.token)
            }
            return Fixtures.publishOK()
        }
        let time = ManualTime()
        let client = try Self.client(transport, time: time)
        _ = try await client.publish(topic: Self.topic, body: [1])
        #expect(transport.authRequests.count == 1)

        // 6.5 days later the token expires within renewBefore (1 day): renew.
        time.advance(by: .seconds(6 * 86_400 + 43_200))
        fail.store(true, ordering: .relaxed)
        #expect(try await client.publish(topic: Self.topic, body: [2]) == .delivered(messageID: "123456"))
        #expect(transport.authRequests.count == 2)
        #expect(time.sleeps.isEmpty)
        // Renewal rests for maxBackoff after a failure instead of trying on every publish.
        _ = try await client.publish(topic: Self.topic, body: [3])
        #expect(transport.authRequests.count == 2)
        time.advance(by: .seconds(61))
        fail.store(false, ordering: .relaxed)
        _ = try await client.publish(topic: Self.topic, body: [4])
        #expect(transport.authRequests.count == 3)
    }

    @Test("a shut-down transport ends the call with .shutdown")
    func shutdown() async throws {
        let transport = ScriptedTransport { _, _ in
            throw TransportFailure(kind: .shutdown, message: "down")
        }
        let client = try Self.client(transport)
        do {
            _ = try await client.publish(topic: Self.topic, body: [1])
            Issue.record("expected an error")
        } catch let error as IoTCoreError {
            #expect(error.code == .shutdown)
        }
        client.shutdown()
        client.shutdown()
        #expect(transport.shutdownCount.load(ordering: .relaxed) == 2)
    }

    @Test("send_timestamp auto: Timestamp in /auth only while the clock is known to be synchronised")
    func timestampWhenSynchronised() async throws {
        for synchronised in [true, false] {
            let transport = ScriptedTransport { request, _ in
                Self.isAuth(request) ? Fixtures.authOK(token: Self.token) : Fixtures.publishOK()
            }
            var configuration = Fixtures.configuration()
            configuration.authTimestamp = .whenSynchronised
            var time = ManualTime().source
            time.clockSynchronised = { synchronised }
            let client = try IoTCoreClient(configuration: configuration, logger: Fixtures.logger, transport: transport, time: time)
            _ = try await client.authenticate()
            let body = String(decoding: try #require(transport.authRequests.first).body, as: UTF8.self)
            #expect(body.contains("\"Timestamp\":1700000000000") == synchronised, "\(body)")
        }
        // The kernel's word alone is not enough: a clock at 1970 or at the build date is not synchronised.
        #expect(!TimeSource.systemClockIsSynchronised(now: Date(timeIntervalSince1970: 1_600_000_000)))
    }

    @Test("a token refused for every publish keeps the failure going though each /auth succeeds")
    func refusedTokenKeepsFailing() async throws {
        let client = Mutex<IoTCoreClient?>(nil)
        let seen = Mutex<[(publish: Bool, since: ContinuousClock.Instant?)]>([])
        let transport = ScriptedTransport { request, _ in
            let since = client.withLock { $0?.failure?.since }
            seen.withLock { $0.append((!Self.isAuth(request), since)) }
            return Self.isAuth(request) ? Fixtures.authOK(token: Self.token) : Fixtures.retCode(100073)
        }
        var retry = RetryPolicy()
        retry.maxAttempts = 6
        let made = try Self.client(transport, retry: retry)
        client.withLock { $0 = made }
        await #expect(throws: IoTCoreError.self) { try await made.publish(topic: Self.topic, body: [1]) }
        let start = try #require(made.failure?.since)
        // From the second refusal on (the first is an ordinary expiry), every request sees the same failure.
        let observed = seen.withLock { $0 }.dropFirst(4)
        #expect(observed.count >= 6)
        #expect(observed.allSatisfy { $0.since == start }, "the failure timer restarted: \(observed.map { $0.since.map { "\($0)" } ?? "none" })")
        client.withLock { $0 = nil }
    }
}

/// A one-shot gate: `wait()` suspends until `open()`.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state in
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
