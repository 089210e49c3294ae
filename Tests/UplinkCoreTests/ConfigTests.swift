#if canImport(Glibc)
import Glibc
#endif
import Testing
import UplinkCore
import UplinkPlugins

/// Loads a config from text and builds its topology, returning the diagnostics.
func validate(_ yaml: String, environment: [String: String] = [:], checksPaths: Bool = true) -> (Topology?, [ConfigDiagnostic]) {
    let diagnostics = DiagnosticCollector()
    var config = PipelineConfig(files: ["test.yaml"])
    ConfigLoader(environment: environment).load(bytes: Array(yaml.utf8), file: "test.yaml", into: &config, diagnostics: diagnostics)
    let topology = TopologyBuilder(registry: Builtins.registry, checksPaths: checksPaths).build(config, diagnostics: diagnostics)
    return (diagnostics.hasErrors ? nil : topology, diagnostics.diagnostics)
}

func errors(_ diagnostics: [ConfigDiagnostic]) -> [String] {
    diagnostics.filter { $0.severity == .error }.map(\.description)
}

/// stdin -> json -> an `iotcore_http` sink `cloud` on the embedded emulator, whose further options are `options`,
/// one line each from line 11 on (column 5): the pipeline the sink's configuration tests vary.
func embeddedSinkPipeline(_ options: String...) -> String {
    embeddedSinkPipeline(options)
}

func embeddedSinkPipeline(_ options: [String]) -> String {
    """
    sources:
      in: { type: stdin }
    transforms:
      wrap: { type: json, inputs: [in] }
    sinks:
      cloud:
        type: iotcore_http
        inputs: [wrap]
        endpoint: embedded

    """ + options.map { "    " + $0 }.joined(separator: "\n")
}

@Suite struct ConfigTests {
    @Test func validPipelineBuilds() throws {
        let (topology, diagnostics) = validate(
            """
            sources:
              probe: { type: stdin }
            transforms:
              wrap: { type: json, inputs: [probe] }
            sinks:
              out: { type: stdout, inputs: [wrap] }
            """)
        #expect(errors(diagnostics).isEmpty)
        let built = try #require(topology)
        #expect(built.nodes.map(\.id) == ["probe", "wrap", "out"])
        #expect(built.node("wrap")?.inputKind == .raw)
        #expect(built.node("wrap")?.outputKind == .record)
        #expect(built.node("out")?.inputKind == .record)
    }

    @Test func aMemoryBufferMayAlsoBeBoundedInBytes() throws {
        func config(_ buffer: String) -> String {
            """
            sources:
              probe: { type: stdin }
            sinks:
              out: { type: stdout, inputs: [probe], buffer: \(buffer) }
            """
        }
        let (topology, diagnostics) = validate(config("{ max_events: 100, max_size: 4MiB }"))
        #expect(errors(diagnostics).isEmpty)
        #expect(topology?.node("out")?.buffer.memoryMaxBytes == 4 << 20)
        #expect(topology?.node("out")?.buffer.maxEvents == 100)
        #expect(validate(config("{ max_events: 100 }")).0?.node("out")?.buffer.memoryMaxBytes == nil)
        let tooSmall = errors(validate(config("{ max_size: 1KiB }")).1)
        #expect(tooSmall.contains { $0.contains("test.yaml:4:") && $0.contains("at least 64KiB") }, "\(tooSmall)")
        let fsync = errors(validate(config("{ fsync_interval: 1s }")).1)
        #expect(fsync.contains { $0.contains("'buffer.fsync_interval' applies to type: disk") }, "\(fsync)")
    }

