import ArgumentParser
import Logging
import UplinkCore
import UplinkPlugins

#if canImport(Glibc)
import Glibc
#endif

/// Exit status for an invalid configuration (EX_CONFIG from sysexits.h), so scripts can tell it apart.
let exitConfigError: Int32 = 78

/// Options every command that reads configs shares.
struct LoggingOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(LoggingOptions.levelsHelp))
    var logLevel: String = "info"

    @Option(name: .long, help: "text or json.")
    var logFormat: String = "text"

    /// Every `--log-level` the binary accepts, for its help, its refusal and the README (a test compares them).
    static let levels = Logger.Level.allCases.map(\.rawValue)
    /// `trace, debug, info, notice, warning, error or critical.`
    static var levelsHelp: String { levels.dropLast().joined(separator: ", ") + " or " + levels.last! + "." }

    /// The level `text` names, or an error listing them all (with the closest one).
    static func level(_ text: String) throws -> Logger.Level {
        if let level = Logger.Level(rawValue: text) { return level }
        var message = "--log-level must be one of \(levels.joined(separator: ", ")), got '\(text)'"
        if let hint = ValueParsing.suggestion(for: text, among: levels) { message += "; did you mean '\(hint)'?" }
        throw ValidationError(message)
    }

    func bootstrap() throws {
        let level = try Self.level(logLevel)
        guard let format = UplinkLogHandler.Format(rawValue: logFormat) else {
            throw ValidationError("--log-format must be text or json")
        }
        UplinkLogHandler.bootstrap(level: level, format: format)
    }

    /// Writes the counts the log rate limiter still holds back, so no suppression goes unreported at exit.
    func flushSuppressed() {
        guard let format = UplinkLogHandler.Format(rawValue: logFormat) else { return }
        UplinkLogHandler.Output.shared.flushSuppressed(format: format)
    }
}

/// Loads and validates configuration files, printing every diagnostic to stderr.
/// Returns nil when there are errors (after printing them).
/// `checksPaths`: see ``TopologyBuilder/checksPaths``.
func loadTopology(paths: [String], registry: PluginRegistry = CommandContext.registry, checksPaths: Bool = true) -> Topology? {
    loadPipeline(paths: paths, registry: registry, checksPaths: checksPaths).topology
}

/// Loads configuration files in two phases: parse them (which reads the top-level `plugins:` lists), load
/// those shared objects into a copy of `registry`, then build the topology with it. Prints every diagnostic
/// to stderr; `topology` is nil when there are errors. `registry` is what the topology was built with.
func loadPipeline(
    paths: [String], registry base: PluginRegistry = CommandContext.registry, checksPaths: Bool = true
) -> (topology: Topology?, registry: PluginRegistry) {
    let diagnostics = DiagnosticCollector()
    let loader = ConfigLoader(environment: processEnvironment(), defaultBufferEvents: base.defaultBufferEvents)
    let config = loader.load(paths: paths, diagnostics: diagnostics)
    var registry = base
    SharedObjectPlugins.register(config.plugins, into: &registry, diagnostics: diagnostics)
    // Build even when loading found errors: plugin option errors are reported in the same pass.
    let built = TopologyBuilder(registry: registry, checksPaths: checksPaths).build(config, diagnostics: diagnostics)
    let topology = diagnostics.hasErrors ? nil : built
    let fileOrder = Dictionary(paths.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
    let sorted = diagnostics.diagnostics.enumerated().sorted { left, right in
        let (a, b) = (left.element, right.element)
        let fileA = fileOrder[a.file] ?? Int.max
        let fileB = fileOrder[b.file] ?? Int.max
        if fileA != fileB { return fileA < fileB }
        if a.line != b.line { return a.line < b.line }
        if a.column != b.column { return a.column < b.column }
        return left.offset < right.offset
    }
    for (_, diagnostic) in sorted {
        printError(diagnostic.description)
    }
    // A file that cannot be read says so in one line of its own; the count is for problems inside files.
    if topology == nil && diagnostics.diagnostics.contains(where: { $0.severity == .error && $0.isLocated }) {
        let count = diagnostics.diagnostics.filter { $0.severity == .error }.count
        printError("configuration invalid: \(count) error\(count == 1 ? "" : "s")")
    }
    return (topology, registry)
}

func processEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let text = String(cString: entry)
        if let equals = text.firstIndex(of: "=") {
            result[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        pointer += 1
    }
    return result
}

func printError(_ text: String) {
    var line = Array(text.utf8)
    line.append(0x0A)
    _ = line.withUnsafeBytes { FileIO.writeAll(2, $0) }
}

func printOut(_ text: String) {
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { FileIO.writeAll(1, $0) }
}
