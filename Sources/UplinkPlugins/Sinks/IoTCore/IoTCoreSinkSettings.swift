import IoTCore
import Logging
import UplinkCore

/// Where the sink publishes: a region's public endpoint, an explicit URL, or an emulator started in-process.
enum IoTCoreEndpoint: Sendable, Equatable {
    case url(String)
    /// `endpoint: embedded`: start the IoT-Core emulator on a free loopback port, for demos and tests.
    case embedded
}

/// The `iotcore_http` sink's configuration, read and validated at build time.
struct IoTCoreSinkSettings: Sendable {
    var endpoint: IoTCoreEndpoint
    var credentials: DeviceCredentials
    var caFile: String?
    /// The default topic; `{product_sn}` and `{device_sn}` are replaced.
    var topic: String
    var concurrency: Int
    var connectTimeout: Duration
    var requestTimeout: Duration
    var sendTimestamp: Bool
    var retry: RetryPolicy
    var renewBefore: Duration
    var deadLetterPath: String?
    var deadLetterMaxBytes: Int

    static let retryOptions: [OptionSpec] = [
        OptionSpec("initial_backoff", .duration, default: "500ms", "first wait after a transient failure"),
        OptionSpec("max_backoff", .duration, default: "60s", "longest wait between attempts (exponential, full jitter)"),
        OptionSpec("max_attempts", .int, "give up after this many attempts and dead-letter; default: never give up on retryable errors"),
        OptionSpec("credential_backoff", .duration, default: "5m", "wait after a credential error (171, 100071, 100072)"),
    ]

    /// The default `buffer.max_events` of the sink's input: batches of up to 128 KB each (see
    /// ``PluginDescriptor/defaultBufferEvents``).
    static let defaultBufferEvents = 16

    static let options: [OptionSpec] = [
        OptionSpec("region", .enumeration(IoTCoreRegion.allCases.map(\.rawValue)), "the IoT-Core region; or give 'endpoint'"),
        OptionSpec("endpoint", .string, "https:// URL of the device HTTP interface, or 'embedded' to start the local emulator in-process"),
        OptionSpec("product_sn", .string, required: true, "the device's ProductSN"),
        OptionSpec("device_sn", .string, required: true, "the device's DeviceSN"),
        OptionSpec("device_secret", .string, required: true, secret: true, "the DeviceSecret (use ${ENV} or device_secret_file; never logged)"),
        OptionSpec("ca_file", .string, "PEM bundle to verify the server with instead of the system's"),
        OptionSpec("topic", .string, default: "/{product_sn}/{device_sn}/upload", "topic for messages that carry none; {product_sn} and {device_sn} are replaced"),
        OptionSpec("concurrency", .int, default: "4", "requests in flight at once (1-64)"),
        OptionSpec("connect_timeout", .duration, default: "10s", "TCP + TLS connect timeout"),
        OptionSpec("request_timeout", .duration, default: "30s", "whole-request timeout"),
        OptionSpec("send_timestamp", .bool, default: "false", "send Timestamp in /auth (off: boards often boot with a wrong clock)"),
        OptionSpec("renew_before", .duration, default: "1d", "renew the token when it expires within this"),
        OptionSpec("retry", .mapping(retryOptions), "retry policy for transient failures"),
        OptionSpec("dead_letter_path", .string, "dead-letter file (default <data_dir>/<id>/dead-letters.jsonl)"),
        OptionSpec("dead_letter_max_size", .size, default: "64MiB", "rotate the dead-letter file at this size (3 kept)"),
    ]

