import FoundationEssentials
import Glibc
import IoTCoreEmulator
import Logging
import Testing

@testable import IoTCore

/// Token renewal and invalidation over real TLS against the emulator.
@Suite("token lifecycle over HTTPS (emulator)", .timeLimit(.minutes(1)), .serialized)
struct IoTCoreTokenLifecycleTests {
    static let device = IoTCoreHTTPSTests.device

    static func startEmulator(port: Int = 0, tokenLifetime: Duration = .seconds(604_800), caPath: String)
        async throws -> (IoTCoreEmulator, Task<Void, any Error>, Int)
    {
        let emulator = try IoTCoreEmulator(
            configuration: EmulatorConfiguration(
                port: port, tls: .selfSigned(caCertificateOutput: caPath), devices: [device], tokenLifetime: tokenLifetime),
            logger: Fixtures.logger)
        let task = Task { try await emulator.run() }
        return (emulator, task, try await emulator.waitUntilReady())
    }

    static func temporaryDirectory() -> String {
        let path = "/tmp/iotcore-token-test-\(UInt64.random(in: 0...UInt64.max))"
        mkdir(path, 0o700)
        return path
    }

    static func client(endpoint: String, caFile: String, stateDirectory: String) throws -> IoTCoreClient {
        try IoTCoreClient(
            configuration: IoTCoreClient.Configuration(
                endpoint: endpoint,
                credentials: DeviceCredentials(
                    productSN: device.productSN, deviceSN: device.deviceSN, deviceSecret: Secret(device.secret)),
                caFile: caFile, connectTimeout: .seconds(5), requestTimeout: .seconds(10), stateDirectory: stateDirectory,
                retry: RetryPolicy(initialBackoff: .milliseconds(10), maxBackoff: .milliseconds(100), maxAttempts: 20)),
            logger: Fixtures.logger)
    }

    @Test("a 2-second token is renewed while publishing, and nothing is lost")
    func renewalWithShortLifetime() async throws {
        let directory = Self.temporaryDirectory()
        let (emulator, task, port) = try await Self.startEmulator(tokenLifetime: .seconds(2), caPath: directory + "/ca.pem")
        let client = try Self.client(endpoint: "https://127.0.0.1:\(port)", caFile: directory + "/ca.pem", stateDirectory: directory)
        let topic = "/\(Self.device.productSN)/\(Self.device.deviceSN)/upload"
        var delivered = 0
        // 5 seconds of publishing spans at least two token lifetimes.
        for index in 0..<25 {
            let outcome = try await client.publish(topic: topic, body: Array("{\"n\":\(index)}".utf8))
            if case .delivered = outcome { delivered += 1 }
            try await Task.sleep(for: .milliseconds(200))  // tokens expire as time passes: the pace is the test
        }
        client.shutdown()
        let statistics = emulator.statistics()
        await emulator.shutdownGracefully()
        _ = try? await task.value
        #expect(delivered == 25)
        #expect(emulator.acceptedMessages().count == 25)
        #expect(statistics.authentications >= 3, "expected renewals, got \(statistics.authentications) /auth calls")
        print("2 s tokens: 25 published, 25 accepted, \(statistics.authentications) /auth calls, 100074 answers \(statistics.answers(100074))")
    }

    @Test("a token the server no longer knows (100073) is replaced and the same data is sent again")
    func reauthenticatesOnInvalidToken() async throws {
        let directory = Self.temporaryDirectory()
        let (first, firstTask, port) = try await Self.startEmulator(caPath: directory + "/ca-1.pem")
        let topic = "/\(Self.device.productSN)/\(Self.device.deviceSN)/upload"
        do {
            let client = try Self.client(endpoint: "https://127.0.0.1:\(port)", caFile: directory + "/ca-1.pem", stateDirectory: directory)
            let before = try await client.publish(topic: topic, body: Array("before".utf8))
            client.shutdown()
            guard case .delivered = before else {
                Issue.record("the first server refused the first message: \(before)")
                return
            }
        }
        await first.shutdownGracefully()
        _ = try? await firstTask.value
        // A new server on the same address signs tokens with a new key: the cached token is now invalid.
        let (second, secondTask, _) = try await Self.startEmulator(port: port, caPath: directory + "/ca-2.pem")
        let client = try Self.client(endpoint: "https://127.0.0.1:\(port)", caFile: directory + "/ca-2.pem", stateDirectory: directory)
        let outcome = try await client.publish(topic: topic, body: Array("after".utf8))
        client.shutdown()
        let statistics = second.statistics()
        await second.shutdownGracefully()
        _ = try? await secondTask.value
        guard case .delivered = outcome else {
            Issue.record("expected delivery after re-authentication, got \(outcome)")
            return
        }
        #expect(statistics.answers(100073) == 1)
        #expect(statistics.authentications == 1)
        #expect(second.acceptedMessages().map { String(decoding: $0.body, as: UTF8.self) } == ["after"])
    }
}