    @Test func pluginsDeclareTheirInputBufferDefaultAndTheConfigStillWins() throws {
        let yaml = """
            sources:
              probe: { type: stdin }
            transforms:
              wrap: { type: json, inputs: [probe] }
              batch: { type: batch, inputs: [wrap] }
            sinks:
              cloud: { type: iotcore_http, inputs: [batch], endpoint: embedded, product_sn: abcdefgh12345678, device_sn: device001, device_secret: s3cr3tKey0000000 }
              wide: { type: iotcore_http, inputs: [batch], endpoint: embedded, product_sn: abcdefgh12345678, device_sn: device001, device_secret: s3cr3tKey0000000, buffer: { max_events: 64 } }
            """
        let diagnostics = DiagnosticCollector()
        var config = PipelineConfig(files: ["test.yaml"])
        ConfigLoader(environment: [:], defaultBufferEvents: Builtins.registry.defaultBufferEvents)
            .load(bytes: Array(yaml.utf8), file: "test.yaml", into: &config, diagnostics: diagnostics)
        let topology = try #require(TopologyBuilder(registry: Builtins.registry).build(config, diagnostics: diagnostics))
        #expect(errors(diagnostics.diagnostics).isEmpty)
        // 128 KB batches: the sink's channel holds 16 of them, not 4096 (512 MB).
        #expect(topology.node("cloud")?.buffer.maxEvents == 16)
        #expect(topology.node("wide")?.buffer.maxEvents == 64)
        #expect(topology.node("batch")?.buffer.maxEvents == 1024)
        #expect(topology.node("wrap")?.buffer.maxEvents == 4096)
        #expect(Builtins.registry.defaultBufferEvents[.sink]?["iotcore_http"] == 16)
    }

    @Test func unknownTypeSuggestsTheClosest() {
        let (_, diagnostics) = validate("sources:\n  probe: { type: stdn }\nsinks:\n  out: { type: stdout, inputs: [probe] }\n")
        #expect(errors(diagnostics) == ["test.yaml:2:18: error: unknown source type 'stdn'; did you mean 'stdin'?"])
    }

    @Test func sinkTypeUnderSourcesSaysWhereItBelongs() {
        let (_, diagnostics) = validate("sources:\n  probe: { type: stdout }\nsinks:\n  out: { type: stdout, inputs: [probe] }\n")
        #expect(errors(diagnostics).first?.contains("'stdout' is a sink: move it under 'sinks'") == true)
    }

    @Test func unknownKeyIsAnErrorWithAHint() {
        let (_, diagnostics) = validate(
            "sources:\n  probe: { type: stdin, max_line_byte: 10 }\nsinks:\n  out: { type: stdout, inputs: [probe] }\n")
        #expect(errors(diagnostics) == ["test.yaml:2:25: error: unknown option 'max_line_byte'; did you mean 'max_line_bytes'?"])
    }

    @Test func unknownTopLevelKeyIsAnError() {
        let (_, diagnostics) = validate("sink:\n  out: { type: stdout }\n")
        #expect(errors(diagnostics).contains { $0.contains("unknown option 'sink'; did you mean 'sinks'?") })
    }

    @Test func wrongValueTypesAreReported() {
        let (_, diagnostics) = validate(
            """
            sources:
              probe: { type: stdin, max_line_bytes: [1, 2] }
            transforms:
              wrap: { type: json, inputs: probe }
            sinks:
              out: { type: file, inputs: [probe], path: /tmp/x, fsync_interval: soon }
            """)
        let found = errors(diagnostics)
        #expect(found.contains { $0.hasPrefix("test.yaml:2:41:") && $0.contains("must be a size, not a list") })
        #expect(found.contains { $0.hasPrefix("test.yaml:4:31:") && $0.contains("'inputs' must be a list, for example inputs: [probe]") })
        #expect(found.contains { $0.hasPrefix("test.yaml:6:69:") && $0.contains("must be a duration like 500ms, 2s, 1m or 1h, got 'soon'") })
    }

    @Test func missingRequiredKeyIsReported() {
        let (_, diagnostics) = validate("sources:\n  probe: { type: stdin }\nsinks:\n  out: { type: file, inputs: [probe] }\n")
        #expect(errors(diagnostics).contains { $0.contains("missing required option 'path'") && $0.hasPrefix("test.yaml:4:8:") })
    }

