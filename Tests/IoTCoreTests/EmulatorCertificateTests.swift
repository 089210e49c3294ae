import Foundation
import Testing

@testable import IoTCoreEmulator

@Suite("Emulator certificates", .timeLimit(.minutes(1)))
struct EmulatorCertificateTests {
    static func openssl(_ arguments: [String]) async throws -> (Int32, String) {
        let (status, out, err) = try await EmulatorHarness.run("/usr/bin/openssl", arguments)
        return (status, out + err)
    }

    @Test("the generated CA and server certificate have the right extensions and validity")
    func generatedCertificates() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("emulator-cert-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let generated = try SelfSignedCertificateAuthority.generate(extraHosts: ["127.0.0.1", "emulator.test"])
        let ca = directory.appendingPathComponent("ca.pem").path
        let server = directory.appendingPathComponent("server.pem").path
        try generated.caCertificatePEM.write(toFile: ca, atomically: true, encoding: .utf8)
        try generated.serverCertificatePEM.write(toFile: server, atomically: true, encoding: .utf8)

        let (verifyStatus, verifyOutput) = try await Self.openssl(["verify", "-CAfile", ca, server])
        #expect(verifyStatus == 0, "\(verifyOutput)")

        let (_, serverText) = try await Self.openssl(["x509", "-in", server, "-noout", "-text"])
        #expect(serverText.contains("IP Address:127.0.0.1"))
        #expect(serverText.contains("DNS:localhost"))
        #expect(serverText.contains("DNS:emulator.test"))
        #expect(serverText.contains("CA:FALSE"))
        #expect(serverText.contains("TLS Web Server Authentication"))
        #expect(serverText.contains("prime256v1"))
        let (_, caText) = try await Self.openssl(["x509", "-in", ca, "-noout", "-text"])
        #expect(caText.contains("CA:TRUE"))
        #expect(caText.contains("Certificate Sign"))

        // Valid for 30 days: still valid in 29, no longer in 31.
        let (in29Days, _) = try await Self.openssl(["x509", "-in", server, "-noout", "-checkend", "\(29 * 86400)"])
        #expect(in29Days == 0)
        let (in31Days, _) = try await Self.openssl(["x509", "-in", server, "-noout", "-checkend", "\(31 * 86400)"])
        #expect(in31Days != 0)
        // Backdated by an hour, so clients whose clocks lag a little accept it.
        let (_, startText) = try await Self.openssl(["x509", "-in", server, "-noout", "-startdate"])
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "MMM d HH:mm:ss yyyy zzz"
        let startString = startText.replacingOccurrences(of: "notBefore=", with: "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
            .replacingOccurrences(of: "  ", with: " ")
        let start = try #require(formatter.date(from: startString), "\(startText)")
        #expect(abs(Date().timeIntervalSince(start) - 3600) < 120)
    }

    @Test("files mode serves a given certificate chain and key")
    func filesMode() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("emulator-files-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let generated = try SelfSignedCertificateAuthority.generate(extraHosts: [])
        let ca = directory.appendingPathComponent("ca.pem").path
        let chain = directory.appendingPathComponent("chain.pem").path
        let key = directory.appendingPathComponent("key.pem").path
        try generated.caCertificatePEM.write(toFile: ca, atomically: true, encoding: .utf8)
        try generated.serverCertificatePEM.write(toFile: chain, atomically: true, encoding: .utf8)
        try generated.serverPrivateKeyPEM.write(toFile: key, atomically: true, encoding: .utf8)

        let emulator = try IoTCoreEmulator(
            configuration: EmulatorConfiguration(
                tls: .files(certificateChain: chain, privateKey: key), devices: [EmulatorTesting.device]),
            logger: EmulatorTesting.logger)
        #expect(emulator.caCertificatePEM == nil)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await emulator.run() }
            let port = try await emulator.waitUntilReady()
            let harness = EmulatorHarness(emulator: emulator, port: port, directory: directory, caPath: ca)
            let token = try await harness.token(for: EmulatorTesting.device)
            let answer = try await harness.publish(topic: "/abcdefgh12345678/device001/upload", body: [1], token: token)
            #expect(answer.retCode == 0, "\(answer.text) \(answer.stderr)")
            await emulator.shutdownGracefully()
            try await group.waitForAll()
        }

        #expect(throws: EmulatorError.self) {
            try IoTCoreEmulator(
                configuration: EmulatorConfiguration(
                    tls: .files(certificateChain: chain + ".missing", privateKey: key)),
                logger: EmulatorTesting.logger)
        }
    }
}
