import Testing
import UplinkCore
import UplinkPlugins

@Suite struct ShadowTransformTests {
    private func pipeline(shadow options: String) -> String {
        """
        sources:
          in: { type: stdin }
        transforms:
          wrap: { type: json, inputs: [in], mode: json }
          t: { type: shadow, inputs: [wrap], \(options) }
        sinks:
          out: { type: stdout, inputs: [t] }
        """
    }

    private func updates(_ options: String, _ input: [Fields]) async throws -> TransformRun<Message> {
        let transform = try builtTransform(
            "t", in: pipeline(shadow: "product_sn: abcdefgh12345678, device_sn: device001, " + options),
            as: ShadowTransform.self)
        return try await run(transform, records(input))
    }

    @Test func updateIsByteForByteTheSpecsExample() async throws {
        let found = try await updates("version: -1", [["temperature": .int(26)]])
        #expect(found.events.map(\.text) == [#"{"Method":"update","State":{"Reported":{"temperature":26}},"Version":-1}"#])
        #expect(found.events.map(\.topic) == ["/$system/abcdefgh12345678/device001/shadow/upstream"])
    }

    @Test func aNullFieldDeletesTheReportedKeyAsInTheSpec() async throws {
        let found = try await updates("", [["k": .null]])
        #expect(found.events.map(\.text) == [#"{"Method":"update","State":{"Reported":{"k":null}},"Version":-1}"#])
    }

    @Test func versionCanBePinnedAndReportedSelectsAndRenames() async throws {
        let found = try await updates(
            "version: 7, reported: { temp: temperature, mode: mode }",
            [["temperature": .double(21.5), "noise": .int(1), "mode": .string("eco")], ["noise": .int(2)]])
        #expect(found.events.map(\.text) == [#"{"Method":"update","State":{"Reported":{"temp":21.5,"mode":"eco"}},"Version":7}"#])
        #expect(found.metrics.errors == 1, "the record with nothing to report is counted")
        #expect(found.metrics.droppedEvents == 1)
    }

    @Test func keysAreEscaped() async throws {
        let found = try await updates("", [["a\"b\u{1}": .string("温度")]])
        #expect(found.events.map(\.text) == ["{\"Method\":\"update\",\"State\":{\"Reported\":{\"a\\\"b\\u0001\":\"温度\"}},\"Version\":-1}"])
    }

    @Test func productAndDeviceComeFromTheSink() throws {
        let yaml = """
            sources:
              in: { type: stdin }
            transforms:
              wrap: { type: json, inputs: [in], mode: json }
              t: { type: shadow, inputs: [wrap] }
            sinks:
              cloud: { type: fake_iotcore, inputs: [t], product_sn: P1, device_sn: D1 }
            """
        let transform = try builtTransform("t", in: yaml, as: ShadowTransform.self, registry: registryWithDeviceSink)
        #expect(transform.topic == "/$system/P1/D1/shadow/upstream")
    }

    /// Two devices on one board: each shadow goes to the device of the sink it feeds, not to the last one built.
    @Test func eachShadowTakesTheDeviceOfTheSinkItFeeds() throws {
        let yaml = """
            sources:
              in: { type: stdin }
            transforms:
              wrap: { type: json, inputs: [in], mode: json }
              fan: { type: shadow, inputs: [wrap] }
              pump: { type: shadow, inputs: [wrap] }
            sinks:
              fan_device: { type: fake_iotcore, inputs: [fan], product_sn: P1, device_sn: fan }
              pump_device: { type: fake_iotcore, inputs: [pump], product_sn: P1, device_sn: pump }
            """
        let fan = try builtTransform("fan", in: yaml, as: ShadowTransform.self, registry: registryWithDeviceSink)
        let pump = try builtTransform("pump", in: yaml, as: ShadowTransform.self, registry: registryWithDeviceSink)
        #expect(fan.topic == "/$system/P1/fan/shadow/upstream")
        #expect(pump.topic == "/$system/P1/pump/shadow/upstream")
    }

    @Test(arguments: [
        ("product_sn: p, device_sn: d, version: -2", "must be between -1 and"),
        ("product_sn: p, device_sn: d, reported: []", "'reported' is empty: leave it out to take every field"),
        ("product_sn: p", "missing 'device_sn'"),
    ])
    func misconfigurationIsReported(_ options: String, _ expected: String) {
        let (_, errors) = buildPipeline(pipeline(shadow: options))
        #expect(errors.contains { $0.contains(expected) && $0.hasPrefix("test.yaml:5:") }, "\(errors)")
    }
}
