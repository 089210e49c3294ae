import Logging
import Synchronization
import Testing

@testable import IoTCore

@Suite("Secrets stay secret")
struct IoTCoreRedactionTests {
    static let secret = "s3cr3tKey0000000"

    @Test("Secret prints as <redacted> every way")
    func secret() {
        let value = Secret(Self.secret)
        #expect(String(describing: value) == "<redacted>")
        #expect(String(reflecting: value) == "<redacted>")
        #expect("\(value)" == "<redacted>")
        var dumped = ""
        dump(value, to: &dumped)
        #expect(!dumped.contains(Self.secret))
        #expect(value.exposedValue == Self.secret)
    }

    @Test("credentials, configuration and errors never show the secret")
    func containers() throws {
        let credentials = Fixtures.credentials
        let configuration = Fixtures.configuration()
        for text in [
            String(describing: credentials), String(reflecting: credentials), String(describing: configuration),
            String(reflecting: configuration),
        ] {
            #expect(!text.contains(Self.secret), "\(text)")
        }
        var dumped = ""
        dump(configuration, to: &dumped)
        #expect(!dumped.contains(Self.secret))
        let request = HTTPRequest(url: "https://x/auth", headers: [("Password", Self.secret)], body: [])
        #expect(!String(describing: request).contains(Self.secret))
        var dumpedRequest = ""
        dump(request, to: &dumpedRequest)
        #expect(!dumpedRequest.contains(Self.secret))

        var bad = configuration
        bad.endpoint = "ftp://x"
        bad.maxInFlight = 0
        do {
            _ = try IoTCoreClient(configuration: bad, logger: Fixtures.logger)
            Issue.record("an invalid configuration was accepted")
        } catch let error as IoTCoreError {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains("endpoint"))
            #expect(error.message.contains("max_in_flight"))
            #expect(!String(describing: error).contains(Self.secret))
        }
    }

    @Test("log lines about refused credentials carry no secret and no token")
    func logs() async throws {
        let handler = RecordingLogHandler()
        let logger = Logger(label: "t", factory: { _ in handler })
        let time = ManualTime()
        let transport = ScriptedTransport { _, _ in Fixtures.retCode(171, message: "sign error") }
        let client = try IoTCoreClient(
            configuration: Fixtures.configuration(retry: RetryPolicy(maxAttempts: 3)), logger: logger,
            transport: transport, time: time.source)
        await #expect(throws: IoTCoreError.self) {
            try await client.publish(topic: "/p/d/upload", body: [1])
        }
        let records = handler.records.withLock { $0 }
        #expect(!records.isEmpty)
        for record in records {
            #expect(!record.message.contains(Self.secret) && !record.metadata.contains(Self.secret))
        }
    }
}
