import ArgumentParser
import UplinkCore

struct Graph: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the pipeline's topology as Graphviz DOT or a Mermaid flowchart."
    )

    enum Format: String, ExpressibleByArgument, CaseIterable { case dot, mermaid }

    @Argument(help: "Configuration files (YAML).")
    var configs: [String]

    @Option(help: "dot or mermaid.")
    var format: Format = .dot

    func run() throws {
        guard let topology = loadTopology(paths: configs) else { throw ExitCode(exitConfigError) }
        printOut(format == .dot ? topology.dot : topology.mermaid)
    }
}
