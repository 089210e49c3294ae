/// A device registered in the emulator, as a product's device list in the IoT-Core console would hold it.
///
/// - `productSN`, `deviceSN`: the identifiers the device sends in `POST /auth`.
/// - `secret`: the per-device `DeviceSecret` (static registration) that keys the HMAC-SHA256 signature.
/// - `disabled`: a disabled device is known but refused with RetCode 100072. Default `false`.
/// - `publishACL`: MQTT topic filters (`+` matches one level, `#` the rest) the device may publish to. Default:
///   the device's own custom and system topics, `/PSN/DSN/#` and `/$system/PSN/DSN/#`. Only what the list
///   allows is accepted; a topic outside it is answered with RetCode 100075.
public struct EmulatorDevice: Sendable, Hashable {
    /// The product serial number (`ProductSN`).
    public var productSN: String
    /// The device serial number (`DeviceSN`).
    public var deviceSN: String
    /// The device secret (`DeviceSecret`) that keys the `/auth` signature. Never logged.
    public var secret: String
    /// Whether the device is disabled (authentication answers 100072).
    public var disabled: Bool
    /// MQTT topic filters the device may publish to.
    public var publishACL: [String]

    /// Creates a device.
    /// - Parameters:
    ///   - productSN: The product serial number.
    ///   - deviceSN: The device serial number.
    ///   - secret: The device secret.
    ///   - disabled: Whether the device is disabled. Default `false`.
    ///   - publishACL: Topic filters the device may publish to; `nil` (the default) means
    ///     ``defaultPublishACL(productSN:deviceSN:)``.
    public init(
        productSN: String,
        deviceSN: String,
        secret: String,
        disabled: Bool = false,
        publishACL: [String]? = nil
    ) {
        self.productSN = productSN
        self.deviceSN = deviceSN
        self.secret = secret
        self.disabled = disabled
        self.publishACL = publishACL ?? Self.defaultPublishACL(productSN: productSN, deviceSN: deviceSN)
    }

    /// The ACL a new device gets: its own custom topics and its own system topics.
    /// - Returns: `["/PSN/DSN/#", "/$system/PSN/DSN/#"]` for the given serial numbers.
    public static func defaultPublishACL(productSN: String, deviceSN: String) -> [String] {
        ["/\(productSN)/\(deviceSN)/#", "/$system/\(productSN)/\(deviceSN)/#"]
    }
}

extension EmulatorDevice: CustomStringConvertible {
    /// A description that leaves the secret out, so a device can be logged or printed safely.
    public var description: String {
        "EmulatorDevice(productSN: \(productSN), deviceSN: \(deviceSN), disabled: \(disabled), "
            + "publishACL: \(publishACL))"
    }
}
