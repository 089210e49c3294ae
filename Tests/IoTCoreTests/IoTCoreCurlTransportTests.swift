import FoundationEssentials
import Glibc
import Synchronization
import Testing
import UplinkTestSupport

@testable import IoTCore

/// The real libcurl transport against a loopback HTTP server (plain HTTP is allowed for 127.0.0.0/8 only).
/// HTTPS against the emulator is the integration tests' job.
@Suite("libcurl transport (loopback)", .timeLimit(.minutes(1)), .serialized)
struct IoTCoreCurlTransportTests {
    static let token = Fixtures.jwt(exp: 4_102_444_800, iat: 4_101_840_000)

    /// Answers /auth with a token and publishes with a MessageID, like the service.
    static func service(_ request: LoopbackServer.Request) -> LoopbackServer.Reply {
        if request.path == "/auth" {
            return .respond(status: 200, body: Array(#"{"RetCode":0,"Message":"Success","Token":"\#(token)"}"#.utf8))
        }
        return .respond(status: 200, body: Array(#"{"RetCode":0,"Message":"Success","MessageID":"77"}"#.utf8))
    }

    static func client(
        _ server: LoopbackServer, maxInFlight: Int = 4, requestTimeout: Duration = .seconds(10),
        retry: RetryPolicy = RetryPolicy(initialBackoff: .milliseconds(1), maxBackoff: .milliseconds(5), maxAttempts: 2)
    ) throws -> IoTCoreClient {
        try IoTCoreClient(
            configuration: IoTCoreClient.Configuration(
                endpoint: server.endpoint, credentials: Fixtures.credentials, connectTimeout: .seconds(2),
                requestTimeout: requestTimeout, maxInFlight: maxInFlight, retry: retry),
            logger: Fixtures.logger)
    }

    @Test("auth and publishes on one kept-alive connection, exact wire format")
    func wireFormat() async throws {
        let server = try LoopbackServer(handler: Self.service)
        defer { server.stop() }
        let client = try Self.client(server)
        defer { client.shutdown() }
        let body = Array(#"{"RequestID":"1","Property":{"temp":{"Value":26.5}}}"#.utf8)
        for _ in 0..<3 {
            let outcome = try await client.publish(
                topic: "/$system/abcdefgh12345678/device001/tmodel/property/post", body: body)
            #expect(outcome == .delivered(messageID: "77"))
        }
        // A body above libcurl's Expect: 100-continue threshold goes through without the wait.
        let large = [UInt8](repeating: 0x61, count: 131_072)
        #expect(try await client.publish(topic: "/p/d/upload", body: large) == .delivered(messageID: "77"))

        let requests = server.requests
        #expect(requests.count == 5)
        let auth = try #require(requests.first)
        #expect(auth.method == "POST")
        #expect(auth.path == "/auth")
        #expect(auth.headers["content-type"] == "application/json")
        #expect(auth.headers["authorization"] == "00a241845eef3cc51dfa41e30059e34b70d85d9d0fe769942e8b7d71a0dd77ae")
        #expect(
            String(decoding: auth.body, as: UTF8.self) == #"{"ProductSN":"abcdefgh12345678","DeviceSN":"device001"}"#)

        let publish = requests[1]
        #expect(publish.path == "/topic/$system/abcdefgh12345678/device001/tmodel/property/post")
        #expect(publish.headers["password"] == Self.token)
        #expect(publish.headers["content-type"] == "application/octet-stream")
        #expect(publish.headers["expect"] == nil)
        #expect(publish.body == body)
        #expect(requests[4].body == large)
        #expect(requests[4].headers["expect"] == nil)
        // Keep-alive: one TCP connection for everything.
        #expect(server.connections == 1)
        #expect(requests.allSatisfy { $0.connection == 1 })
        #expect(client.statistics.latency.count == 5)
    }

    @Test("an oversized answer is cut off and counted as transient")
    func oversizedAnswer() async throws {
        let server = try LoopbackServer { request in
            if request.path == "/auth" { return Self.service(request) }
            return .respond(status: 200, body: [UInt8](repeating: 0x20, count: 300_000))
        }
        defer { server.stop() }
        let client = try Self.client(server)
        defer { client.shutdown() }
        do {
            _ = try await client.publish(topic: "/p/d/upload", body: [1])
            Issue.record("expected retries to run out")
        } catch let error as IoTCoreError {
            #expect(error.code == .retriesExhausted)
            #expect(error.message.contains("response_too_large"))
            #expect((error.underlying as? IoTCoreError)?.code == .transport)
        }
        #expect(client.statistics.transportFailures == 2)
    }

    @Test("HTML error pages and dropped connections are transient")
    func transientAnswers() async throws {
        let count = Atomic(0)
        let server = try LoopbackServer { request in
            if request.path == "/auth" { return Self.service(request) }
            switch count.add(1, ordering: .relaxed).newValue {
            case 1: return .respond(status: 502, body: Array("<html>Bad Gateway</html>".utf8))
            case 2: return .close
            default: return Self.service(request)
            }
        }
        defer { server.stop() }
        let client = try Self.client(
            server, retry: RetryPolicy(initialBackoff: .milliseconds(1), maxBackoff: .milliseconds(5)))
        defer { client.shutdown() }
        #expect(try await client.publish(topic: "/p/d/upload", body: [1]) == .delivered(messageID: "77"))
        let statistics = client.statistics
        #expect(statistics.malformedResponses == 1)
        // libcurl itself retries a request once when a reused connection turns out dead, so the dropped
        // connection may or may not surface as a transport failure.
        #expect(statistics.retries >= 1)
        #expect(statistics.retries == 1 + statistics.transportFailures)
    }

    @Test("connection refused is a transport failure")
    func refused() async throws {
        let server = try LoopbackServer(handler: Self.service)
        let endpointServer = server
        // Shutting the listening socket down refuses new connections at once.
        server.stop()
        let client = try Self.client(endpointServer)
        defer { client.shutdown() }
        do {
            _ = try await client.authenticate()
            Issue.record("expected an error")
        } catch let error as IoTCoreError {
            #expect(error.code == .retriesExhausted)
            #expect(error.message.contains("connect"))
            #expect((error.underlying as? IoTCoreError)?.code == .connect)
        }
    }

    @Test("the request timeout applies")
    func timeout() async throws {
        let server = try LoopbackServer { _ in .hang(milliseconds: 5000) }
        defer { server.stop() }
        let client = try Self.client(
            server, requestTimeout: .milliseconds(300), retry: RetryPolicy(maxAttempts: 1))
        defer { client.shutdown() }
        let start = ContinuousClock.now
        do {
            _ = try await client.authenticate()
            Issue.record("expected an error")
        } catch let error as IoTCoreError {
            #expect(error.message.contains("timeout"))
        }
        #expect(ContinuousClock.now - start < .seconds(3))
    }

    @Test("cancelling a task takes its transfer off the wire; the driver keeps working")
    func cancellation() async throws {
        let hang = Atomic(true)
        let server = try LoopbackServer { request in
            if request.path == "/auth" { return Self.service(request) }
            return hang.load(ordering: .relaxed) ? .hang(milliseconds: 5000) : Self.service(request)
        }
        defer { server.stop() }
        let client = try Self.client(server)
        defer { client.shutdown() }
        try await client.authenticate()
        let task = Task { try await client.publish(topic: "/p/d/upload", body: [1]) }
        for _ in 0..<5000 where server.requests.count < 2 {
            try await Task.sleep(for: .milliseconds(1))
        }
        let start = ContinuousClock.now
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(ContinuousClock.now - start < .seconds(2))
        hang.store(false, ordering: .relaxed)
        #expect(try await client.publish(topic: "/p/d/upload", body: [2]) == .delivered(messageID: "77"))
    }

    @Test("no more than maxInFlight requests on the wire")
    func maxInFlight() async throws {
        let server = try LoopbackServer { request in
            if request.path == "/auth" { return Self.service(request) }
            guard case .respond(let status, let body, _) = Self.service(request) else { return .close }
            return .respond(status: status, body: body, delayMilliseconds: 100)
        }
        defer { server.stop() }
        let client = try Self.client(server, maxInFlight: 2)
        defer { client.shutdown() }
        try await client.authenticate()
        try await withThrowingTaskGroup(of: PublishOutcome.self) { group in
            for index in 0..<6 {
                group.addTask { try await client.publish(topic: "/p/d/upload", body: [UInt8(index)]) }
            }
            for try await outcome in group {
                #expect(outcome == .delivered(messageID: "77"))
            }
        }
        #expect(server.maxActive == 2)
        #expect(server.connections <= 2)
    }

    @Test("requests queued while the driver thread is busy need no wakeup, and all are served")
    func oneWakeupPerTurn() async throws {
        let server = try LoopbackServer(handler: Self.service)
        defer { server.stop() }
        let client = try Self.client(server, maxInFlight: 8)
        defer { client.shutdown() }
        try await client.authenticate()
        let driver = try #require(client.transport as? CurlDriver)
        // The driver thread runs a blocking job until told to stop (bounded: 10 s), so it does not take its
        // queue meanwhile.
        let entered = Atomic(false)
        let release = Atomic(false)
        let blocker = Task {
            await driver.performBlocking {
                entered.store(true, ordering: .releasing)
                let deadline = ContinuousClock.now + .seconds(10)
                while !release.load(ordering: .acquiring) && ContinuousClock.now < deadline { sched_yield() }
            }
        }
        #expect(await waitUntil { entered.load(ordering: .acquiring) })
        let before = driver.wakeupCount
        let publishes = (0..<6).map { index in
            Task { try await client.publish(topic: "/p/d/upload", body: [UInt8(index)]) }
        }
        #expect(await waitUntil { driver.queuedCount >= 6 })
        #expect(driver.queuedCount == 6)
        #expect(driver.wakeupCount == before, "the thread is awake: it looks at its queue again before it sleeps")
        release.store(true, ordering: .releasing)
        await blocker.value
        for publish in publishes {
            #expect(try await publish.value == .delivered(messageID: "77"))
        }
        #expect(server.requests.count == 7)
    }

    /// The sink's deliveries prefer the driver as their executor: they run on its thread, an answer resumes them
    /// there; after shutdown such tasks go on on the global executor instead of waiting for ever.
    @Test("tasks preferring the driver run on its thread, and elsewhere after shutdown")
    func taskExecutor() async throws {
        let server = try LoopbackServer(handler: Self.service)
        defer { server.stop() }
        let client = try Self.client(server, maxInFlight: 4)
        let executor = try #require(client.taskExecutor)
        let driver = try #require(client.transport as? CurlDriver)
        let driverThread = try #require(driver.state.withLock { $0.thread })
        try await withTaskExecutorPreference(executor) {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<8 {
                    group.addTask {
                        let outcome = try await client.publish(topic: "/p/d/upload", body: [UInt8(index)])
                        return outcome == .delivered(messageID: "77") && pthread_equal(pthread_self(), driverThread) != 0
                    }
                }
                for try await deliveredOnTheDriverThread in group {
                    #expect(deliveredOnTheDriverThread)
                }
            }
        }
        #expect(server.requests.count == 9)
        client.shutdown()
        let elsewhere = await Task(executorPreference: executor) {
            pthread_equal(pthread_self(), driverThread) == 0
        }.value
        #expect(elsewhere)
        await #expect(throws: IoTCoreError.self) {
            try await withTaskExecutorPreference(executor) { try await client.publish(topic: "/p/d/upload", body: [9]) }
        }
    }

    @Test("shutdown fails a waiting request and is idempotent")
    func shutdown() async throws {
        let server = try LoopbackServer { _ in .hang(milliseconds: 5000) }
        defer { server.stop() }
        let client = try Self.client(server)
        let task = Task { try await client.authenticate() }
        for _ in 0..<5000 where server.requests.isEmpty {
            try await Task.sleep(for: .milliseconds(1))
        }
        client.shutdown()
        do {
            _ = try await task.value
            Issue.record("expected an error")
        } catch let error as IoTCoreError {
            #expect(error.code == .shutdown)
        }
        client.shutdown()
        await #expect(throws: IoTCoreError.self) { try await client.publish(topic: "/p/d/upload", body: [1]) }
    }

    @Test("shutdown closes the kept-alive connection even while the client is still referenced")
    func shutdownClosesConnections() async throws {
        let server = try LoopbackServer(handler: Self.service)
        defer { server.stop() }
        let client = try Self.client(server)
        #expect(try await client.publish(topic: "/p/d/upload", body: [1]) == .delivered(messageID: "77"))
        #expect(server.openConnections == 1)
        // The sink's metrics reporter keeps its client alive after shutdown; the connection must not wait for
        // deinit (an in-process server's graceful shutdown waits for it).
        client.shutdown()
        for _ in 0..<200 where server.openConnections > 0 {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(server.openConnections == 0)
        withExtendedLifetime(client) {}
    }

    @Test("wakeups racing with shutdown never reach a freed multi handle")
    func shutdownRacesWithSubmissions() async throws {
        let server = try LoopbackServer(handler: Self.service)
        defer { server.stop() }
        for _ in 0..<20 {
            let client = try Self.client(server)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        _ = try? await client.publish(topic: "/p/d/upload", body: [1])
                        _ = try? await client.publish(topic: "/p/d/upload", body: [2])
                    }
                }
                group.addTask { client.shutdown() }
                try await group.waitForAll()
            }
            await #expect(throws: IoTCoreError.self) { try await client.publish(topic: "/p/d/upload", body: [3]) }
        }
    }

    @Test("an https:// endpoint never falls back to plain HTTP")
    func tlsRequired() async throws {
        let server = try LoopbackServer(handler: Self.service)
        defer { server.stop() }
        let client = try IoTCoreClient(
            configuration: IoTCoreClient.Configuration(
                endpoint: "https://127.0.0.1:\(server.port)", credentials: Fixtures.credentials,
                connectTimeout: .milliseconds(500), requestTimeout: .seconds(2),
                retry: RetryPolicy(maxAttempts: 1)),
            logger: Fixtures.logger)
        defer { client.shutdown() }
        await #expect(throws: IoTCoreError.self) { try await client.authenticate() }
        #expect(client.statistics.transportFailures == 1)
    }
}
