import ArgumentParser
import UplinkCore

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check configuration files: syntax, types, options, wiring. Exit 0 when valid, 78 when not."
    )

    @Argument(help: "Configuration files (YAML); validated together, as `run` would merge them.")
    var configs: [String]

    func run() throws {
        guard let topology = loadTopology(paths: configs) else { throw ExitCode(exitConfigError) }
        let counts = ComponentRole.allCases.map { role in
            "\(topology.nodes.filter { $0.role == role }.count) \(role.section)"
        }
        printOut("configuration valid: \(counts.joined(separator: ", "))\n")
    }
}
