/// The regions that offer the IoT-Core HTTPS device interface.
public enum IoTCoreRegion: String, Sendable, CaseIterable {
    /// Shanghai 2.
    case cnSh2 = "cn-sh2"
    /// Guangzhou.
    case cnGd = "cn-gd"

    /// The region's HTTPS endpoint, `https://http-<region>.iot.ucloud.cn`, used for both `/auth` and `/topic`.
    public var endpoint: String { "https://http-\(rawValue).iot.ucloud.cn" }
}
