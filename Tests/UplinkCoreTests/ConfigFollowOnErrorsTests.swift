import Testing
import UplinkCore
import UplinkPlugins

/// One mistake, one error: what follows from an error already reported is not reported again, and hints point at
/// what was meant.
@Suite struct ConfigFollowOnErrorsTests {
    @Test func aSyntaxErrorIsTheOnlyError() {
        let (_, diagnostics) = validate("sources:\n  a: {type: stdin\nsinks: [\n")
        let found = errors(diagnostics)
        #expect(found.count == 1, "\(found)")
        #expect(!found.contains { $0.contains("no components") })
    }

    /// The other file's components are unknown: its inputs, sources and sinks are not reported missing.
    @Test func aFileThatDoesNotParseHidesNoErrorOfTheOthersAndAddsNone() {
        let diagnostics = DiagnosticCollector()
        var config = PipelineConfig(files: ["a.yaml", "b.yaml"])
        let loader = ConfigLoader(environment: [:])
        loader.load(bytes: Array("sources:\n  in: {type: stdin\n".utf8), file: "a.yaml", into: &config, diagnostics: diagnostics)
        loader.load(
            bytes: Array("sinks:\n  out: { type: stdout, inputs: [in], bogus: 1 }\n".utf8), file: "b.yaml", into: &config,
            diagnostics: diagnostics)
        _ = TopologyBuilder(registry: Builtins.registry).build(config, diagnostics: diagnostics)
        let found = errors(diagnostics.diagnostics)
        #expect(found.count == 2, "\(found)")
        #expect(found.contains { $0.hasPrefix("a.yaml:") }, "\(found)")
        #expect(found.contains { $0.hasPrefix("b.yaml:2:38: error: unknown option 'bogus'") }, "\(found)")
    }

    /// `sorces:` got its "did you mean", then "the configuration has no sources" and "input 'in' of transform
    /// 'wrap' does not exist" for the components written under it.
    @Test func aMisspeltSectionIsTheOnlyError() {
        let yaml = """
            sorces:
              in: { type: stdin }
            transforms:
              wrap: { type: json, inputs: [in] }
            sinks:
              out: { type: stdout, inputs: [wrap] }
            """
        let found = errors(validate(yaml).1)
        #expect(found == ["test.yaml:1:1: error: unknown option 'sorces'; did you mean 'sources'?"], "\(found)")
    }

    /// `${DEVICE_SN}` unset: one error where it is written, none about the default topic built from it.
    @Test func aMissingVariableIsReportedOnceNotInOptionsBuiltFromIt() {
        let yaml = embeddedSinkPipeline(
            "product_sn: abcdefgh12345678", "device_sn: ${DEVICE_SN}", "device_secret: s3cr3tKey0000000")
        let found = errors(validate(yaml).1)
        #expect(found == ["test.yaml:11:16: error: environment variable DEVICE_SN is not set (use ${DEVICE_SN:-default} for a default)"])
    }

