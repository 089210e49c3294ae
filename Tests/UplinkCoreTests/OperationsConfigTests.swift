import Testing
import UplinkCore
import UplinkYAML

@Suite struct OperationsConfigTests {
    static let components = """
        sources:
          probe: { type: stdin }
        sinks:
          out: { type: stdout, inputs: [probe] }
        """

    @Test func theAPIIsOffUnlessWritten() throws {
        let (topology, diagnostics) = validate(Self.components)
        #expect(errors(diagnostics).isEmpty)
        #expect(try #require(topology).global.api == nil)
        #expect(topology?.global.summaryInterval == .seconds(60))
    }

    @Test func anEmptyAPISectionListensOnTheLoopbackDefault() throws {
        let (topology, diagnostics) = validate("api: {}\n" + Self.components)
        #expect(diagnostics.isEmpty)
        let api = try #require(topology?.global.api)
        #expect(api.address == "127.0.0.1:8686")
        #expect(api.isLoopback)
        #expect(api.unhealthyAfter == .seconds(60))
    }

    @Test func addressAndLimitAreRead() throws {
        let (topology, diagnostics) = validate(
            "api: { address: '[::1]:9000', unhealthy_after: 2m }\nsummary_interval: 10s\n" + Self.components)
        #expect(diagnostics.isEmpty)
        let api = try #require(topology?.global.api)
        #expect(api.host == "::1")
        #expect(api.port == 9000)
        #expect(api.unhealthyAfter == .seconds(120))
        #expect(topology?.global.summaryInterval == .seconds(10))
    }

    @Test func enabledFalseTurnsItOff() throws {
        let (topology, _) = validate("api: { enabled: false, address: 127.0.0.1:1 }\n" + Self.components)
        #expect(try #require(topology).global.api == nil)
    }

    @Test func aNonLoopbackAddressIsAllowedWhenWrittenWithAWarning() throws {
        let (topology, diagnostics) = validate("api: { address: 0.0.0.0:8686 }\n" + Self.components)
        #expect(topology?.global.api?.host == "0.0.0.0")
        #expect(diagnostics.map(\.description) == [
            "test.yaml:1:17: warning: the API listens on 0.0.0.0:8686, beyond this machine: anyone who reaches it can read metrics and tap events"
        ])
    }

    @Test(arguments: [
        ("api: { address: localhost }", "test.yaml:1:17: error: 'api.address' must be host:port, for example 127.0.0.1:8686 or [::1]:8686, not 'localhost'"),
        ("api: { address: '127.0.0.1:99999' }", "'api.address' must be host:port"),
        ("api: { address: 'my host:80' }", "'api.address' must be host:port"),
        ("api: { adress: 127.0.0.1:1 }", "unknown option 'api.adress'; did you mean 'api.address'?"),
        ("api: { unhealthy_after: 0s }", "'api.unhealthy_after' must be more than 0"),
        ("api: 8686", "option 'api' must be a mapping"),
        ("summary_interval: soon", "summary_interval"),
    ])
    func mistakesAreLocated(_ line: String, _ expected: String) {
        let (topology, diagnostics) = validate(line + "\n" + Self.components)
        #expect(topology == nil)
        #expect(errors(diagnostics).contains { $0.contains(expected) }, "\(errors(diagnostics))")
        #expect(errors(diagnostics).allSatisfy { $0.hasPrefix("test.yaml:1:") })
    }

    @Test(arguments: [
        ("127.0.0.1:8686", "127.0.0.1", 8686), (":9000", "127.0.0.1", 9000), ("[::1]:0", "::1", 0),
        ("localhost:80", "localhost", 80), ("10.0.0.2:1", "10.0.0.2", 1),
    ])
    func addressesParse(_ text: String, _ host: String, _ port: Int) throws {
        let parsed = try #require(APIConfig.parseAddress(text))
        #expect(parsed.host == host)
        #expect(parsed.port == port)
    }

    @Test func testsAreKeptForUplinkTest() {
        var config = PipelineConfig(files: ["test.yaml"])
        let diagnostics = DiagnosticCollector()
        ConfigLoader(environment: [:]).load(
            bytes: Array(("tests: [{name: a}]\n" + Self.components).utf8), file: "test.yaml", into: &config,
            diagnostics: diagnostics)
        #expect(!diagnostics.hasErrors)
        #expect(config.tests.count == 1)
        #expect(config.tests.first?.node.sequence?.count == 1)
    }
}
