import FoundationEssentials
import Glibc
import IoTCoreEmulator
import Logging
import Testing

@testable import IoTCore

/// The client over real, verified TLS against the emulator: the TLS options (peer and host verification,
/// `caFile`) and the protocol end to end.
@Suite("IoTCoreClient over HTTPS (emulator)", .timeLimit(.minutes(1)), .serialized)
struct IoTCoreHTTPSTests {
    static let device = EmulatorDevice(productSN: "abcdefgh12345678", deviceSN: "device001", secret: "s3cr3tKey0000000")

    /// Runs `body` with a started emulator, the path of its CA file, and its base URL.
    static func withEmulator(
        devices: [EmulatorDevice] = [device],
        _ body: @Sendable (IoTCoreEmulator, String, String) async throws -> Void
    ) async throws {
        let emulator = try IoTCoreEmulator(
            configuration: EmulatorConfiguration(devices: devices), logger: Fixtures.logger)
        let caPath = "/tmp/iotcore-https-test-ca-\(UInt64.random(in: 0...UInt64.max)).pem"
        let pem = Array((emulator.caCertificatePEM ?? "").utf8)
        let fd = open(caPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = pem.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        defer { unlink(caPath) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await emulator.run() }
            let port = try await emulator.waitUntilReady()
            defer { group.cancelAll() }
            try await body(emulator, caPath, "https://127.0.0.1:\(port)")
        }
    }

    static func client(endpoint: String, caFile: String?, secret: String = "s3cr3tKey0000000", maxAttempts: Int = 2)
        throws -> IoTCoreClient
    {
        try IoTCoreClient(
            configuration: IoTCoreClient.Configuration(
                endpoint: endpoint,
                credentials: DeviceCredentials(
                    productSN: device.productSN, deviceSN: device.deviceSN, deviceSecret: Secret(secret)),
                caFile: caFile, connectTimeout: .seconds(5), requestTimeout: .seconds(10),
                retry: RetryPolicy(
                    initialBackoff: .milliseconds(10), maxBackoff: .milliseconds(50), maxAttempts: maxAttempts)),
            logger: Fixtures.logger)
    }

    @Test("verified TLS with ca_file: authenticate, publish, ACL refusal")
    func endToEnd() async throws {
        try await Self.withEmulator { emulator, caPath, endpoint in
            let client = try Self.client(endpoint: endpoint, caFile: caPath)
            defer { client.shutdown() }
            let info = try await client.authenticate()
            #expect(info.expirySource == .jwt)
            #expect(abs(info.expiresAt.timeIntervalSinceNow - 604_800) < 120)

            let property = Array(#"{"RequestID":"1","Property":{"temp":{"Value":26.5}}}"#.utf8)
            let systemTopic = "/$system/abcdefgh12345678/device001/tmodel/property/post"
            guard case .delivered(let messageID) = try await client.publish(topic: systemTopic, body: property) else {
                Issue.record("not delivered")
                return
            }
            #expect(!messageID.isEmpty)
            let custom = try await client.publish(topic: "/abcdefgh12345678/device001/upload", body: [0, 1, 2, 255])
            guard case .delivered = custom else {
                Issue.record("not delivered: \(custom)")
                return
            }
            let accepted = emulator.acceptedMessages()
            #expect(accepted.map(\.topic) == [systemTopic, "/abcdefgh12345678/device001/upload"])
            #expect(accepted.first?.body == property)
            #expect(accepted.last?.body == [0, 1, 2, 255])

            let refused = try await client.publish(topic: "/othersn/otherdevice/upload", body: [1])
            guard case .rejected(100075?, _) = refused else {
                Issue.record("expected an ACL refusal, got \(refused)")
                return
            }
            #expect(client.statistics.authRenewals == 1)
        }
    }

    @Test("without the emulator's CA the server is not trusted")
    func untrusted() async throws {
        try await Self.withEmulator { _, _, endpoint in
            let client = try Self.client(endpoint: endpoint, caFile: nil, maxAttempts: 1)
            defer { client.shutdown() }
            do {
                try await client.authenticate()
                Issue.record("an untrusted server was accepted")
            } catch let error as IoTCoreError {
                #expect(error.code == .retriesExhausted)
                #expect(error.message.contains("tls"))
            }
        }
    }

    @Test("a wrong secret is a credentials error (171)")
    func wrongSecret() async throws {
        try await Self.withEmulator { _, caPath, endpoint in
            let client = try Self.client(endpoint: endpoint, caFile: caPath, secret: "wrong-secret-000")
            defer { client.shutdown() }
            do {
                try await client.authenticate()
                Issue.record("a wrong secret was accepted")
            } catch let error as IoTCoreError {
                #expect(error.code == .credentials)
                #expect(error.retCode == 171)
            }
        }
    }
}
