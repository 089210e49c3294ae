public import UplinkYAML

/// The API listener: `api: { address: 127.0.0.1:8686, unhealthy_after: 60s }`. Off unless `api:` is written.
///
/// | key | type | default | |
/// |---|---|---|---|
/// | `enabled` | bool | true | false keeps the section but serves nothing |
/// | `address` | `host:port` | `127.0.0.1:8686` | where to listen; loopback unless another address is written |
/// | `unhealthy_after` | duration | 60s | how long a sink may fail continuously before `/health` answers 503 |
/// | `max_connections` | int | 32 | connections open at once; beyond, the longest-idle one is closed, or the new one refused |
/// | `header_timeout` | duration | 10s | how long a request's head may take to arrive once it started |
/// | `idle_timeout` | duration | 60s | how long a connection may stay open with no request in progress |
/// | `allowed_hosts` | list | | `Host` names accepted besides IP literals and `localhost` (a non-loopback address) |
public struct APIConfig: Sendable, Hashable {
    public static let defaultAddress = "127.0.0.1:8686"

    /// The host to bind: an IPv4 or IPv6 literal, or `localhost`.
    public var host: String = "127.0.0.1"
    public var port: Int = 8686
    public var unhealthyAfter: Duration = .seconds(60)
    /// Connections open at once, at most (each holds a file descriptor).
    public var maxConnections: Int = 32
    /// How long a request's head may take once its first byte arrived (a slow-header client is cut).
    public var headerTimeout: Duration = .seconds(10)
    /// How long a connection may stay open with no request in progress.
    public var idleTimeout: Duration = .seconds(60)
    /// `Host` header names accepted besides IP literals and `localhost`; only for a non-loopback address.
    public var allowedHosts: [String] = []

    public init(host: String = "127.0.0.1", port: Int = 8686, unhealthyAfter: Duration = .seconds(60)) {
        self.host = host
        self.port = port
        self.unhealthyAfter = unhealthyAfter
    }

    /// `host:port`, with brackets around an IPv6 host.
    public var address: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Whether only this machine can reach the listener.
    public var isLoopback: Bool { Self.isLoopback(host) }

    static let options: [OptionSpec] = [
        OptionSpec("enabled", .bool, default: "true", "false keeps the section but serves nothing"),
        OptionSpec(
            "address", .string, default: defaultAddress,
            "host:port to listen on (port 0 picks a free one); loopback unless another address is written"),
        OptionSpec(
            "unhealthy_after", .duration, default: "60s",
            "how long a sink may fail continuously before /health answers 503"),
        OptionSpec(
            "max_connections", .int, default: "32",
            "connections open at once; beyond, the longest-idle one is closed, or the new one refused with 503"),
        OptionSpec("header_timeout", .duration, default: "10s", "how long a request's head may take to arrive"),
        OptionSpec("idle_timeout", .duration, default: "60s", "how long a connection may stay open with no request"),
        OptionSpec(
            "allowed_hosts", .stringList,
            "Host header names accepted besides IP literals and localhost (with a non-loopback address)"),
    ]

    /// Parses `host:port`, `[v6]:port` or `:port` (loopback). Nil when it does not parse.
    public static func parseAddress(_ text: String) -> (host: String, port: Int)? {
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil }  // an IPv6 literal needs brackets
        }
        if host.isEmpty { host = "127.0.0.1" }
        guard !portText.isEmpty, portText.allSatisfy(\.isASCII), portText.allSatisfy(\.isNumber),
            let port = Int(portText), (0...65535).contains(port)
        else { return nil }
        let valid =
            host == "localhost"
            || host.split(separator: ".", omittingEmptySubsequences: false).count == 4
                && host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { UInt8($0) != nil }
            || host.contains(":") && host.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
        guard valid else { return nil }
        return (String(host), port)
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Reads the `api:` section; nil when it is absent or `enabled: false`. Problems are located diagnostics.
    static func read(_ reader: ConfigReader) -> APIConfig? {
        guard reader.contains("api") else { return nil }
        guard let api = reader.nested("api") else { return nil }
        api.finish()
        guard api.bool("enabled", default: true) else { return nil }
        var config = APIConfig()
        if let address = api.string("address") {
            if let (host, port) = parseAddress(address) {
                config.host = host
                config.port = port
                if !isLoopback(host) {
                    api.warning(
                        "the API listens on \(address), beyond this machine: anyone who reaches it can read metrics and tap events",
                        at: "address")
                }
            } else {
                api.error(
                    "'api.address' must be host:port, for example 127.0.0.1:8686 or [::1]:8686, not '\(address)'",
                    at: "address")
            }
        }
        let unhealthyAfter = api.duration("unhealthy_after", default: .seconds(60))
        if unhealthyAfter <= .zero {
            api.error("'api.unhealthy_after' must be more than 0", at: "unhealthy_after")
        } else {
            config.unhealthyAfter = unhealthyAfter
        }
        config.maxConnections = api.int("max_connections", default: config.maxConnections, range: 1...65536)
        for (name, keyPath) in [("header_timeout", \APIConfig.headerTimeout), ("idle_timeout", \APIConfig.idleTimeout)] {
            guard let timeout = api.duration(name) else { continue }
            if timeout <= .zero {
                api.error("'api.\(name)' must be more than 0", at: name)
            } else {
                config[keyPath: keyPath] = timeout
            }
        }
        if let hosts = api.stringList("allowed_hosts") {
            if config.isLoopback {
                api.warning("'api.allowed_hosts' has no effect on a loopback address: only loopback names are accepted", at: "allowed_hosts")
            }
            config.allowedHosts = hosts.map { $0.lowercased() }
        }
        return config
    }
}

/// A `tests:` list written in a configuration file, kept as YAML for `uplink test` to read.
public struct ConfigTestsNode: Sendable {
    public var file: String
    public var node: YAMLNode

    public init(file: String, node: YAMLNode) {
        self.file = file
        self.node = node
    }
}

/// The top-level keys of operating Uplink, read by ``ConfigLoader`` next to its own.
enum OperationsConfig {
    static let options: [OptionSpec] = [
        OptionSpec(
            "api", .mapping(APIConfig.options),
            "the API listener for /metrics, /health, /ready, `uplink top` and `uplink tap`: { address: 127.0.0.1:8686, unhealthy_after: 60s }; off when absent"
        ),
        OptionSpec(
            "summary_interval", .duration, default: "1m",
            "how often each component's counters are summarised in one info log line; 0 turns summaries off"),
        OptionSpec("tests", .any, "unit tests of the transforms, run by `uplink test`"),
    ]

    /// Applies the operations keys of one file to `config`.
    static func read(_ reader: ConfigReader, file: String, into config: inout PipelineConfig) {
        if let api = APIConfig.read(reader) {
            if config.global.api != nil {
                reader.error("'api' is already set in another configuration file", at: "api")
            }
            config.global.api = api
        }
        if let interval = reader.duration("summary_interval") {
            if interval < .zero {
                reader.error("'summary_interval' must not be negative", at: "summary_interval")
            } else {
                config.global.summaryInterval = interval
            }
        }
        if let tests = reader.value("tests") {
            config.tests.append(ConfigTestsNode(file: file, node: tests))
        }
    }
}
