import IoTCore
import UplinkCore

/// The device a `thing_model` or `shadow` transform speaks for, and its system topics
/// (`/$system/${product_sn}/${device_sn}/…`).
///
/// The ProductSN and DeviceSN come from the transform's own `product_sn` / `device_sn`, or else from what the
/// IoT-Core sinks downstream of it shared at build time (sinks are built first), so a pipeline does not repeat its
/// credentials. Sinks that disagree (a gateway's two devices both fed by one transform) are an error naming both.
struct DeviceIdentity: Sendable, Equatable {
    var productSN: String
    var deviceSN: String

    /// Keys under which the IoT-Core sink publishes its device in ``SharedSettings``.
    static let sharedProductSNKey = "iotcore.product_sn"
    static let sharedDeviceSNKey = "iotcore.device_sn"

    static let options: [OptionSpec] = [
        OptionSpec("product_sn", .string, "the ProductSN in the topic; default: the one of the iotcore sink this transform feeds"),
        OptionSpec("device_sn", .string, "the DeviceSN in the topic; default: the one of the iotcore sink this transform feeds"),
    ]

    /// The longest system-topic suffix the transforms use, for the topic length check.
    static let longestSuffix = "tmodel/property/post"

    /// Reads both SNs, recording a located error for each one that is missing or unusable in a topic.
    static func read(from context: PluginBuildContext) -> DeviceIdentity? {
        let productSN = value("product_sn", sharedKey: sharedProductSNKey, context: context)
        let deviceSN = value("device_sn", sharedKey: sharedDeviceSNKey, context: context)
        guard let productSN, let deviceSN else { return nil }
        let identity = DeviceIdentity(productSN: productSN, deviceSN: deviceSN)
        let longest = identity.systemTopic(longestSuffix)
        if longest.utf8.count > 128 {
            context.config.error(
                "the topic '\(longest)' is \(longest.utf8.count) bytes; IoT-Core allows at most 128: check product_sn and device_sn")
            return nil
        }
        return identity
    }

    private static func value(_ option: String, sharedKey: String, context: PluginBuildContext) -> String? {
        let config = context.config
        let value: String
        if let own = config.string(option) {
            value = own
        } else if let shared = context.shared[sharedKey] {
            value = shared
        } else if let conflict = context.shared.conflict(for: sharedKey) {
            config.error(
                "'\(option)' is not set and the iotcore sinks this transform feeds disagree on it: \(conflict); set '\(option)' on this transform, or give each sink a transform of its own")
            return nil
        } else {
            config.error(
                "missing '\(option)': set it on this transform, or send its output to an iotcore sink that has '\(option)' (the transform then uses the sink's)")
            return nil
        }
        if let problem = IoTCoreClient.topicLevelProblem(value) {
            // A sink's own serial number it refused is reported there, once.
            if config.contains(option) { config.error("'\(option)' \(problem)", at: option) }
            return nil
        }
        return value
    }

    /// `/$system/<ProductSN>/<DeviceSN>/<suffix>`.
    func systemTopic(_ suffix: String) -> String {
        "/$system/\(productSN)/\(deviceSN)/\(suffix)"
    }
}
