import Logging
import ServiceLifecycle
import Testing
import UplinkCore

@testable import UplinkOperations

/// The API listener's limits, live on a loopback port with clients that misbehave on purpose: connections that
/// say nothing, heads that never end, taps that are never read, and requests for another host.
@Suite(.timeLimit(.minutes(1))) struct APIServerLimitsTests {
    /// Serves `components` with `configure` applied to a loopback configuration, for the duration of `body`.
    static func serving(
        _ components: [ComponentStatus] = [], configure: (inout APIConfig) -> Void = { _ in },
        _ body: @Sendable (APIServer, Int) async throws -> Void
    ) async throws {
        var configuration = APIConfig(host: "127.0.0.1", port: 0)
        configure(&configuration)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let server = APIServer(
            configuration: configuration, target: OperationsTarget(components: { components }, isReady: { true }),
            logger: Logger(label: "test"), onListening: { continuation.yield($0) })
        let group = ServiceGroup(services: [server], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            try await body(server, port)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    /// Waits for `condition`, checking every few milliseconds, at most `limit`.
    static func wait(
        upTo limit: Duration = .seconds(10), _ what: String, _ condition: () -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + limit
        while !condition() {
            guard ContinuousClock.now < deadline else { throw WaitTimeout(what: what) }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    struct WaitTimeout: Error, CustomStringConvertible {
        var what: String
        var description: String { "gave up waiting for \(what)" }
    }

    static func request(_ path: String, host: String = "127.0.0.1") -> String {
        "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n"
    }

    /// 200 idle connections against a limit of 8: the listener keeps at most 8 descriptors for them (it used
    /// one per connection until descriptors ran out), and /health still answers at once.
    @Test func manyIdleConnectionsStayBoundedAndHealthStillAnswers() async throws {
        try await Self.serving(configure: { $0.maxConnections = 8 }) { server, port in
            var idle: [RawConnection] = []
            for _ in 0..<200 { idle.append(try RawConnection(port: port)) }
            try await Self.wait("the listener to take every connection") {
                server.statistics.closedConnections(.limitEvicted) == 192
            }
            // The server's ends still open: at most the limit (it kept all 200 before).
            #expect(acceptedConnections(onPort: port) <= 8)
            #expect(server.statistics.connections <= 8)

            let health = try await APIClient(address: "127.0.0.1:\(port)").get("/health")
            #expect(health.status == 200)
            #expect(server.statistics.closedConnections(.limitRefused) == 0)
            // The longest-idle connections were the ones closed: the first ones read end of file.
            #expect(try await idle[0].readToEnd() == "")
        }
    }

    /// When every connection is busy (taps streaming), a new one gets a 503 that names the setting, at once.
    @Test func aConnectionBeyondTheLimitIsRefusedWhenAllAreBusy() async throws {
        let metrics = ComponentMetrics()
        try await Self.serving([component("parse", metrics: metrics)], configure: { $0.maxConnections = 2 }) {
            server, port in
            let taps = try (0..<2).map { _ in try RawConnection(port: port) }
            for tap in taps { try tap.send(Self.request("/tap/parse")) }
            try await Self.wait("two taps") { metrics.tap.attachedReaders == 2 }

            let third = try RawConnection(port: port)
            try third.send(Self.request("/health"))
            let answer = try await third.readToEnd()
            #expect(answer.hasPrefix("HTTP/1.1 503 "))
            #expect(answer.contains("api.max_connections"))
            #expect(server.statistics.closedConnections(.limitRefused) == 1)
        }
    }

    /// A client that sends half a request head and stalls is cut after the header timeout.
    @Test func aSlowHeaderIsCut() async throws {
        try await Self.serving(configure: { $0.headerTimeout = .milliseconds(200) }) { server, port in
            let slow = try RawConnection(port: port, readTimeout: .seconds(5))
            try slow.send("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            #expect(try await slow.readToEnd() == "")
            #expect(server.statistics.closedConnections(.headerTimeout) == 1)
        }
    }

    /// A connection with no request is closed after the idle timeout; a tap streaming for longer is not.
    @Test func anIdleConnectionIsClosedButAStreamingTapIsNot() async throws {
        let metrics = ComponentMetrics()
        let channel = EventChannel<Record>(capacity: 1, overflowPolicy: .dropNewest)
        channel.addProducer()
        let outbox = Outbox(channels: [channel], metrics: metrics)
        try await Self.serving([component("parse", metrics: metrics)], configure: { $0.idleTimeout = .milliseconds(200) }) {
            server, port in
            let tap = try RawConnection(port: port, readTimeout: .seconds(5))
            try tap.send(Self.request("/tap/parse?limit=1"))
            try await Self.wait("the tap") { metrics.tap.isActive }

            // Opened after the tap started: once it is closed, the tap has been open longer than the timeout.
            let idle = try RawConnection(port: port, readTimeout: .seconds(5))
            #expect(try await idle.readToEnd() == "")
            #expect(server.statistics.closedConnections(.idleTimeout) == 1)

            try await outbox.send([Record(fields: ["n": .int(7)], timestamp: 0)])
            let stream = try await tap.readToEnd()
            #expect(stream.hasPrefix("HTTP/1.1 200 "))
            #expect(stream.contains(#"{"component_id":"parse","kind":"record","event":{"n":7}}"#))
        }
    }

    /// DNS rebinding: a page's request carries the attacker's name in `Host`, and is refused with 421.
    @Test(arguments: [
        ("evil.example:8686", 421), ("127.0.0.1.nip.io", 421), ("localhost.evil.example", 421), ("", 421),
        ("localhost", 200), ("LOCALHOST:1", 200), ("127.0.0.1:8686", 200), ("127.1.2.3", 200), ("[::1]:8686", 200),
    ])
    func aForeignHostIsRefused(host: String, status: Int) async throws {
        try await Self.serving { server, port in
            let connection = try RawConnection(port: port)
            try connection.send(Self.request("/health", host: host))
            let answer = try await connection.readToEnd()
            #expect(answer.hasPrefix("HTTP/1.1 \(status) "), "\(answer)")
            #expect(server.statistics.refusedRequests(.host) == (status == 421 ? 1 : 0))
        }
    }

    @Test func aNonLoopbackListenerAcceptsAddressesAndItsListedNamesOnly() {
        var configuration = APIConfig(host: "0.0.0.0", port: 8686)
        configuration.allowedHosts = ["Board.Local"]
        let allowList = HostAllowList(configuration: configuration)
        for accepted in ["192.168.1.20:8686", "[fe80::1]:8686", "board.local:8686", "localhost", nil] {
            #expect(allowList.allows(accepted), "\(accepted ?? "no Host")")
        }
        for refused in ["evil.example", "board.local.evil.example", "192.168.1.20:80x", "[fe80::1", "", ":8686"] {
            #expect(!allowList.allows(refused), "\(refused)")
        }
    }

    /// A tap client that stops reading: its socket stops being writable, the stream stops taking events, and the
    /// copies beyond the tap's bounded queue are dropped and counted; the agent's memory does not grow with what
    /// the pipeline sends.
    @Test func aTapClientThatDoesNotReadLosesItsOwnCopies() async throws {
        let metrics = ComponentMetrics()
        let channel = EventChannel<Record>(capacity: 1, overflowPolicy: .dropNewest)
        channel.addProducer()
        let outbox = Outbox(channels: [channel], metrics: metrics)
        let payload = String(repeating: "x", count: 4096)
        let chunk = (0..<TapPoint.maxEventsPerChunk).map { _ in Record(fields: ["v": .string(payload)], timestamp: 0) }
        let chunkBytes = TapPoint.maxEventsPerChunk * payload.utf8.count
        try await Self.serving([component("parse", metrics: metrics)]) { _, port in
            let reader = try RawConnection(port: port)
            try reader.send(Self.request("/tap/parse"))
            try await Self.wait("the tap") { metrics.tap.isActive }

            // Send chunk after chunk, each time giving the stream the chance to take the tap's queue, until it
            // stops: its writes wait for a socket nobody reads.
            var sentBytes = 0
            var stalled = false
            while !stalled && sentBytes < 512 << 20 {
                try await outbox.send(chunk)
                sentBytes += chunkBytes
                stalled = (try? await Self.wait(upTo: .seconds(1), "the queue to drain") { metrics.tap.queuedBytes == 0 }) == nil
            }
            #expect(stalled)
            // The socket buffers and the channel's high-water mark hold a few MiB; nothing else took any.
            #expect(sentBytes < 64 << 20, "\(sentBytes) bytes sent before the stream stalled")
            let droppedBefore = metrics.tap.droppedCopies
            for _ in 0..<20 { try await outbox.send(chunk) }
            #expect(metrics.tap.droppedCopies >= droppedBefore + 20 * TapPoint.maxEventsPerChunk - TapPoint.defaultQueueBytes / 4096)
            #expect(metrics.tap.queuedBytes <= TapPoint.defaultQueueBytes)
        }
    }
}
