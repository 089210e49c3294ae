import CUplinkLinux
import Glibc
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
    /// The ceiling of the adaptive limit; equal to `concurrency` when adaptation is off.
    var maxConcurrency: Int
    var ordering: DeliveryOrdering
    var connectTimeout: Duration
    var requestTimeout: Duration
    var authTimestamp: AuthTimestamp
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
        OptionSpec("concurrency", .int, default: "4", "requests in flight at first (1-64); the limit then adapts to the round trip up to max_concurrency"),
        OptionSpec("max_concurrency", .int, default: "32", "the most requests in flight the adaptive limit may reach (concurrency-64; each holds up to 128 KB); equal to concurrency for a fixed limit"),
        OptionSpec("ordering", .enumeration(DeliveryOrdering.allCases.map(\.rawValue)), default: "none", "none: messages may overtake each other (fastest); per_topic: one topic's messages arrive in order. Shadow updates always arrive in order"),
        OptionSpec("connect_timeout", .duration, default: "10s", "TCP + TLS connect timeout"),
        OptionSpec("request_timeout", .duration, default: "30s", "whole-request timeout"),
        OptionSpec("send_timestamp", .enumeration(["auto", "true", "false"]), default: "auto", "send Timestamp in /auth (so a captured request cannot be replayed): auto when the kernel reports the clock synchronised, true always, false never"),
        OptionSpec("renew_before", .duration, default: "1d", "renew the token when it expires within this"),
        OptionSpec("retry", .mapping(retryOptions), "retry policy for transient failures"),
        OptionSpec("dead_letter_path", .string, "dead-letter file (default <data_dir>/<id>/dead-letters.jsonl)"),
        OptionSpec("dead_letter_max_size", .size, default: "64MiB", "rotate the dead-letter file at this size (3 kept)"),
    ]

    /// Reads the options; records located errors and returns nil when the sink cannot be built.
    ///
    /// `checksPaths` false (`uplink test`, `graph`): the secret file and `ca_file` are not opened. They are this
    /// machine's, and a pipeline's tests never reach the cloud, so they must pass where the board's files are absent.
    static func read(_ config: ConfigReader, checksPaths: Bool = true) -> IoTCoreSinkSettings? {
        let productSN = config.string("product_sn") ?? ""
        let deviceSN = config.string("device_sn") ?? ""
        if config.contains("device_secret") && config.contains("device_secret_file") {
            config.error("give either 'device_secret' or 'device_secret_file', not both", at: "device_secret_file")
        } else if checksPaths, let path = config.string("device_secret_file"), let mode = Self.permissions(of: path),
            mode & 0o077 != 0
        {
            config.warning(
                "'device_secret_file' \(path) can be read by other users (mode \(String(mode, radix: 8))); chmod 600 it",
                at: "device_secret_file")
        }
        // nil when neither option is given or the file could not be read (that error is already reported, and an
        // "empty secret" on top of it would be a follow-on).
        let givenSecret = checksPaths || !config.contains("device_secret_file") ? config.secret("device_secret") : nil
        let secret = givenSecret ?? ""
        if config.contains("product_sn") && productSN.isEmpty { config.error("option 'product_sn' must not be empty", at: "product_sn") }
        if config.contains("device_sn") && deviceSN.isEmpty { config.error("option 'device_sn' must not be empty", at: "device_sn") }
        // A serial number goes into every topic (the default one, thing-model and shadow topics): what a topic
        // level may not hold would dead-letter every record, and a control character is refused by the client.
        var refusedSerialNumbers: Set<String> = []
        for (name, value) in [("product_sn", productSN), ("device_sn", deviceSN)] where !value.isEmpty {
            if let problem = IoTCoreClient.topicLevelProblem(value) {
                config.error("option '\(name)' \(problem)", at: name)
                refusedSerialNumbers.insert(name)
            }
        }
        if let givenSecret, givenSecret.isEmpty {
            config.error("the device secret is empty", at: config.contains("device_secret") ? "device_secret" : "device_secret_file")
        }

        var endpoint: IoTCoreEndpoint?
        let region = config.enumeration("region", as: IoTCoreRegion.self)
        if let text = config.string("endpoint") {
            if region != nil {
                config.error("give either 'region' or 'endpoint', not both", at: "endpoint")
            } else if text == "embedded" {
                endpoint = .embedded
            } else if text.hasPrefix("https://") || text.hasPrefix("http://") {
                // The client's own check, so validate refuses what run would (http:// only to 127.0.0.0/8).
                let probe = IoTCoreClient.Configuration(
                    endpoint: text, credentials: DeviceCredentials(productSN: "p", deviceSN: "d", deviceSecret: Secret("s")))
                if let problem = probe.problems().first(where: { $0.hasPrefix("endpoint: ") }) {
                    config.error("option 'endpoint' \(problem.dropFirst("endpoint: ".count)), got '\(text)'", at: "endpoint")
                } else {
                    endpoint = .url(text.hasSuffix("/") ? String(text.dropLast()) : text)
                }
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

        let concurrency = config.int("concurrency", default: 4, range: 1...64)
        if let ceiling = config.int("max_concurrency", range: 1...64), ceiling < concurrency {
            config.error("option 'max_concurrency' (\(ceiling)) must not be below 'concurrency' (\(concurrency))", at: "max_concurrency")
        }
        var authTimestamp = AuthTimestamp.whenSynchronised
        switch config.string("send_timestamp") {
        case nil, "auto": break
        case "true": authTimestamp = .always
        case "false": authTimestamp = .never
        case let other?:
            config.error("option 'send_timestamp' must be auto, true or false, got '\(other)'", at: "send_timestamp")
        }

        let topic = config.string("topic", default: "/{product_sn}/{device_sn}/upload")
        let resolvedTopic = Self.resolve(topic: topic, productSN: productSN, deviceSN: deviceSN)
        // A serial number refused above is not the topic's fault (nor the default topic's, never written): the
        // topic is checked with a valid stand-in for it, so only its own problems are reported.
        let checkedTopic = Self.resolve(
            topic: topic, productSN: refusedSerialNumbers.contains("product_sn") ? "p" : productSN,
            deviceSN: refusedSerialNumbers.contains("device_sn") ? "d" : deviceSN)
        if let problem = Self.topicProblem(checkedTopic) {
            config.error("option 'topic' \(problem)", at: "topic")
        } else if refusedSerialNumbers.isEmpty, !productSN.isEmpty, !deviceSN.isEmpty,
            let owner = Self.otherDevice(owning: resolvedTopic, productSN: productSN, deviceSN: deviceSN)
        {
            // The cloud's ACL decides, so this is a warning: but a device's topics are its own by default, and
            // publishing to another's is answered 100075 and dead-letters every message.
            config.warning(
                "option 'topic' '\(resolvedTopic)' is a topic of device \(owner), but this sink publishes as \(productSN)/\(deviceSN): IoT-Core refuses that unless the product's ACL allows it (RetCode 100075, each message dead-lettered); write /{product_sn}/{device_sn}/...",
                at: "topic")
        }

        let settings = IoTCoreSinkSettings(
            endpoint: endpoint ?? .embedded,
            credentials: DeviceCredentials(productSN: productSN, deviceSN: deviceSN, deviceSecret: Secret(secret)),
            caFile: config.string("ca_file").flatMap { $0.isEmpty ? nil : $0 },
            topic: resolvedTopic,
            concurrency: concurrency,
            maxConcurrency: max(concurrency, config.int("max_concurrency", default: max(32, concurrency), range: 1...64)),
            ordering: config.enumeration("ordering", default: DeliveryOrdering.none),
            connectTimeout: config.duration("connect_timeout", default: .seconds(10)),
            requestTimeout: config.duration("request_timeout", default: .seconds(30)),
            authTimestamp: authTimestamp,
            retry: retry,
            renewBefore: config.duration("renew_before", default: .seconds(86_400)),
            deadLetterPath: config.string("dead_letter_path"),
            deadLetterMaxBytes: config.size("dead_letter_max_size", default: 64 << 20))
        // The rest of what the client refuses at start (an unreadable ca_file, a zero timeout), reported where
        // it was written so validate refuses it too.
        let probe = IoTCoreClient.Configuration(
            endpoint: "https://127.0.0.1", credentials: DeviceCredentials(productSN: "p", deviceSN: "d", deviceSecret: Secret("s")),
            caFile: checksPaths ? settings.caFile : nil, connectTimeout: settings.connectTimeout, requestTimeout: settings.requestTimeout)
        for problem in probe.problems() {
            let option = String(problem.prefix(while: { $0 != ":" }))
            config.error("option '\(option)'\(problem.dropFirst(option.count))", at: option)
        }
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

    /// The permission bits of `path`, nil when it cannot be read (reading it reports that).
    static func permissions(of path: String) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int(info.st_mode) & 0o777
    }

    /// The `PRODUCT/DEVICE` a topic belongs to (`/P/D/...` or `/$system/P/D/...`) when that is not the sink's own
    /// device; nil for the sink's own topics and for topics of no device.
    static func otherDevice(owning topic: String, productSN: String, deviceSN: String) -> String? {
        var levels = topic.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        if levels.first == "$system" { levels = levels.dropFirst() }
        guard levels.count >= 3, let product = levels.first, let device = levels.dropFirst().first else { return nil }
        // Only a topic that names this product and another device, or another product with this device: a
        // topic whose first level is neither is a plain custom topic, not recognisably a device's.
        guard (product == productSN) != (device == deviceSN) else { return nil }
        return "\(product)/\(device)"
    }

    /// Why a topic can never be published over HTTP, or nil.
    static func topicProblem(_ topic: String) -> String? {
        if !topic.hasPrefix("/") { return "must start with '/', got '\(topic)'" }
        if let problem = IoTCoreClient.topicProblem(topic) {
            return "cannot be published: " + problem.replacing("the topic ", with: "it ")
        }
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
                    maxInFlight: concurrency, maxConcurrency: maxConcurrency, authTimestamp: authTimestamp,
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
