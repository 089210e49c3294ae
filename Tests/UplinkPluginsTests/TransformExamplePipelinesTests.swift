import Foundation
import Testing
import UplinkCore
import UplinkPlugins

/// The example pipelines that use the transforms validate as they are shipped (their variables have defaults).
@Suite struct TransformExamplePipelinesTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test(arguments: [
        "csv-thing-model-stdout.yaml", "regex-thing-model-events-stdout.yaml", "json-shadow-stdout.yaml",
        "kv-batch-ndjson-stdout.yaml",
    ])
    func examplePipelineIsValid(_ name: String) throws {
        let path = Self.repository.appendingPathComponent("pipelines").appendingPathComponent(name).path
        let diagnostics = DiagnosticCollector()
        let config = ConfigLoader(environment: [:]).load(paths: [path], diagnostics: diagnostics)
        let topology = TopologyBuilder(registry: Builtins.registry).build(config, diagnostics: diagnostics)
        #expect(diagnostics.diagnostics.isEmpty, "\(diagnostics.diagnostics)")
        #expect(topology != nil)
    }
}
