import ArgumentParser
import UplinkCore

/// "Did you mean" for a misspelt command (`uplink valdiate`), which argument-parser reports only as unexpected
/// arguments. Misspelt options it already answers itself (`Unknown option '--log-levle'. Did you mean …`).
enum CommandHint {
    /// A command's name and its subcommands, read once from argument-parser's configurations.
    struct Node {
        var name: String
        var children: [Node]

        init<Command: ParsableCommand>(_ command: Command.Type) {
            name = Command._commandName
            children = Command.configuration.subcommands.map { Node($0) }
        }
    }

    /// The refusal for `arguments` (without the program name) when one names no command of `root`, with the
    /// closest command; nil when they do, or when there is nothing better to say than argument-parser's.
    static func unknownCommand(in arguments: [String], root: Node) -> String? {
        var command = root
        var path: [String] = []
        for argument in arguments {
            if command.children.isEmpty || argument.hasPrefix("-") || argument == "help" { return nil }
            guard let next = command.children.first(where: { $0.name == argument }) else {
                let names = command.children.map(\.name)
                let parent = ([root.name] + path).joined(separator: " ")
                var message = "unknown command '\(argument)' of '\(parent)'"
                if let hint = ValueParsing.suggestion(for: argument, among: names) {
                    message += "; did you mean '\((path + [hint]).joined(separator: " "))'?"
                } else {
                    message += " (commands: \(names.joined(separator: ", ")))"
                }
                return message
            }
            command = next
            path.append(argument)
        }
        return nil
    }
}
