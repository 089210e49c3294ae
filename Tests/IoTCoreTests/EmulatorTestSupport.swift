import Foundation
import Logging

@testable import IoTCoreEmulator

/// A running emulator for one test, spoken to with the `curl` command-line tool over verified TLS.
struct EmulatorHarness: Sendable {
    let emulator: IoTCoreEmulator
    let port: Int
    let directory: URL
    let caPath: String

    var baseURL: String { "https://127.0.0.1:\(port)" }

    /// What curl reported.
    struct Answer: Sendable {
        var exitCode: Int32
        var status: Int
        var body: [UInt8]
        var stderr: String

        /// The body as a JSON object, when it is one.
        var json: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(self.body))) as? [String: Any]
        }

        var retCode: Int? { (self.json?["RetCode"] as? NSNumber)?.intValue }
        var text: String { String(decoding: self.body, as: UTF8.self) }
    }

    /// Runs curl against the emulator; `arguments` come after the common ones (CA, output, status format).
    func curl(_ arguments: [String], caPath: String? = nil) async throws -> Answer {
        let output = self.directory.appendingPathComponent("curl-\(UUID().uuidString).out").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let (exitCode, stdout, stderr) = try await Self.run(
            "/usr/bin/curl",
            ["-sS", "--max-time", "20", "--cacert", caPath ?? self.caPath, "-o", output, "-w", "%{http_code}"]
                + arguments
        )
        let body = (try? Data(contentsOf: URL(fileURLWithPath: output))).map { Array($0) } ?? []
        return Answer(exitCode: exitCode, status: Int(stdout) ?? 0, body: body, stderr: stderr)
    }

    /// `POST path` with `body` (written to a file, so any bytes and sizes pass unchanged).
    func post(
        _ path: String,
        body: [UInt8],
        headers: [String: String],
        url: String? = nil
    ) async throws -> Answer {
        let bodyFile = self.directory.appendingPathComponent("body-\(UUID().uuidString)").path
        try Data(body).write(to: URL(fileURLWithPath: bodyFile))
        defer { try? FileManager.default.removeItem(atPath: bodyFile) }
        var arguments = ["-X", "POST", "--data-binary", "@\(bodyFile)"]
        // curl adds its own Content-Type for --data-binary; an empty value removes it when a test wants none.
        if headers["Content-Type"] == nil { arguments += ["-H", "Content-Type:"] }
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { arguments += ["-H", "\(name): \(value)"] }
        // --path-as-is keeps the topic exactly as written (curl would otherwise squash `/./` and `//`).
        arguments += ["--path-as-is", url ?? (self.baseURL + path)]
        return try await self.curl(arguments)
    }

    func get(_ path: String) async throws -> Answer {
        try await self.curl([self.baseURL + path])
    }

    /// The signed `/auth` request for a device, and its answer.
    func authenticate(
        productSN: String,
        deviceSN: String,
        secret: String,
        extraJSON: String = "",
        signature: String? = nil
    ) async throws -> Answer {
        let body = Array(#"{"ProductSN":"\#(productSN)","DeviceSN":"\#(deviceSN)"\#(extraJSON)}"#.utf8)
        let signed = signature ?? LibCrypto.hex(LibCrypto.hmacSHA256(key: Array(secret.utf8), message: body))
        return try await self.post(
            "/auth",
            body: body,
            headers: ["Content-Type": "application/json", "Authorization": signed]
        )
    }

    /// A token for `device`, failing the test when authentication does not succeed.
    func token(for device: EmulatorDevice) async throws -> String {
        let answer = try await self.authenticate(
            productSN: device.productSN, deviceSN: device.deviceSN, secret: device.secret)
        guard answer.retCode == 0, let token = answer.json?["Token"] as? String else {
            throw HarnessError(message: "authentication failed: \(answer.text) \(answer.stderr)")
        }
        return token
    }

    /// Publishes `body` to `topic` (the topic's leading `/` included) with `token`.
    func publish(
        topic: String,
        body: [UInt8],
        token: String?,
        contentType: String = "application/octet-stream"
    ) async throws -> Answer {
        var headers = ["Content-Type": contentType]
        if let token { headers["Password"] = token }
        return try await self.post("/topic" + topic, body: body, headers: headers)
    }

    struct HarnessError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    /// Runs `executable` to completion off the cooperative pool (Process waits on its own thread).
    static func run(_ executable: String, _ arguments: [String]) async throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        // Outputs are tiny (a status code, an error line), so reading after exit cannot dead-lock on a full pipe.
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { process in continuation.resume(returning: process.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        let out = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let err = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (status, out, err)
    }
}

enum EmulatorTesting {
    static let device = EmulatorDevice(productSN: "abcdefgh12345678", deviceSN: "device001", secret: "s3cr3tKey0000000")

    static var logger: Logger {
        var logger = Logger(label: "emulator-test")
        logger.logLevel = .warning
        return logger
    }

    /// Starts an emulator with `configuration` (TLS forced to a self-signed CA written to a temporary file),
    /// runs `body` against it, and stops it.
    static func withEmulator<Result: Sendable>(
        _ configuration: EmulatorConfiguration = EmulatorConfiguration(devices: [device]),
        _ body: @Sendable (EmulatorHarness) async throws -> Result
    ) async throws -> Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("emulator-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let caPath = directory.appendingPathComponent("ca.pem").path
        var configuration = configuration
        configuration.tls = .selfSigned(caCertificateOutput: caPath)
        let emulator = try IoTCoreEmulator(configuration: configuration, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await emulator.run() }
            let port = try await emulator.waitUntilReady()
            let harness = EmulatorHarness(emulator: emulator, port: port, directory: directory, caPath: caPath)
            let result: Result
            do {
                result = try await body(harness)
            } catch {
                await emulator.shutdownGracefully()
                throw error
            }
            await emulator.shutdownGracefully()
            try await group.waitForAll()
            return result
        }
    }
}
