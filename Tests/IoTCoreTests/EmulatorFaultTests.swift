import Foundation
import Logging
import Testing

@testable import IoTCoreEmulator

@Suite("Emulator faults and TLS", .timeLimit(.minutes(1)))
struct EmulatorFaultTests {
    static let device = EmulatorTesting.device
    static let topic = "/abcdefgh12345678/device001/upload"

    @Test("ratio 1.0 answers 130 or 100077 and accepts nothing")
    func injectedRetCodes() async throws {
        try await EmulatorTesting.withEmulator { harness in
            let token = try await harness.token(for: Self.device)
            harness.emulator.setFaults(EmulatorFaults(ratio130: 1))
            let unavailable = try await harness.publish(topic: Self.topic, body: [1], token: token)
            #expect(unavailable.retCode == 130, "\(unavailable.text)")

            // The same through the inspection endpoint.
            let set = try await harness.post(
                "/_emulator/faults", body: Array(#"{"ratio_130":0,"ratio_100077":1}"#.utf8),
                headers: ["Content-Type": "application/json"])
            #expect(set.status == 200, "\(set.text)")
            #expect(harness.emulator.faults.ratio100077 == 1)
            let failed = try await harness.publish(topic: Self.topic, body: [1], token: token)
            #expect(failed.retCode == 100077, "\(failed.text)")

            // Validation problems come before faults: a bad token is still 100073.
            let badToken = try await harness.publish(topic: Self.topic, body: [1], token: "x")
            #expect(badToken.retCode == 100073)

            harness.emulator.setFaults(EmulatorFaults(authRatio130: 1))
            let auth = try await harness.authenticate(
                productSN: Self.device.productSN, deviceSN: Self.device.deviceSN, secret: Self.device.secret)
            #expect(auth.retCode == 130, "\(auth.text)")

            harness.emulator.setFaults(EmulatorFaults())
            let recovered = try await harness.publish(topic: Self.topic, body: [1], token: token)
            #expect(recovered.retCode == 0, "\(recovered.text)")
            #expect(harness.emulator.acceptedMessages().count == 1)

            let stats = harness.emulator.statistics()
            #expect(stats.answers(130) == 2)
            #expect(stats.answers(100077) == 1)
            #expect(stats.answers(100073) == 1)
            #expect(stats.answers(0) == 2)
        }
    }

    @Test("faults endpoint rejects out-of-range values")
    func faultsValidation() async throws {
        try await EmulatorTesting.withEmulator { harness in
            let answer = try await harness.post(
                "/_emulator/faults", body: Array(#"{"ratio_130":2}"#.utf8),
                headers: ["Content-Type": "application/json"])
            #expect(answer.status == 400)
            #expect(harness.emulator.faults.ratio130 == 0)
            let current = try await harness.get("/_emulator/faults")
            #expect(current.json?["ratio_130"] as? Double == 0)
        }
    }

    @Test("latency delays every protocol answer")
    func latency() async throws {
        let configuration = EmulatorConfiguration(
            devices: [Self.device], faults: EmulatorFaults(latency: .milliseconds(300)))
        try await EmulatorTesting.withEmulator(configuration) { harness in
            let clock = ContinuousClock()
            let start = clock.now
            _ = try await harness.token(for: Self.device)
            #expect(clock.now - start >= .milliseconds(300))
        }
    }

    @Test("refused connections fail at the client, are counted, and recover")
    func refuseConnections() async throws {
        try await EmulatorTesting.withEmulator { harness in
            let token = try await harness.token(for: Self.device)
            var faults = EmulatorFaults()
            faults.refuseConnections(for: .milliseconds(800))
            harness.emulator.setFaults(faults)
            let refused = try await harness.publish(topic: Self.topic, body: [1], token: token)
            #expect(refused.exitCode != 0, "curl should fail, got \(refused.text)")
            #expect(refused.status == 0)
            #expect(harness.emulator.statistics().connectionsRefused >= 1)

            // Refusal ends by itself at its deadline (time passing is what is tested; nothing else can be awaited).
            try await Task.sleep(until: faults.refuseConnectionsUntil!.advanced(by: .milliseconds(100)))
            let recovered = try await harness.publish(topic: Self.topic, body: [1], token: token)
            #expect(recovered.exitCode == 0, "\(recovered.stderr)")
            #expect(recovered.retCode == 0, "\(recovered.text)")

            // And through the inspection endpoint; 0 seconds stops refusing at once.
            let set = try await harness.post(
                "/_emulator/faults", body: Array(#"{"refuse_connections_seconds":30}"#.utf8),
                headers: ["Content-Type": "application/json"])
            #expect(set.status == 200, "\(set.text)")
            let refusedAgain = try await harness.get("/_emulator/stats")
            #expect(refusedAgain.exitCode != 0)
            #expect(harness.emulator.statistics().connectionsRefused >= 2)
            harness.emulator.setFaults(EmulatorFaults())
            let stats = try await harness.get("/_emulator/stats")
            #expect(stats.exitCode == 0)
            #expect((stats.json?["connections_refused"] as? Int ?? 0) >= 2)
        }
    }

    @Test("curl refuses the emulator when trusting another CA")
    func wrongCA() async throws {
        try await EmulatorTesting.withEmulator { harness in
            // A second emulator generates an unrelated CA; it need not run.
            let other = try IoTCoreEmulator(
                configuration: EmulatorConfiguration(devices: [Self.device]), logger: EmulatorTesting.logger)
            let otherCA = harness.directory.appendingPathComponent("other-ca.pem").path
            try #require(other.caCertificatePEM).write(toFile: otherCA, atomically: true, encoding: .utf8)
            let answer = try await harness.curl([harness.baseURL + "/_emulator/stats"], caPath: otherCA)
            #expect(answer.exitCode == 60, "expected a verification failure: \(answer.stderr)")

            let trusted = try await harness.get("/_emulator/stats")
            #expect(trusted.exitCode == 0, "\(trusted.stderr)")
            // localhost is in the certificate too.
            let byName = try await harness.curl(["https://localhost:\(harness.port)/_emulator/stats"])
            #expect(byName.exitCode == 0, "\(byName.stderr)")
        }
    }

    @Test("the CA file is written with mode 0644 and matches caCertificatePEM")
    func caFile() async throws {
        try await EmulatorTesting.withEmulator { harness in
            let attributes = try FileManager.default.attributesOfItem(atPath: harness.caPath)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o644)
            let written = try String(contentsOfFile: harness.caPath, encoding: .utf8)
            #expect(written == harness.emulator.caCertificatePEM)
            #expect(written.hasPrefix("-----BEGIN CERTIFICATE-----"))
        }
    }

    @Test("TLS 1.1 is refused; TLS 1.2 is accepted")
    func tlsVersions() async throws {
        try await EmulatorTesting.withEmulator { harness in
            let tls12 = try await harness.curl(["--tlsv1.2", "--tls-max", "1.2", harness.baseURL + "/_emulator/stats"])
            #expect(tls12.exitCode == 0, "\(tls12.stderr)")
            let tls11 = try await harness.curl(["--tlsv1.1", "--tls-max", "1.1", harness.baseURL + "/_emulator/stats"])
            #expect(tls11.exitCode != 0)
        }
    }

    @Test("a plain-HTTP emulator serves in-process use")
    func plainHTTP() async throws {
        let emulator = try IoTCoreEmulator(
            configuration: EmulatorConfiguration(tls: .none, devices: [Self.device]), logger: EmulatorTesting.logger)
        #expect(emulator.caCertificatePEM == nil)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await emulator.run() }
            let port = try await emulator.waitUntilReady()
            let (status, out, _) = try await EmulatorHarness.run(
                "/usr/bin/curl", ["-sS", "--max-time", "10", "http://127.0.0.1:\(port)/_emulator/stats"])
            #expect(status == 0)
            #expect(out.contains("\"requests\""))
            await emulator.shutdownGracefully()
            try await group.waitForAll()
        }
        // Stopped: readiness now fails instead of hanging.
        await #expect(throws: EmulatorError.self) { try await emulator.waitUntilReady() }
        // And it cannot run twice.
        await #expect(throws: EmulatorError.self) { try await emulator.run() }
    }

    @Test("shutdownGracefully() before run() makes run() return at once")
    func shutdownBeforeRun() async throws {
        let emulator = try IoTCoreEmulator(
            configuration: EmulatorConfiguration(tls: .none), logger: EmulatorTesting.logger)
        await emulator.shutdownGracefully()
        try await emulator.run()
        await #expect(throws: EmulatorError.self) { try await emulator.waitUntilReady() }
    }

    @Test("cancelling the task stops the emulator too")
    func cancellation() async throws {
        // Hummingbird logs an abrupt stop as an error; that is expected here, so keep the test output clean.
        var quiet = EmulatorTesting.logger
        quiet.logLevel = .critical
        let emulator = try IoTCoreEmulator(configuration: EmulatorConfiguration(tls: .none), logger: quiet)
        await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await emulator.run() }
            _ = try? await emulator.waitUntilReady()
            group.cancelAll()
            while let _ = try? await group.next() {}
        }
        await #expect(throws: EmulatorError.self) { try await emulator.waitUntilReady() }
    }

    @Test("a port in use fails run() and waitUntilReady()")
    func portInUse() async throws {
        try await EmulatorTesting.withEmulator { harness in
            let second = try IoTCoreEmulator(
                configuration: EmulatorConfiguration(port: harness.port, tls: .none), logger: EmulatorTesting.logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await #expect(throws: (any Error).self) { try await second.run() } }
                await #expect(throws: (any Error).self) { try await second.waitUntilReady() }
                try await group.waitForAll()
            }
        }
    }

    @Test("invalid configurations list every problem")
    func invalidConfiguration() {
        let configuration = EmulatorConfiguration(
            port: 70000,
            devices: [
                Self.device, Self.device,
                EmulatorDevice(productSN: "p", deviceSN: "d", secret: "", publishACL: ["a/#/b"]),
            ],
            tokenLifetime: .zero,
            faults: EmulatorFaults(ratio130: 1.5)
        )
        let problems = configuration.problems()
        #expect(problems.count == 6, "\(problems)")
        #expect(throws: EmulatorError.self) {
            try IoTCoreEmulator(configuration: configuration, logger: EmulatorTesting.logger)
        }
    }
}
