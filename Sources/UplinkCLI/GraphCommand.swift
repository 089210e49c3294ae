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
        // A drawing of the wiring: the paths run opens are not needed (a board's config drawn on a laptop).
        guard let topology = loadTopology(paths: configs, checksPaths: false) else { throw ExitCode(exitConfigError) }
        printOut(format == .dot ? topology.dot : topology.mermaid)
    }
}