    @Test func badSizeIsReported() {
        let (_, diagnostics) = validate(
            "sources:\n  probe: { type: stdin, max_line_bytes: 12 parsecs }\nsinks:\n  out: { type: stdout, inputs: [probe] }\n")
        #expect(errors(diagnostics).contains { $0.contains("must be a size like 131072, 128KiB or 1MB, got '12 parsecs'") })
    }

    @Test func environmentInterpolationAndErrors() throws {
        let yaml = "sources:\n  probe: { type: stdin }\nsinks:\n  out: { type: file, inputs: [probe], path: \"${OUT:?set OUT}\" }\n"
        let (ok, okDiagnostics) = validate(yaml, environment: ["OUT": "/tmp/out.log"])
        #expect(errors(okDiagnostics).isEmpty)
        #expect(ok != nil)
        let (_, diagnostics) = validate(yaml)
        #expect(errors(diagnostics) == ["test.yaml:4:45: error: environment variable OUT is not set: set OUT"])
    }

    @Test func durationsAndSizes() {
        #expect(ValueParsing.duration("500ms") == .milliseconds(500))
        #expect(ValueParsing.duration("2s") == .seconds(2))
        #expect(ValueParsing.duration("1m") == .seconds(60))
        #expect(ValueParsing.duration("1.5s") == .milliseconds(1500))
        #expect(ValueParsing.duration("10") == nil)
        #expect(ValueParsing.duration("-1s") == nil)
        #expect(ValueParsing.size("128KiB") == 131072)
        #expect(ValueParsing.size("1MB") == 1_000_000)
        #expect(ValueParsing.size("131072") == 131072)
        #expect(ValueParsing.size("1.5KiB") == 1536)
        #expect(ValueParsing.size("lots") == nil)
    }
}

@Suite struct TopologyTests {
    @Test func cycleIsRejectedWithItsPath() {
        let (_, diagnostics) = validate(
            """
            sources:
              probe: { type: stdin }
            transforms:
              a: { type: json, inputs: [probe, b] }
              b: { type: json, inputs: [a] }
            sinks:
              out: { type: stdout, inputs: [b] }
            """)
        #expect(errors(diagnostics).contains { $0.contains("'a' is part of a cycle: a -> b -> a") || $0.contains("'a' is part of a cycle: b -> a -> b") })
    }

    @Test func danglingInputIsRejected() {
        let (_, diagnostics) = validate("sources:\n  probe: { type: stdin }\nsinks:\n  out: { type: stdout, inputs: [prob] }\n")
        #expect(errors(diagnostics) == ["test.yaml:4:33: error: input 'prob' of sink 'out' does not exist; did you mean 'probe'?"])
    }

    @Test func typeMismatchNamesBothComponentsAndLocations() {
        let (_, diagnostics) = validate(
            """
            sources:
              probe: { type: stdin }
            transforms:
              first: { type: json, inputs: [probe] }
              second: { type: json, inputs: [first] }
            sinks:
              out: { type: stdout, inputs: [second] }
            """)
        let found = errors(diagnostics)
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("test.yaml:5:3: error: type mismatch: 'first' (json, test.yaml:4:3) produces record") == true)
        #expect(found.first?.contains("but 'second' (json) accepts raw") == true)
    }

    @Test func mixedInputKindsAreRejected() {
        let (_, diagnostics) = validate(
            """
            sources:
              probe: { type: stdin }
            transforms:
              wrap: { type: json, inputs: [probe] }
            sinks:
              out: { type: stdout, inputs: [probe, wrap] }
            """)
        #expect(errors(diagnostics).contains { $0.contains("inputs of 'out' produce different kinds of events") })
    }

    @Test func unusedSourceIsAWarningNotAnError() {
        let (topology, diagnostics) = validate(
            "sources:\n  probe: { type: stdin }\n  spare: { type: stdin }\nsinks:\n  out: { type: stdout, inputs: [probe] }\n")
        #expect(topology != nil)
        #expect(diagnostics.contains { $0.severity == .warning && $0.message.contains("'spare' is not an input of any component") })
    }

    @Test func fanInAndFanOutBuild() throws {
        let (topology, diagnostics) = validate(
            """
            sources:
              a: { type: stdin }
              b: { type: stdin }
            transforms:
              wrap: { type: json, inputs: [a, b] }
            sinks:
              one: { type: stdout, inputs: [wrap] }
              two: { type: file, inputs: [wrap], path: /dev/null }
            """)
        #expect(errors(diagnostics).isEmpty)
        let built = try #require(topology)
        #expect(Set(built.consumers(of: "wrap")) == ["one", "two"])
        #expect(built.dot.contains("\"wrap\" -> \"one\" [label=\"record\"]"))
        #expect(built.mermaid.contains("-->|record|"))
    }

    @Test func duplicateIdsAcrossSectionsAreRejected() {
        let (_, diagnostics) = validate("sources:\n  x: { type: stdin }\nsinks:\n  x: { type: stdout, inputs: [x] }\n")
        #expect(errors(diagnostics).contains { $0.contains("component id 'x' is already used at test.yaml:2:3") })
    }
}

