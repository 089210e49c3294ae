import ArgumentParser
import Logging
import UplinkCore
import UplinkPlugins

struct Plugins: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List every plugin type with its input and output event kinds, its options and its origin.",
        discussion: """
            Built-ins, the plugins compiled into this binary, and with --config the shared objects a \
            configuration loads (plugins: [...]) and the process plugins its `type: process` components run \
            (each is started to read its hello, then stopped).
            """
    )

    @Argument(help: "Only this plugin type.")
    var type: String?

    @Option(name: .customLong("config"), help: "A configuration whose plugins to list too (repeatable).")
    var configs: [String] = []

    func run() async throws {
        var registry = CommandContext.registry
        var topology: Topology?
        if !configs.isEmpty {
            // Only the plugins it loads are listed: the paths run opens are not needed.
            let loaded = loadPipeline(paths: configs, checksPaths: false)
            guard let built = loaded.topology else { throw ExitCode(exitConfigError) }
            registry = loaded.registry
            topology = built
        }
        var text = ""
        for role in ComponentRole.allCases {
            let descriptors = registry.all.filter { $0.role == role && (type == nil || $0.type == type) }
            if descriptors.isEmpty { continue }
            text += "\(role.section.uppercased())\n"
            for descriptor in descriptors {
                let input =
                    descriptor.accepts.isEmpty
                    ? "-" : descriptor.accepts.map(\.rawValue).sorted().joined(separator: "|")
                let output: String
                switch descriptor.output {
                case .none: output = "-"
                case .kind(let kind): output = kind.rawValue
                case .sameAsInput: output = "same as input"
                case .fromOption(let option, let kind): output = "\(option), default \(kind.rawValue)"
                }
                text += "  \(descriptor.type)  [\(input) -> \(output)]  (\(descriptor.origin))\n"
                text += "    \(descriptor.summary)\n"
                text += Self.describe(descriptor.options, prefix: "")
            }
            text += "\n"
        }
        // What every transform and sink takes besides its own options: after the whole list, or after the
        // one transform or sink asked for.
        let listed = registry.all.filter { type == nil || $0.type == type }
        if listed.contains(where: { $0.role != .source }) {
            text += "EVERY TRANSFORM AND SINK ALSO TAKES\n"
            text += Self.describe(ComponentConfig.engineOptions, prefix: "")
            text += "\n"
        }
        var failed = false
        if let topology {
            let processes = topology.nodes.compactMap { node -> (Topology.Node, any ProcessPluginStage)? in
                switch node.stage {
                case .source(let stage as any ProcessPluginStage), .transform(let stage as any ProcessPluginStage),
                    .sink(let stage as any ProcessPluginStage):
                    return (node, stage)
                default:
                    return nil
                }
            }
            if !processes.isEmpty && (type == nil || type == "process") {
                text += "PROCESS PLUGINS (started to read their hello)\n"
                let logger = Logger(label: "uplink.plugins") { _ in SwiftLogNoOpLogHandler() }
                for (node, stage) in processes {
                    let settings = stage.settings
                    do {
                        let hello = try await ProcessPlugin.probe(
                            settings, component: node.id, role: stage.role, logger: logger)
                        let input = hello.input ?? "-"
                        let output = hello.output?.rawValue ?? "-"
                        let version = hello.version.map { " \($0)" } ?? ""
                        text +=
                            "  \(node.id): '\(hello.name)'\(version)  \(stage.role.rawValue) [\(input) -> \(output)]  (process: \(settings.commandLine))\n"
                        if let summary = hello.summary { text += "    \(summary)\n" }
                        text += Self.describe(hello.options, prefix: "config.")
                    } catch {
                        failed = true
                        text += "  \(node.id): cannot start: \(error)\n"
                    }
                }
                text += "\n"
            }
        }
        if text.isEmpty {
            let names = Set(registry.all.map(\.type)).sorted()
            var message = "no plugin named '\(type ?? "")'"
            if let type, let hint = ValueParsing.suggestion(for: type, among: names) {
                message += "; did you mean '\(hint)'?"
            } else {
                message += " (plugins: \(names.joined(separator: ", ")))"
            }
            printError(message)
            throw ExitCode(1)
        }
        printOut(text)
        if failed { throw ExitCode(1) }
    }

    /// One entry per option; a nested mapping's options follow it, named with its prefix (`retry.max_backoff`).
    static func describe(_ options: [OptionSpec], prefix: String) -> String {
        var text = ""
        for option in options {
            var line = "    - \(prefix)\(option.name): \(option.type.displayName)"
            if option.required { line += ", required" }
            if let value = option.defaultValue { line += ", default \(value)" }
            if option.secret { line += ", secret (or \(option.name)_file)" }
            if !option.deprecatedNames.isEmpty {
                line += ", formerly \(option.deprecatedNames.joined(separator: ", ")) (still read, with a warning)"
            }
            text += line + "\n        \(option.description)\n"
            if case .mapping(let nested) = option.type {
                text += describe(nested, prefix: prefix + option.name + ".")
            }
        }
        return text
    }
}
