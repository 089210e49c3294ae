import Glibc

extension IoTCoreClient {
    /// The settings of an ``IoTCoreClient``.
    ///
    /// | key | type | default | meaning |
    /// |---|---|---|---|
    /// | `endpoint` | String | — | `https://host[:port][/prefix]` (see ``IoTCoreRegion``); `http://` only to 127/8 |
    /// | `credentials` | ``DeviceCredentials`` | — | ProductSN, DeviceSN, DeviceSecret |
    /// | `caFile` | String? | nil | a PEM CA bundle instead of the system's (for example the vendor's `iot_ca.crt`) |
    /// | `connectTimeout` | Duration | 10 s | TCP and TLS handshake |
    /// | `requestTimeout` | Duration | 30 s | a whole request, connect included |
    /// | `maxInFlight` | Int | 4 | requests on the wire at once (1 ... 256); more wait in a queue |
    /// | `maxConcurrency` | Int? | nil | when set, ``IoTCoreClient/concurrencyLimit`` adapts from `maxInFlight` up to this (AIMD) |
    /// | `authTimestamp` | ``AuthTimestamp`` | whenSynchronised | send `Timestamp` (ms) with `/auth`; dropped for good after a 100070 |
    /// | `stateDirectory` | String? | nil | where the token cache file lives; nil keeps the token in memory only |
    /// | `retry` | ``RetryPolicy`` | see there | back-off and give-up rules |
    /// | `renewBefore` | Duration | 1 day | renew the token when it expires within this (at most half its lifetime) |
    ///
    /// An early renewal that fails leaves the current token in use and is tried again after `retry.maxBackoff`
    /// (or `retry.credentialBackoff` when the credentials were refused), so it never holds up a publish.
    /// | `maxResponseBytes` | Int | 65536 | the most response body buffered; a longer answer counts as transient |
    /// | `userAgent` | String | `uplink-iotcore` | the `User-Agent` header |
    ///
    /// Printing a configuration never shows the secret.
    public struct Configuration: Sendable, CustomStringConvertible {
        /// The service's base URL, without `/auth` or `/topic`.
        public var endpoint: String
        /// The device's credentials.
        public var credentials: DeviceCredentials
        /// A PEM CA bundle that replaces the system's for verifying the server.
        public var caFile: String?
        /// The limit for the TCP connect and TLS handshake.
        public var connectTimeout: Duration
        /// The limit for a whole request.
        public var requestTimeout: Duration
        /// Requests on the wire at once; with ``maxConcurrency``, the adaptive limit's start.
        public var maxInFlight: Int
        /// The ceiling of the adaptive limit (``AdaptiveConcurrency``); nil keeps ``maxInFlight`` fixed.
        public var maxConcurrency: Int?
        /// When `/auth` carries `Timestamp` in milliseconds.
        public var authTimestamp: AuthTimestamp
        /// The directory of the token cache file; `nil` keeps the token in memory only.
        public var stateDirectory: String?
        /// Back-off and give-up rules.
        public var retry: RetryPolicy
        /// Renew the token when it expires within this.
        public var renewBefore: Duration
        /// The most response body bytes buffered.
        public var maxResponseBytes: Int
        /// The `User-Agent` header.
        public var userAgent: String

        /// Creates a configuration; every argument after `credentials` has the documented default.
        public init(
            endpoint: String,
            credentials: DeviceCredentials,
            caFile: String? = nil,
            connectTimeout: Duration = .seconds(10),
            requestTimeout: Duration = .seconds(30),
            maxInFlight: Int = 4,
            maxConcurrency: Int? = nil,
            authTimestamp: AuthTimestamp = .whenSynchronised,
            stateDirectory: String? = nil,
            retry: RetryPolicy = RetryPolicy(),
            renewBefore: Duration = .seconds(24 * 3600),
            maxResponseBytes: Int = 65_536,
            userAgent: String = "uplink-iotcore"
        ) {
            self.endpoint = endpoint
            self.credentials = credentials
            self.caFile = caFile
            self.connectTimeout = connectTimeout
            self.requestTimeout = requestTimeout
            self.maxInFlight = maxInFlight
            self.maxConcurrency = maxConcurrency
            self.authTimestamp = authTimestamp
            self.stateDirectory = stateDirectory
            self.retry = retry
            self.renewBefore = renewBefore
            self.maxResponseBytes = maxResponseBytes
            self.userAgent = userAgent
        }

        /// A configuration for a region's public endpoint.
        public init(region: IoTCoreRegion, credentials: DeviceCredentials) {
            self.init(endpoint: region.endpoint, credentials: credentials)
        }