@Suite struct SecretFileTests {
    private func sink(_ secretLine: String) -> String {
        embeddedSinkPipeline("product_sn: abcdefgh12345678", "device_sn: device001", secretLine)
    }

    @Test func secretIsReadFromAFileWithoutItsNewline() throws {
        let path = "/tmp/uplink-secret-\(UInt64.random(in: 0...UInt64.max))"
        try FileIO.writeFileAtomically(path, Array("s3cr3tKey0000000\n".utf8))
        let (topology, diagnostics) = validate(sink("device_secret_file: \(path)"))
        #expect(errors(diagnostics).isEmpty)
        #expect(topology != nil)
    }

    @Test func unreadableSecretFileIsALocatedError() {
        let (_, diagnostics) = validate(sink("device_secret_file: /nonexistent/secret"))
        #expect(errors(diagnostics).contains { $0.hasPrefix("test.yaml:12:") && $0.contains("cannot read 'device_secret_file' /nonexistent/secret") })
        // The one cause, without a follow-on "the device secret is empty" for the file nobody could read.
        #expect(!errors(diagnostics).contains { $0.contains("empty") }, "\(errors(diagnostics))")
    }

    /// `uplink test` and `graph` check the configuration without this machine's files: a pipeline's tests run on
    /// a laptop or in CI where the board's secret and CA bundle do not exist.
    @Test func pipelineTestsDoNotOpenTheBoardsSecretOrCAFile() {
        let options = "device_secret_file: /nonexistent/secret\n    ca_file: /nonexistent/ca.pem"
        let (topology, diagnostics) = validate(sink(options), checksPaths: false)
        #expect(errors(diagnostics).isEmpty, "\(errors(diagnostics))")
        #expect(topology != nil)
        let (_, onTheBoard) = validate(sink(options))
        #expect(errors(onTheBoard).contains { $0.contains("cannot read 'device_secret_file'") })
        #expect(errors(onTheBoard).contains { $0.contains("ca_file") })
    }

    @Test func emptySecretFileIsAnError() throws {
        let path = "/tmp/uplink-secret-\(UInt64.random(in: 0...UInt64.max))"
        try FileIO.writeFileAtomically(path, Array("\n".utf8))
        defer { unlink(path) }
        let (_, diagnostics) = validate(sink("device_secret_file: \(path)"))
        #expect(errors(diagnostics).contains { $0.contains("the device secret is empty") })
    }

    @Test func missingSecretNamesBothWays() {
        let (_, diagnostics) = validate(sink(""))
        #expect(errors(diagnostics).contains { $0.contains("missing required option 'device_secret' (or 'device_secret_file')") })
    }

    @Test func secretNeverAppearsInDiagnostics() {
        let (_, diagnostics) = validate(sink("device_secret: s3cr3tKey0000000\n    secret_typo: 1"))
        #expect(!errors(diagnostics).isEmpty)
        #expect(!diagnostics.contains { $0.description.contains("s3cr3tKey0000000") })
    }
}
