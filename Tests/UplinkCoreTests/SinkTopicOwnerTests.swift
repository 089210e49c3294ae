import Testing
import UplinkCore
import UplinkPlugins

/// A sink's `topic` that names another device: IoT-Core answers 100075 (no publish right) and every message is
/// dead-lettered while the run looks healthy, so validate says so where the topic is written. A warning, not an
/// error: the product's ACL in the cloud console may allow it.
@Suite struct SinkTopicOwnerTests {
    static func sink(topic: String) -> String {
        embeddedSinkPipeline(
            "product_sn: abcdefgh12345678", "device_sn: device001", "device_secret: s3cr3tKey0000000", "topic: \"\(topic)\"")
    }

    static func warnings(_ diagnostics: [ConfigDiagnostic]) -> [String] {
        diagnostics.filter { $0.severity == .warning }.map(\.description)
    }

    @Test(arguments: [
        ("/abcdefgh12345678/device002/upload", "abcdefgh12345678/device002"),
        ("/$system/abcdefgh12345678/device002/tmodel/property/post", "abcdefgh12345678/device002"),
        ("/otherproduct0001/device001/upload", "otherproduct0001/device001"),
    ])
    func anotherDevicesTopicIsAWarningAtItsPlace(_ topic: String, _ owner: String) {
        let (topology, diagnostics) = validate(Self.sink(topic: topic))
        #expect(topology != nil && errors(diagnostics).isEmpty, "\(errors(diagnostics))")
        let found = Self.warnings(diagnostics)
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.hasPrefix("test.yaml:13:12: warning: option 'topic'") == true, "\(found)")
        #expect(found.first?.contains("a topic of device \(owner), but this sink publishes as abcdefgh12345678/device001") == true, "\(found)")
        #expect(found.first?.contains("100075") == true)
    }

    @Test(arguments: [
        "/abcdefgh12345678/device001/upload", "/{product_sn}/{device_sn}/events", "/$system/{product_sn}/{device_sn}/shadow/upstream",
        "/factory/line4/alarms", "/abcdefgh12345678",
    ])
    func theSinksOwnTopicsAndPlainCustomTopicsAreNot(_ topic: String) {
        let (_, diagnostics) = validate(Self.sink(topic: topic))
        #expect(errors(diagnostics).isEmpty, "\(errors(diagnostics))")
        #expect(Self.warnings(diagnostics).isEmpty, "\(Self.warnings(diagnostics))")
    }
}