        /// Every problem that stops this configuration from working, empty when it is good. Reads the file
        /// system to check `caFile`.
        public func problems() -> [String] {
            var problems: [String] = []
            if case .failure(let problem) = Self.normalizedEndpoint(endpoint) {
                problems.append("endpoint: \(problem)")
            }
            for (name, value) in [("product_sn", credentials.productSN), ("device_sn", credentials.deviceSN)] {
                if value.isEmpty {
                    problems.append("\(name): must not be empty")
                } else if value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                    problems.append("\(name): must not contain control characters")
                }
            }
            if credentials.deviceSecret.isEmpty {
                problems.append("device_secret: must not be empty")
            }
            if let caFile {
                if caFile.isEmpty {
                    problems.append("ca_file: must not be empty")
                } else if access(caFile, R_OK) != 0 {
                    problems.append("ca_file: \(caFile) is not readable")
                }
            }
            if connectTimeout <= .zero { problems.append("connect_timeout: must be positive") }
            if requestTimeout <= .zero { problems.append("request_timeout: must be positive") }
            if !(1...256).contains(maxInFlight) { problems.append("max_in_flight: must be between 1 and 256") }
            if let maxConcurrency, !(maxInFlight...256).contains(maxConcurrency) {
                problems.append("max_concurrency: must be between max_in_flight (\(maxInFlight)) and 256")
            }
            if let stateDirectory, stateDirectory.isEmpty {
                problems.append("state_directory: must not be empty")
            }
            if retry.initialBackoff < .zero { problems.append("retry.initial_backoff: must not be negative") }
            if retry.maxBackoff < retry.initialBackoff {
                problems.append("retry.max_backoff: must not be smaller than retry.initial_backoff")
            }
            if let maxAttempts = retry.maxAttempts, maxAttempts < 1 {
                problems.append("retry.max_attempts: must be at least 1")
            }
            if retry.credentialBackoff <= .zero { problems.append("retry.credential_backoff: must be positive") }
            if renewBefore < .zero { problems.append("renew_before: must not be negative") }
            if !(1024...(16 << 20)).contains(maxResponseBytes) {
                problems.append("max_response_bytes: must be between 1024 and 16777216")
            }
            if userAgent.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                problems.append("user_agent: must not contain control characters")
            }
            return problems
        }

        /// The configuration's fields; the secret shows as `<redacted>`.
        public var description: String {
            "IoTCoreClient.Configuration(endpoint: \(endpoint), credentials: \(credentials), "
                + "caFile: \(caFile ?? "nil"), connectTimeout: \(connectTimeout), requestTimeout: \(requestTimeout), "
                + "maxInFlight: \(maxInFlight), maxConcurrency: \(maxConcurrency.map(String.init) ?? "nil"), "
                + "authTimestamp: \(authTimestamp), "
                + "stateDirectory: \(stateDirectory ?? "nil"), retry: \(retry), renewBefore: \(renewBefore))"
        }

        /// `endpoint` without a trailing slash, or why it cannot be used.
        static func normalizedEndpoint(_ endpoint: String) -> Result<String, EndpointProblem> {
            let scheme: String
            if endpoint.hasPrefix("https://") {
                scheme = "https://"
            } else if endpoint.hasPrefix("http://") {
                scheme = "http://"
            } else {
                return .failure(EndpointProblem("must start with https://"))
            }
            let rest = endpoint.dropFirst(scheme.count)
            if rest.utf8.contains(where: { $0 <= 0x20 || $0 >= 0x7f }) {
                return .failure(EndpointProblem("must not contain whitespace, control or non-ASCII characters"))
            }
            if rest.contains("?") || rest.contains("#") {
                return .failure(EndpointProblem("must not have a query or fragment"))
            }
            let authority = rest.prefix(while: { $0 != "/" })
            if authority.isEmpty { return .failure(EndpointProblem("has no host")) }
            if authority.contains("@") { return .failure(EndpointProblem("must not carry user information")) }
            if scheme == "http://" && !isLoopbackIPv4(hostOf(authority)) {
                return .failure(EndpointProblem("http:// is only allowed for 127.0.0.0/8 (tests); use https://"))
            }
            var normalized = endpoint
            while normalized.hasSuffix("/") { normalized.removeLast() }
            return .success(normalized)
        }

        struct EndpointProblem: Error, CustomStringConvertible {
            var description: String
            init(_ description: String) { self.description = description }
        }

        private static func hostOf(_ authority: Substring) -> Substring {
            if authority.hasPrefix("[") { return authority.prefix(while: { $0 != "]" }) + "]" }
            return authority.prefix(while: { $0 != ":" })
        }

        private static func isLoopbackIPv4(_ host: Substring) -> Bool {
            let octets = host.split(separator: ".", omittingEmptySubsequences: false)
            guard octets.count == 4 else { return false }
            let values = octets.compactMap { $0.count <= 3 && $0.allSatisfy(\.isASCII) ? UInt8($0) : nil }
            return values.count == 4 && values[0] == 127
        }
    }
}

/// The settings of an ``IoTCoreClient``; see ``IoTCoreClient/Configuration``.
public typealias IoTCoreConfiguration = IoTCoreClient.Configuration
