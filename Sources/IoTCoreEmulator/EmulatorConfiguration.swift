/// Configuration of an ``IoTCoreEmulator``.
///
/// | key | type | default | meaning |
/// |---|---|---|---|
/// | `host` | `String` | `"127.0.0.1"` | address to bind |
/// | `port` | `Int` | `0` | port to bind; 0 picks a free port (read it with ``IoTCoreEmulator/waitUntilReady()``) |
/// | `tls` | ``EmulatorTLS`` | `.selfSigned(caCertificateOutput: nil)` | listener security |
/// | `devices` | `[EmulatorDevice]` | `[]` | the devices that may authenticate |
/// | `tokenLifetime` | `Duration` | 604800 s (7 days) | token validity; sub-second precision is enforced |
/// | `faults` | ``EmulatorFaults`` | none | injected faults at start-up |
/// | `acceptedLogPath` | `String?` | `nil` | file that gets one JSON line per accepted message |
/// | `maxBodyBytes` | `Int` | `131072` | largest publish body; larger answers 100076 |
/// | `clockSkewAllowance` | `Duration` | 3600 s | largest distance of an `/auth` `Timestamp` from server time |
/// | `maxRetainedMessages` | `Int` | `10000` | accepted messages kept in memory for inspection (oldest dropped) |
/// | `maxRetainedBytes` | `Int` | `67108864` | body bytes of those messages kept in memory (oldest dropped) |
public struct EmulatorConfiguration: Sendable {
    /// Address to bind.
    public var host: String
    /// Port to bind; 0 picks a free port.
    public var port: Int
    /// Listener security.
    public var tls: EmulatorTLS
    /// Devices that may authenticate.
    public var devices: [EmulatorDevice]
    /// Validity of an issued token.
    public var tokenLifetime: Duration
    /// Faults injected from start-up.
    public var faults: EmulatorFaults
    /// File that gets one JSON line per accepted message (`time`, `topic`, `product_sn`, `device_sn`,
    /// `message_id`, `body_base64`); `nil` keeps messages in memory only.
    public var acceptedLogPath: String?
    /// Largest accepted publish body in bytes.
    public var maxBodyBytes: Int
    /// Largest accepted distance between an `/auth` `Timestamp` and server time.
    public var clockSkewAllowance: Duration
    /// Accepted messages kept in memory; the oldest are dropped beyond this count.
    public var maxRetainedMessages: Int
    /// Body bytes of the accepted messages kept in memory; the oldest are dropped beyond this many. Without it,
    /// 10,000 bodies of 128 KB held 1.3 GB in a benchmark.
    public var maxRetainedBytes: Int

    /// Creates a configuration; every parameter has the default listed on the type.
    public init(
        host: String = "127.0.0.1",
        port: Int = 0,
        tls: EmulatorTLS = .selfSigned(caCertificateOutput: nil),
        devices: [EmulatorDevice] = [],
        tokenLifetime: Duration = .seconds(604_800),
        faults: EmulatorFaults = EmulatorFaults(),
        acceptedLogPath: String? = nil,
        maxBodyBytes: Int = 131_072,
        clockSkewAllowance: Duration = .seconds(3600),
        maxRetainedMessages: Int = 10_000,
        maxRetainedBytes: Int = 64 << 20
    ) {
        self.host = host
        self.port = port
        self.tls = tls
        self.devices = devices
        self.tokenLifetime = tokenLifetime
        self.faults = faults
        self.acceptedLogPath = acceptedLogPath
        self.maxBodyBytes = maxBodyBytes
        self.clockSkewAllowance = clockSkewAllowance
        self.maxRetainedMessages = maxRetainedMessages
        self.maxRetainedBytes = maxRetainedBytes
    }

    var retentionCaps: RetentionCaps { RetentionCaps(messages: self.maxRetainedMessages, bytes: self.maxRetainedBytes) }

    /// Every problem of the configuration, empty when it is usable. Collected rather than thrown one by one
    /// so a user sees all of them at once.
    public func problems() -> [String] {
        var problems: [String] = []
        if self.host.isEmpty { problems.append("host: must not be empty") }
        if !(0...65535).contains(self.port) { problems.append("port: \(self.port) is not in 0...65535") }
        if self.tokenLifetime <= .zero { problems.append("token_lifetime: must be positive") }
        if self.maxBodyBytes <= 0 { problems.append("max_body_bytes: must be positive") }
        if self.clockSkewAllowance < .zero { problems.append("clock_skew_allowance: must not be negative") }
        if self.maxRetainedMessages < 0 { problems.append("max_retained_messages: must not be negative") }
        if self.maxRetainedBytes < 0 { problems.append("max_retained_bytes: must not be negative") }
        for (name, ratio) in [
            ("ratio_130", self.faults.ratio130), ("ratio_100077", self.faults.ratio100077),
            ("auth_ratio_130", self.faults.authRatio130),
        ] where !(0...1).contains(ratio) {
            problems.append("faults.\(name): \(ratio) is not in 0...1")
        }
        if self.faults.latency < .zero { problems.append("faults.latency: must not be negative") }
        var seen: Set<String> = []
        for (index, device) in self.devices.enumerated() {
            if device.productSN.isEmpty || device.deviceSN.isEmpty {
                problems.append("devices[\(index)]: product_sn and device_sn must not be empty")
            }
            if device.secret.isEmpty { problems.append("devices[\(index)]: secret must not be empty") }
            if !seen.insert("\(device.productSN)/\(device.deviceSN)").inserted {
                problems.append("devices[\(index)]: \(device.productSN)/\(device.deviceSN) is listed twice")
            }
            for filter in device.publishACL where !TopicFilter.isValid(filter) {
                problems.append("devices[\(index)].publish_acl: '\(filter)' is not a valid MQTT topic filter")
            }
        }
        return problems
    }
}