    /// A serial number a topic may not hold: one error where it is written, none about the default topic built
    /// from it (never written); a topic written with its own problem is still reported.
    @Test func aRefusedSerialNumberIsNotReportedAgainInTheTopicBuiltFromIt() {
        func sink(_ extra: String...) -> String {
            embeddedSinkPipeline(
                ["product_sn: abcdefgh12345678", #"device_sn: "dev 1""#, "device_secret: s3cr3tKey0000000"] + extra)
        }
        #expect(errors(validate(sink()).1) == [
            "test.yaml:11:16: error: option 'device_sn' may only use letters, digits and - _ @ : (it is part of every topic), got 'dev 1'"
        ])
        // A thing_model and a shadow that take the sink's serial numbers do not report them again.
        let inherited = errors(validate(sink().replacing(
            "  wrap: { type: json, inputs: [in] }",
            with: "  wrap: { type: json, inputs: [in] }\n  tm: { type: thing_model, inputs: [wrap] }\n  sh: { type: shadow, inputs: [wrap] }"
        ).replacing("inputs: [wrap]\n    endpoint", with: "inputs: [tm, sh]\n    endpoint")).1)
        #expect(inherited == [
            "test.yaml:13:16: error: option 'device_sn' may only use letters, digits and - _ @ : (it is part of every topic), got 'dev 1'"
        ])
        let badTopic = errors(validate(sink(#"topic: "/{product_sn}/{device_sn}/up load""#)).1)
        #expect(badTopic.count == 2, "\(badTopic)")
        #expect(badTopic.contains { $0.hasPrefix("test.yaml:13:12: error: option 'topic' cannot be published") }, "\(badTopic)")
    }

    @Test func aMissingVariableInATypeOrAListIsReportedOnce() {
        let yaml = """
            sources:
              in: { type: "${KIND}" }
              app: { type: file, include: ["${APP_LOG}"] }
            transforms:
              wrap: { type: json, inputs: [app] }
            sinks:
              out: { type: stdout, inputs: [wrap] }
            """
        let found = errors(validate(yaml).1)
        #expect(found.count == 2, "\(found)")
        #expect(found.allSatisfy { $0.contains("environment variable") }, "\(found)")
    }

    @Test func aMissingVariableInInputsIsReportedOnce() {
        let yaml = """
            sources:
              in: { type: stdin }
            transforms:
              wrap: { type: json, inputs: [in] }
            sinks:
              out: { type: stdout, inputs: ["${UPSTREAM}"] }
            """
        let found = errors(validate(yaml).1)
        #expect(found == ["test.yaml:6:33: error: environment variable UPSTREAM is not set (use ${UPSTREAM:-default} for a default)"])
    }

    @Test func componentsDownstreamOfACycleAreNotPartOfIt() {
        let yaml = """
            sources:
              in: { type: stdin }
            transforms:
              a: { type: json, inputs: [in, c] }
              b: { type: json, inputs: [a] }
              c: { type: json, inputs: [b] }
              d: { type: json, inputs: [c] }
            sinks:
              out: { type: stdout, inputs: [d] }
            """
        let found = errors(validate(yaml).1)
        #expect(found.count == 3, "\(found)")
        #expect(found.allSatisfy { $0.contains("is part of a cycle: ") })
        for id in ["a", "b", "c"] { #expect(found.contains { $0.contains("'\(id)' is part of a cycle") }) }
        #expect(!found.contains { $0.contains("'d'") || $0.contains("'out'") })
    }

    @Test func twoCyclesAreEachDescribed() {
        let yaml = """
            sources:
              in: { type: stdin }
            transforms:
              a: { type: json, inputs: [in, b] }
              b: { type: json, inputs: [a] }
              x: { type: json, inputs: [in, y] }
              y: { type: json, inputs: [x] }
            sinks:
              out: { type: stdout, inputs: [b, y] }
            """
        let found = errors(validate(yaml).1)
        #expect(found.count == 4, "\(found)")
        #expect(found.filter { $0.contains("'a' is part of a cycle") || $0.contains("'b' is part of a cycle") }.allSatisfy { !$0.contains("x") })
    }

    @Test(arguments: [("buad", "baud"), ("valdiate", "validate"), ("sreial", "serial"), ("stdn", "stdin")])
    func swappedLettersAreOneEditAway(_ written: String, _ meant: String) {
        #expect(ValueParsing.suggestion(for: written, among: ["baud", "validate", "serial", "stdin", "data_bits"]) == meant)
    }

    @Test func aMisspeltOptionGetsTheOptionItMeant() {
        let yaml = """
            sources:
              s: { type: serial, device: /dev/null, buad: 9600 }
            sinks:
              out: { type: stdout, inputs: [s] }
            """
        #expect(errors(validate(yaml).1) == ["test.yaml:2:41: error: unknown option 'buad'; did you mean 'baud'?"])
    }

    /// `dead_letter_max_bytes` (transforms) is now `dead_letter_max_size`, as on the sink: the old name still
    /// works, with a warning.
    @Test func aFormerOptionNameIsReadWithAWarning() throws {
        func config(_ options: String) -> String {
            """
            sources:
              in: { type: stdin }
            transforms:
              t: { type: json, inputs: [in], mode: json, on_error: dead_letter, \(options) }
            sinks:
              out: { type: stdout, inputs: [t] }
            """
        }
        let (topology, diagnostics) = validate(config("dead_letter_max_bytes: 2KiB"))
        #expect(errors(diagnostics).isEmpty)
        #expect(topology != nil)
        #expect(diagnostics.filter { $0.severity == .warning }.map(\.description) == [
            "test.yaml:4:69: warning: option 'dead_letter_max_bytes' is deprecated: it is now called 'dead_letter_max_size'"
        ])
        let tooSmall = errors(validate(config("dead_letter_max_bytes: 10")).1)
        #expect(tooSmall == ["test.yaml:4:92: error: 'dead_letter_max_size' must be at least 1KiB"])
        let both = errors(validate(config("dead_letter_max_size: 2KiB, dead_letter_max_bytes: 4KiB")).1)
        #expect(both.count == 1 && both[0].contains("is the former name of 'dead_letter_max_size', which is set too"), "\(both)")
    }
}
