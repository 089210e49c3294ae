import IoTCore
import IoTCoreEmulator
import Logging
import UplinkCore

/// `endpoint: embedded`: runs the IoT-Core emulator in-process on a free loopback port, with the sink's own
/// device registered, so a pipeline ships real HTTPS requests with no cloud account and no second terminal.
/// Everything it accepts is logged and appended to `<state>/embedded-accepted.jsonl`.
enum EmbeddedEmulator {
    static func run(
        credentials: DeviceCredentials, stateDirectory: String, logger: Logger,
        body: (_ url: String, _ caFile: String) async throws -> Void
    ) async throws {
        let caFile = stateDirectory + "/embedded-ca.pem"
        let emulator = try IoTCoreEmulator(
            configuration: EmulatorConfiguration(
                tls: .selfSigned(caCertificateOutput: caFile),
                devices: [
                    EmulatorDevice(
                        productSN: credentials.productSN, deviceSN: credentials.deviceSN,
                        secret: credentials.deviceSecret.exposedValue)
                ],
                acceptedLogPath: stateDirectory + "/embedded-accepted.jsonl"),
            logger: quieter(logger))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await emulator.run() }
            let port = try await emulator.waitUntilReady()
            logger.info(
                "embedded IoT-Core emulator listening",
                metadata: ["emulator.port": "\(port)", "emulator.accepted_log": "\(stateDirectory)/embedded-accepted.jsonl"])
            do {
                try await body("https://127.0.0.1:\(port)", caFile)
            } catch {
                await emulator.shutdownGracefully()
                throw error
            }
            // Show what "the cloud" received, in one line, so a quick start needs no second terminal.
            let accepted = emulator.acceptedMessages()
            var metadata: Logger.Metadata = ["emulator.messages": "\(accepted.count)"]
            if let last = accepted.last {
                metadata["emulator.last_topic"] = "\(last.topic)"
                metadata["emulator.last_body"] = "\(String(decoding: last.body.prefix(200), as: UTF8.self))"
            }
            logger.info("embedded IoT-Core emulator received", metadata: metadata)
            await emulator.shutdownGracefully()
            try await group.waitForAll()
        }
    }

    /// The emulator's own start-up and shutdown lines are noise inside a pipeline's log.
    private static func quieter(_ logger: Logger) -> Logger {
        var quiet = logger
        if quiet.logLevel < .warning { quiet.logLevel = .warning }
        return quiet
    }
}
