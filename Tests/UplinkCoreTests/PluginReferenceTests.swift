import Testing
import UplinkCore

/// The top-level `plugins:` list: read before the topology is built, paths resolved against the file.
@Suite struct PluginReferenceTests {
    func load(_ yaml: String, file: String) -> (PipelineConfig, [String]) {
        let diagnostics = DiagnosticCollector()
        var config = PipelineConfig(files: [file])
        ConfigLoader(environment: ["LIB": "/opt/lib"]).load(
            bytes: Array(yaml.utf8), file: file, into: &config, diagnostics: diagnostics)
        return (config, diagnostics.diagnostics.map(\.description))
    }

    @Test func pathsAreResolvedAgainstTheConfigFilesDirectory() {
        let (config, errors) = load(
            "plugins: [./libscale.so, sub/libx.so, /abs/liby.so, \"${LIB}/libz.so\"]\n",
            file: "/etc/uplink/pipeline.yaml")
        #expect(errors.isEmpty)
        #expect(
            config.plugins.map(\.path) == [
                "/etc/uplink/libscale.so", "/etc/uplink/sub/libx.so", "/abs/liby.so", "/opt/lib/libz.so",
            ])
        #expect(config.plugins.map(\.written) == ["./libscale.so", "sub/libx.so", "/abs/liby.so", "/opt/lib/libz.so"])
        #expect("\(config.plugins[1].mark)" == "1:26")
        let (local, _) = load("plugins: [./libscale.so]\n", file: "pipeline.yaml")
        #expect(local.plugins.map(\.path) == ["./libscale.so"])
    }

    @Test func aPluginsEntryThatIsNotAListOfPathsIsAnError() {
        #expect(
            load("plugins: ./libscale.so\n", file: "p.yaml").1 == [
                "p.yaml:1:10: error: 'plugins' must be a list of shared-object paths, for example plugins: [./libscale.so]"
            ])
        #expect(
            load("plugins: [{a: 1}]\n", file: "p.yaml").1.contains(
                "p.yaml:1:11: error: items of 'plugins' must be paths to shared objects"))
    }
}
