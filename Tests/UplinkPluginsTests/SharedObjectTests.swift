import Foundation
import Logging
import Testing
import UplinkCore
import UplinkPlugins

/// Shared-object plugins built with the system C compiler in the test, loaded with dlopen, and run in
/// pipelines; and every way loading can fail, each naming the file.
@Suite(.timeLimit(.minutes(2))) struct SharedObjectTests {
    static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    /// Compiles C source into `lib<name>.so` in the fixture's directory and returns its path.
    static func compile(_ source: String, name: String, in fixture: ProcessFixture) throws -> String {
        let sourcePath = fixture.path(name + ".c")
        try source.write(toFile: sourcePath, atomically: true, encoding: .utf8)
        return try compile(file: sourcePath, name: name, in: fixture)
    }

    static func compile(file: String, name: String, in fixture: ProcessFixture) throws -> String {
        let library = fixture.path("lib\(name).so")
        let compiler = Process()
        compiler.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        compiler.arguments = [
            "cc", "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-I",
            repository.appendingPathComponent("include").path,
            "-o", library, file,
        ]
        let errors = Pipe()
        compiler.standardError = errors
        try compiler.run()
        compiler.waitUntilExit()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        try #require(compiler.terminationStatus == 0, "cc failed: \(message)")
        return library
    }

    /// A source that emits `count` records {"i": n} in polls of up to 7, then says it is done; and a sink that
    /// asks for one retry, fails batches holding `fail_on`, and writes the sum of `j` at the end.
    static let ticker = """
        #define _POSIX_C_SOURCE 200809L
        #include <stdio.h>
        #include <stdlib.h>
        #include "uplink_plugin.h"

        typedef struct { long next, count; } ticker;

        #define UNUSED __attribute__((unused))
        static UNUSED void *create(const uplink_config *config, char *error, size_t size) {
            (void)error; (void)size;
            ticker *t = calloc(1, sizeof *t);
            t->count = atol(uplink_config_get(config, "count"));
            return t;
        }
        static int32_t poll_(void *instance, const uplink_emitter *emitter, char *error, size_t size) {
            (void)error; (void)size;
            ticker *t = instance;
            if (t->next >= t->count) return UPLINK_DONE;
            for (int k = 0; k < 7 && t->next < t->count; k++, t->next++) {
                uplink_field field = { .name = "i", .type = UPLINK_VALUE_INT, .integer = t->next };
                uplink_field label = { .name = "label", .type = UPLINK_VALUE_STRING, .string = "tick", .string_length = 4 };
                uplink_field fields[] = { field, label };
                uplink_event event = { .kind = UPLINK_KIND_RECORD, .fields = fields, .field_count = 2 };
                emitter->emit(emitter->context, &event);
            }
            return UPLINK_OK;
        }
        static void destroy(void *instance) { free(instance); }
        static const uplink_option options[] = { { "count", UPLINK_OPTION_INT, 0, "10", "records to emit" } };
        static const uplink_plugin plugin = {
            .abi_version = UPLINK_PLUGIN_ABI_VERSION, .role = UPLINK_ROLE_SOURCE, .type = "c_ticker",
            .summary = "test source", .output = UPLINK_KIND_RECORD, .options = options, .option_count = 1,
            .create = create, .poll = poll_, .destroy = destroy,
        };
        const uplink_plugin *uplink_plugin_register(uint32_t v, char *e, size_t s) { (void)v; (void)e; (void)s; return &plugin; }
        """

    static let summer = """
        #define _POSIX_C_SOURCE 200809L
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include "uplink_plugin.h"

        typedef struct { char *path; long fail_on; double sum; long seen; int retried; } summer;

        #define UNUSED __attribute__((unused))
        static UNUSED void *create(const uplink_config *config, char *error, size_t size) {
            const char *path = uplink_config_get(config, "path");
            if (strcmp(path, "refuse") == 0) { snprintf(error, size, "device busy"); return NULL; }
            summer *s = calloc(1, sizeof *s);
            s->path = strdup(path);
            s->fail_on = atol(uplink_config_get(config, "fail_on"));
            return s;
        }
        static int32_t process(void *instance, const uplink_event *events, size_t count, const uplink_emitter *emitter,
                               char *error, size_t size) {
            (void)emitter;
            summer *s = instance;
            if (!s->retried) { s->retried = 1; snprintf(error, size, "warming up"); return UPLINK_RETRY; }
            double sum = 0;
            for (size_t i = 0; i < count; i++) {
                for (size_t f = 0; f < events[i].field_count; f++) {
                    const uplink_field *field = &events[i].fields[f];
                    if ((strcmp(field->name, "i") == 0 || strcmp(field->name, "n") == 0) && field->integer == s->fail_on) {
                        snprintf(error, size, "%ld is refused", s->fail_on);
                        return UPLINK_ERROR;
                    }
                    if (strcmp(field->name, "j") == 0) sum += field->number;
                }
            }
            s->sum += sum;
            s->seen += (long)count;
            return UPLINK_OK;
        }
        static int32_t flush(void *instance, const uplink_emitter *emitter, char *error, size_t size) {
            (void)emitter; (void)error; (void)size;
            summer *s = instance;
            FILE *out = fopen(s->path, "w");
            fprintf(out, "%ld %.1f", s->seen, s->sum);
            fclose(out);
            return UPLINK_OK;
        }
        static void destroy(void *instance) { summer *s = instance; free(s->path); free(s); }
        static const uplink_option options[] = {
            { "path", UPLINK_OPTION_STRING, 1, NULL, "where to write the sum" },
            { "fail_on", UPLINK_OPTION_INT, 0, "-1", "fail a batch holding this i" },
        };
        static const uplink_plugin plugin = {
            .abi_version = UPLINK_PLUGIN_ABI_VERSION, .role = UPLINK_ROLE_SINK, .type = "c_summer",
            .summary = "test sink", .accepts = UPLINK_KIND_MASK(UPLINK_KIND_RECORD), .options = options,
            .option_count = 2, .create = create, .process = process, .flush = flush, .destroy = destroy,
        };
        const uplink_plugin *uplink_plugin_register(uint32_t v, char *e, size_t s) { (void)v; (void)e; (void)s; return &plugin; }
        """

    /// Builds the fixture's registry plus every library in `libraries`, through a config's `plugins:` list.
    static func pipeline(_ yaml: String, fixture: ProcessFixture) throws -> Pipeline {
        let diagnostics = DiagnosticCollector()
        let file = fixture.path("pipeline.yaml")
        var config = PipelineConfig(files: [file])
        ConfigLoader(environment: [:]).load(
            bytes: Array(yaml.utf8), file: file, into: &config, diagnostics: diagnostics)
        var registry = fixture.registry
        SharedObjectPlugins.register(config.plugins, into: &registry, diagnostics: diagnostics)
        guard let topology = TopologyBuilder(registry: registry).build(config, diagnostics: diagnostics) else {
            throw ConfigError(diagnostics.diagnostics)
        }
        return try Pipeline(topology: topology, logger: .init(label: "test"))
    }

    @Test func theCExampleScalesRecordsInAPipeline() async throws {
        let fixture = try ProcessFixture()
        let source = Self.repository.appendingPathComponent("plugins-examples/c-shared-object/scale.c").path
        _ = try Self.compile(file: source, name: "scale", in: fixture)
        let pipeline = try Self.pipeline(
            """
            plugins: [./libscale.so]
            sources:
              numbers: { type: counter, count: 300, chunk: 40 }
            transforms:
              scaled: { type: scale, inputs: [numbers], field: n, factor: 1.8, offset: 32, target: f }
            sinks:
              out: { type: collect, inputs: [scaled] }
            """, fixture: fixture)
        try await fixture.run(pipeline)
        let lines = fixture.collected.all
        #expect(lines.count == 300)
        #expect(lines.first == #"{"n":0,"f":32.0}"#)
        #expect(lines[100] == #"{"n":100,"f":212.0}"#)
        #expect(fixture.delivered == 300)
        let descriptor = try SharedObjectPlugins.load(path: fixture.path("libscale.so"))
        #expect(descriptor.origin.hasPrefix("shared object /") && descriptor.origin.hasSuffix("/libscale.so"))
        #expect(descriptor.options.map(\.name) == ["field", "factor", "offset", "target"])
        #expect(descriptor.options.first?.required == true)
    }

    @Test func aCSourceAndACSinkWithRetryErrorAndFlush() async throws {
        let fixture = try ProcessFixture()
        _ = try Self.compile(Self.ticker, name: "ticker", in: fixture)
        _ = try Self.compile(Self.summer, name: "summer", in: fixture)
        let scale = Self.repository.appendingPathComponent("plugins-examples/c-shared-object/scale.c").path
        _ = try Self.compile(file: scale, name: "scale", in: fixture)
        let pipeline = try Self.pipeline(
            """
            plugins: [libticker.so, ./libsummer.so, \(fixture.path("libscale.so"))]
            sources:
              ticks: { type: c_ticker, count: 100 }
            transforms:
              doubled: { type: scale, inputs: [ticks], field: i, factor: 2, target: j }
            sinks:
              sum: { type: c_summer, inputs: [doubled], path: \(fixture.path("sum.txt")) }
            """, fixture: fixture)
        try await fixture.run(pipeline)
        // 0 + 2 + ... + 198, every record once, after one retry of the first batch.
        #expect(fixture.read("sum.txt") == "100 9900.0")
        #expect(pipeline.metrics["ticks"]?.snapshot.sentEvents == 100)

        // A failed batch fails the acknowledgements of its events, and the others are delivered.
        let failing = try ProcessFixture()
        _ = try Self.compile(Self.summer, name: "summer", in: failing)
        let second = try Self.pipeline(
            """
            plugins: [./libsummer.so]
            sources:
              numbers: { type: counter, count: 30, chunk: 10 }
            sinks:
              sum: { type: c_summer, inputs: [numbers], path: \(failing.path("sum.txt")), fail_on: 15 }
            """, fixture: failing)
        try await failing.run(second)
        #expect(failing.delivered == 20)
        #expect(failing.failed == 10)
    }

    @Test func aCreateThatFailsNamesTheFileAndTheComponent() async throws {
        let fixture = try ProcessFixture()
        _ = try Self.compile(Self.summer, name: "summer", in: fixture)
        let pipeline = try Self.pipeline(
            """
            plugins: [./libsummer.so]
            sources:
              numbers: { type: counter, count: 3 }
            sinks:
              sum: { type: c_summer, inputs: [numbers], path: refuse }
            """, fixture: fixture)
        await #expect {
            try await fixture.run(pipeline)
        } throws: { error in
            String(describing: error).contains(
                "component 'sum' failed: plugin \(fixture.path("libsummer.so")) (c_summer): create failed for component 'sum': device busy"
            )
        }
    }

    struct BrokenLibrary: Sendable, CustomTestStringConvertible {
        var name: String
        var source: String
        var expected: String
        var testDescription: String { name }
    }

    static let descriptorTail = """
        .role = UPLINK_ROLE_TRANSFORM, .type = "broken", .accepts = UPLINK_KIND_MASK(UPLINK_KIND_RECORD),
        .output = UPLINK_KIND_RECORD, .create = create, .process = process, .destroy = destroy };
        """

    static let stubs = """
        #include "uplink_plugin.h"
        #define UNUSED __attribute__((unused))
        static UNUSED void *create(const uplink_config *c, char *e, size_t s) { (void)c; (void)e; (void)s; return (void *)1; }
        static UNUSED int32_t process(void *i, const uplink_event *ev, size_t n, const uplink_emitter *em, char *e, size_t s) {
            (void)i; (void)ev; (void)n; (void)em; (void)e; (void)s; return UPLINK_OK;
        }
        static UNUSED void destroy(void *i) { (void)i; }
        """

    @Test(arguments: [
        BrokenLibrary(
            name: "abi",
            source: stubs + "static const uplink_plugin p = { .abi_version = 99, " + descriptorTail
                + "\nconst uplink_plugin *uplink_plugin_register(uint32_t v, char *e, size_t s) { (void)v; (void)e; (void)s; return &p; }",
            expected:
                "built for plugin ABI version 99, but this uplink speaks version 1; rebuild it against this uplink's include/uplink_plugin.h"
        ),
        BrokenLibrary(
            name: "symbol",
            source: stubs + "static const uplink_plugin p = { .abi_version = 1, " + descriptorTail
                + "\nconst uplink_plugin *uplink_plugin_registr(uint32_t v, char *e, size_t s) { (void)v; (void)e; (void)s; return &p; }",
            expected:
                "missing symbol 'uplink_plugin_register': a plugin exports it with C linkage (see include/uplink_plugin.h; check with nm -D)"
        ),
        BrokenLibrary(
            name: "init",
            source: "#include <stdio.h>\n" + stubs
                + "\nconst uplink_plugin *uplink_plugin_register(uint32_t v, char *e, size_t s) { (void)v; snprintf(e, s, \"no sensor bus\"); return NULL; }",
            expected: "uplink_plugin_register failed: no sensor bus"),
        BrokenLibrary(
            name: "descriptor",
            source: stubs
                + "static const uplink_plugin p = { .abi_version = 1, .role = UPLINK_ROLE_SINK, .type = \"bad name\", .create = create, .destroy = destroy };"
                + "\nconst uplink_plugin *uplink_plugin_register(uint32_t v, char *e, size_t s) { (void)v; (void)e; (void)s; return &p; }",
            expected: "its type name 'bad name' must be letters, digits and '_'"),
    ])
    func aBrokenLibraryIsAClearErrorNamingTheFile(_ broken: BrokenLibrary) throws {
        let fixture = try ProcessFixture()
        let path = try Self.compile(broken.source, name: broken.name, in: fixture)
        let yaml = """
            plugins:
              - ./lib\(broken.name).so
            sources:
              s: { type: stdin }
            sinks:
              k: { type: stdout, inputs: [s] }
            """
        let diagnostics = DiagnosticCollector()
        let file = fixture.path("pipeline.yaml")
        var config = PipelineConfig(files: [file])
        ConfigLoader(environment: [:]).load(
            bytes: Array(yaml.utf8), file: file, into: &config, diagnostics: diagnostics)
        var registry = Builtins.registry
        SharedObjectPlugins.register(config.plugins, into: &registry, diagnostics: diagnostics)
        let errors = diagnostics.diagnostics.map(\.description)
        #expect(errors == ["\(file):2:5: error: plugin \(path): \(broken.expected)"])
    }

    @Test func aMissingFileOrATypeThatExistsIsAnError() throws {
        let fixture = try ProcessFixture()
        _ = try Self.compile(
            Self.stubs
                + "static const uplink_plugin p = { .abi_version = 1, .role = UPLINK_ROLE_TRANSFORM, .type = \"json\", .accepts = UPLINK_KIND_MASK(UPLINK_KIND_RAW), .output = UPLINK_KIND_RECORD, .create = create, .process = process, .destroy = destroy };\nconst uplink_plugin *uplink_plugin_register(uint32_t v, char *e, size_t s) { (void)v; (void)e; (void)s; return &p; }",
            name: "json", in: fixture)
        let yaml =
            "plugins: [missing/libnothing.so, libjson.so]\nsources:\n  s: { type: stdin }\nsinks:\n  k: { type: stdout, inputs: [s] }\n"
        let diagnostics = DiagnosticCollector()
        let file = fixture.path("pipeline.yaml")
        var config = PipelineConfig(files: [file])
        ConfigLoader(environment: [:]).load(
            bytes: Array(yaml.utf8), file: file, into: &config, diagnostics: diagnostics)
        var registry = Builtins.registry
        SharedObjectPlugins.register(config.plugins, into: &registry, diagnostics: diagnostics)
        let errors = diagnostics.diagnostics.map(\.description)
        #expect(
            errors == [
                "\(file):1:11: error: plugin \(fixture.path("missing/libnothing.so")): cannot open: No such file or directory",
                "\(file):1:34: error: plugin \(fixture.path("libjson.so")): it defines transform 'json', which is already defined (built-in)",
            ])
    }
}
