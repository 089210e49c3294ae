import ArgumentParser
import UplinkCore
import UplinkPlugins

struct Plugins: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List every plugin type with its input and output event kinds and its options."
    )

    @Argument(help: "Only this plugin type.")
    var type: String?

    func run() throws {
        let registry = CommandContext.registry
        var text = ""
        for role in ComponentRole.allCases {
            let descriptors = registry.all.filter { $0.role == role && (type == nil || $0.type == type) }
            if descriptors.isEmpty { continue }
            text += "\(role.section.uppercased())\n"
            for descriptor in descriptors {
                let input = descriptor.accepts.isEmpty ? "-" : descriptor.accepts.map(\.rawValue).sorted().joined(separator: "|")
                let output: String
                switch descriptor.output {
                case .none: output = "-"
                case .kind(let kind): output = kind.rawValue
                case .sameAsInput: output = "same as input"
                case .fromOption(let option, let kind): output = "\(option), default \(kind.rawValue)"
                }
                text += "  \(descriptor.type)  [\(input) -> \(output)]  (\(descriptor.origin))\n"
                text += "    \(descriptor.summary)\n"
                for option in descriptor.options {
                    var line = "    - \(option.name): \(option.type.displayName)"
                    if option.required { line += ", required" }
                    if let value = option.defaultValue { line += ", default \(value)" }
                    if option.secret { line += ", secret (or \(option.name)_file)" }
                    text += line + "\n        \(option.description)\n"
                }
            }
            text += "\n"
        }
        if text.isEmpty {
            printError("no plugin named '\(type ?? "")'")
            throw ExitCode(1)
        }
        printOut(text)
    }
}