    /// Reads the options; records located errors and returns nil when the sink cannot be built.
    static func read(_ config: ConfigReader) -> IoTCoreSinkSettings? {
        let productSN = config.string("product_sn") ?? ""
        let deviceSN = config.string("device_sn") ?? ""
        let secret = config.secret("device_secret") ?? ""
        if config.contains("product_sn") && productSN.isEmpty { config.error("option 'product_sn' must not be empty", at: "product_sn") }
        if config.contains("device_sn") && deviceSN.isEmpty { config.error("option 'device_sn' must not be empty", at: "device_sn") }
        if (config.contains("device_secret") || config.contains("device_secret_file")) && secret.isEmpty {
            config.error("the device secret is empty", at: config.contains("device_secret") ? "device_secret" : "device_secret_file")
        }

        var endpoint: IoTCoreEndpoint?
        let region = config.enumeration("region", as: IoTCoreRegion.self)
        if let text = config.string("endpoint") {
            if region != nil {
                config.error("give either 'region' or 'endpoint', not both", at: "endpoint")
            } else if text == "embedded" {
                endpoint = .embedded
            } else if text.hasPrefix("https://") || text.hasPrefix("http://127.") || text.hasPrefix("http://localhost") {
                endpoint = .url(text.hasSuffix("/") ? String(text.dropLast()) : text)
            } else {
                config.error("option 'endpoint' must be an https:// URL or 'embedded', got '\(text)'", at: "endpoint")
            }
        } else if let region {
            endpoint = .url(region.endpoint)
        } else if !config.contains("region") {
            config.error("set 'region' (cn-sh2 or cn-gd) or 'endpoint' (a URL, or 'embedded' for the local emulator)")
        }

        var retry = RetryPolicy()
        if let retryConfig = config.nested("retry") {
            retryConfig.finish()
            retry.initialBackoff = retryConfig.duration("initial_backoff", default: retry.initialBackoff)
            retry.maxBackoff = retryConfig.duration("max_backoff", default: retry.maxBackoff)
            retry.maxAttempts = retryConfig.int("max_attempts", range: 1...1_000_000)
            retry.credentialBackoff = retryConfig.duration("credential_backoff", default: retry.credentialBackoff)
            if retry.initialBackoff > retry.maxBackoff {
                retryConfig.error("'retry.initial_backoff' must not exceed 'retry.max_backoff'", at: "initial_backoff")
            }
        }

        let topic = config.string("topic", default: "/{product_sn}/{device_sn}/upload")
        let resolvedTopic = Self.resolve(topic: topic, productSN: productSN, deviceSN: deviceSN)
        if let problem = Self.topicProblem(resolvedTopic) { config.error("option 'topic' \(problem)", at: "topic") }

        let settings = IoTCoreSinkSettings(
            endpoint: endpoint ?? .embedded,
            credentials: DeviceCredentials(productSN: productSN, deviceSN: deviceSN, deviceSecret: Secret(secret)),
            caFile: config.string("ca_file").flatMap { $0.isEmpty ? nil : $0 },
            topic: resolvedTopic,
            concurrency: config.int("concurrency", default: 4, range: 1...64),
            connectTimeout: config.duration("connect_timeout", default: .seconds(10)),
            requestTimeout: config.duration("request_timeout", default: .seconds(30)),
            sendTimestamp: config.bool("send_timestamp", default: false),
            retry: retry,
            renewBefore: config.duration("renew_before", default: .seconds(86_400)),
            deadLetterPath: config.string("dead_letter_path"),
            deadLetterMaxBytes: config.size("dead_letter_max_size", default: 64 << 20))
        return endpoint == nil ? nil : settings
    }

    static func resolve(topic: String, productSN: String, deviceSN: String) -> String {
        var result = ""
        var rest = Substring(topic)
        while let open = rest.firstIndex(of: "{") {
            result += rest[..<open]
            guard let close = rest[open...].firstIndex(of: "}") else { break }
            switch rest[rest.index(after: open)..<close] {
            case "product_sn": result += productSN
            case "device_sn": result += deviceSN
            default: result += rest[open...close]
            }
            rest = rest[rest.index(after: close)...]
        }
        return result + rest
    }

    /// Why a topic can never be published over HTTP, or nil.
    static func topicProblem(_ topic: String) -> String? {
        if !topic.hasPrefix("/") { return "must start with '/', got '\(topic)'" }
        if topic.contains("{") || topic.contains("}") { return "has an unknown placeholder: use {product_sn} or {device_sn}" }
        if topic.utf8.count > 128 { return "is longer than 128 bytes" }
        if topic.contains("?") || topic.contains("#") || topic.contains("+") || topic.contains(" ") {
            return "must not contain '?', '#', '+' or spaces"
        }
        return nil
    }
}

extension IoTCoreSinkSettings {
    /// Runs `body` with a client for these settings (the sink and the one-shot commands share it): for
    /// `endpoint: embedded` the emulator runs in-process for as long as `body` does, and the client trusts its CA.
    func withClient<T: Sendable>(
        stateDirectory: String, logger: Logger, _ body: (IoTCoreClient) async throws -> T
    ) async throws -> T {
        func run(endpoint url: String, caFile: String?) async throws -> T {
            let client = try IoTCoreClient(
                configuration: IoTCoreClient.Configuration(
                    endpoint: url, credentials: credentials, caFile: caFile,
                    connectTimeout: connectTimeout, requestTimeout: requestTimeout,
                    maxInFlight: concurrency, sendTimestamp: sendTimestamp,
                    stateDirectory: stateDirectory, retry: retry, renewBefore: renewBefore),
                logger: logger)
            defer { client.shutdown() }
            return try await body(client)
        }
        switch endpoint {
        case .url(let url):
            return try await run(endpoint: url, caFile: caFile)
        case .embedded:
            var result: T?
            try await EmbeddedEmulator.run(credentials: credentials, stateDirectory: stateDirectory, logger: logger) {
                url, embeddedCA in
                result = try await run(endpoint: url, caFile: embeddedCA)
            }
            return result!
        }
    }
}
