import Logging
import Testing
import UplinkCore
import UplinkOperations
import UplinkPlugins
import UplinkYAML

@Suite(.timeLimit(.minutes(1))) struct ConfigTestRunnerTests {
    /// Loads a pipeline with its tests; fails the test on configuration errors.
    static func load(_ yaml: String) throws -> (Topology, [ConfigTestCase], [String]) {
        let diagnostics = DiagnosticCollector()
        var config = PipelineConfig(files: ["p.yaml"])
        ConfigLoader(environment: [:]).load(bytes: Array(yaml.utf8), file: "p.yaml", into: &config, diagnostics: diagnostics)
        let topology = TopologyBuilder(registry: Builtins.registry).build(config, diagnostics: diagnostics)
        let tests = ConfigTestCase.parse(config.tests, diagnostics: diagnostics)
        let errors = diagnostics.diagnostics.filter { $0.severity == .error }.map(\.description)
        guard let topology else { throw Invalid(errors: errors) }
        return (topology, tests, errors)
    }

    struct Invalid: Error { var errors: [String] }

    static let pipeline = """
        sources:
          in: { type: stdin }
        transforms:
          readings: { type: json, inputs: [in], mode: csv, columns: [time:int, temp:float], on_error: dead_letter }
          props:
            type: thing_model
            inputs: [readings]
            product_sn: abcdefgh12345678
            device_sn: device001
            time_field: time
            properties: { t: temp }
          batches: { type: batch, inputs: [props], timeout: 1s }
        sinks:
          out: { type: stdout, inputs: [batches] }
        """

    static func run(_ tests: String) async throws -> [ConfigTestRunner.Outcome] {
        let (topology, cases, errors) = try load(pipeline + "\ntests:\n" + tests)
        #expect(errors.isEmpty, "\(errors)")
        let runner = ConfigTestRunner(topology: topology, logger: Logger(label: "test"))
        var outcomes: [ConfigTestRunner.Outcome] = []
        for test in cases {
            #expect(runner.problems(of: test).isEmpty, "\(runner.problems(of: test))")
            outcomes.append(await runner.run(test))
        }
        return outcomes
    }

    @Test func aPassingChainOfTransforms() async throws {
        let outcomes = try await Self.run(
            """
              - name: reading to property post
                input: { lines: ["1524448722000,26.5"] }
                through: [readings, props, batches]
                expect:
                  count: 1
                  events:
                    - topic: /$system/abcdefgh12345678/device001/tmodel/property/post
                      json: {Property: {t: {Value: 26.5, Time: 1524448722000}}}
                  all: { contains: '"RequestID"', not_contains: error }
            """)
        #expect(outcomes.count == 1)
        #expect(outcomes[0].passed, "\(outcomes[0].report)")
        #expect(outcomes[0].report.hasPrefix("ok   p.yaml:"))
    }

    @Test func aFailureShowsTheComponentTheInputTheExpectedAndTheActualOutput() async throws {
        let outcomes = try await Self.run(
            """
              - name: wrong temperature
                input: { lines: ["1524448722000,26.5", "garbage"] }
                component: readings
                expect:
                  count: 2
                  dropped: 0
                  events:
                    - json: {temp: 26.6}
            """)
        let outcome = try #require(outcomes.first)
        #expect(!outcome.passed)
        let report = outcome.report
        #expect(report.contains("FAIL p.yaml:"))
        #expect(report.contains("component: readings"))
        #expect(report.contains(#"input:     lines ["1524448722000,26.5","garbage"]"#))
        #expect(report.contains("expected 2 events, got 1"))
        #expect(report.contains("expected 1 dropped, got") == false)
        #expect(report.contains("expected 0 dropped, got 1"))
        #expect(report.contains(#"expected event 1: json: {"temp":26.6}"#))
        #expect(report.contains(#"$.temp: expected 26.6, got 26.5"#))
        #expect(report.contains(#"[1] {"time":1524448722000,"temp":26.5}"#))
    }

    @Test func recordsCanBeFedToALaterTransform() async throws {
        let outcomes = try await Self.run(
            """
              - name: records straight into thing_model
                input: { records: [{time: 1524448722000, temp: 20}] }
                component: props
                expect:
                  events: [{json: {Property: {t: {Value: 20}}}}]
            """)
        #expect(outcomes.first?.passed == true, "\(outcomes.first?.report ?? "")")
    }

    @Test func testsThatCannotRunAreReportedWithTheirLocation() throws {
        let (topology, cases, errors) = try Self.load(
            Self.pipeline + """

                tests:
                  - name: not wired that way
                    input: { lines: ["x"] }
                    through: [props, readings]
                    expect: { count: 1 }
                  - name: a sink
                    input: { lines: ["x"] }
                    component: out
                    expect: { count: 1 }
                  - name: records into a raw reader
                    input: { records: [{a: 1}] }
                    component: readings
                    expect: { count: 1 }
                """)
        #expect(errors.isEmpty)
        let runner = ConfigTestRunner(topology: topology, logger: Logger(label: "test"))
        let problems = cases.map { runner.problems(of: $0).joined() }
        #expect(problems[0].contains("'readings' does not read from 'props'"))
        #expect(problems[1].contains("'out' is a sink; tests run transforms only"))
        #expect(problems[2].contains("'readings' reads raw events; give input.lines"))
        #expect(problems[0].hasPrefix("p.yaml:"))
    }

    @Test func malformedTestsAreLocatedErrors() throws {
        let (_, cases, errors) = try Self.load(
            Self.pipeline + """

                tests:
                  - name: typo
                    input: { lines: ["x"], recrods: [] }
                    component: readings
                    expect: { counts: 1 }
                """)
        #expect(cases.isEmpty)
        #expect(errors.contains { $0.contains("unknown key 'input.recrods'") })
        #expect(errors.contains { $0.contains("unknown key 'expect.counts'; did you mean 'expect.count'?") })
        #expect(errors.allSatisfy { $0.hasPrefix("p.yaml:") })
    }

    @Test(arguments: [
        (#"{"a":1}"#, #"{"a":1,"b":2}"#, nil),
        (#"{"a":1.0}"#, #"{"a":1}"#, nil),
        (#"{"a":{"b":[1,2]}}"#, #"{"a":{"b":[1,2],"c":3}}"#, nil),
        (#"{"a":{"b":[1,2]}}"#, #"{"a":{"b":[1]}}"#, "$.a.b: expected 2 items, got 1"),
        (#"{"a":"x"}"#, #"{"b":"x"}"#, "$.a: missing"),
        (#"{"a":[{"b":1}]}"#, #"{"a":[{"b":2,"c":1}]}"#, "$.a[0].b: expected 1, got 2"),
    ] as [(String, String, String?)])
    func jsonSubsetMatching(_ expected: String, _ actual: String, _ problem: String?) throws {
        let result = JSONMatch.mismatch(
            expected: try JSONReader.parse(Array(expected.utf8)), actual: try JSONReader.parse(Array(actual.utf8)))
        #expect(result == problem)
    }
}
