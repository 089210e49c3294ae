/// What identifies one device to IoT-Core: the product and device serial numbers and the device's secret.
///
/// Only static registration (a per-device `DeviceSecret`) can use the HTTPS interface. Printing a value of
/// this type never shows the secret.
public struct DeviceCredentials: Sendable, Hashable, CustomStringConvertible {
    /// `ProductSN` as shown in the console.
    public var productSN: String
    /// `DeviceSN` as shown in the console.
    public var deviceSN: String
    /// `DeviceSecret`, the HMAC key of the `/auth` signature.
    public var deviceSecret: Secret

    /// Creates credentials.
    public init(productSN: String, deviceSN: String, deviceSecret: Secret) {
        self.productSN = productSN
        self.deviceSN = deviceSN
        self.deviceSecret = deviceSecret
    }

    /// `DeviceCredentials(productSN: …, deviceSN: …, deviceSecret: <redacted>)`.
    public var description: String {
        "DeviceCredentials(productSN: \(productSN), deviceSN: \(deviceSN), deviceSecret: \(deviceSecret))"
    }
}
