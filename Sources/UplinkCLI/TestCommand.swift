import ArgumentParser
import Logging
import UplinkCore
import UplinkOperations

struct Test: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the unit tests written under `tests:` in the configuration, without sources or sinks.",
        discussion: """
            Each test feeds events (input: lines, records or messages) to transforms (through: [ids]) run \
            in-process, their state in a temporary directory, and checks what comes out (expect: count, \
            dropped, events, all; conditions json, text, contains, not_contains, topic). Prints ok or FAIL \
            per test, with the component, the input, the expected and the actual output. Exits 0 when every \
            test passes, 1 when one fails (or --filter selects none), 78 when the configuration or a test is invalid.
            """
    )

    @Argument(help: "Configuration files (YAML); their components and tests are merged.")
    var configs: [String]

    @Option(help: "Run only the tests whose name contains this text.")
    var filter: String?

    @Option(name: .long, help: ArgumentHelp(String(LoggingOptions.levelsHelp.dropLast()) + " (transforms' own logs)."))
    var logLevel: String = "error"

    func run() async throws {
        let level = try LoggingOptions.level(logLevel)
        UplinkLogHandler.bootstrap(level: level, format: .text)
        // Transforms only, their state in a temporary directory: what run would open is not needed here.
        guard let topology = loadTopology(paths: configs, checksPaths: false) else { throw ExitCode(exitConfigError) }
        // The tests are read from the same files; loading already reported any error in them.
        let diagnostics = DiagnosticCollector()
        let config = ConfigLoader(environment: processEnvironment()).load(paths: configs, diagnostics: diagnostics)
        var tests = ConfigTestCase.parse(config.tests, diagnostics: diagnostics)
        // Only the tests' own problems: the rest was reported by loadTopology.
        let testProblems = diagnostics.diagnostics.filter { $0.severity == .error }.sorted {
            ($0.file, $0.line, $0.column) < ($1.file, $1.line, $1.column)
        }
        for problem in testProblems { printError(problem.description) }
        if !testProblems.isEmpty { throw ExitCode(exitConfigError) }
        if let filter {
            let names = tests.map(\.name)
            tests = tests.filter { $0.name.contains(filter) }
            // A filter that selects nothing is a mistake, not a pass: say what there is.
            if tests.isEmpty && !names.isEmpty {
                var message = "no test name contains '\(filter)'"
                if let hint = ValueParsing.suggestion(for: filter, among: names) { message += "; did you mean '\(hint)'?" }
                printError(message + " (tests: " + names.map { "'\($0)'" }.joined(separator: ", ") + ")")
                throw ExitCode(1)
            }
        }
        guard !tests.isEmpty else {
            printOut("no tests in \(configs.joined(separator: ", "))\n")
            return
        }
        let runner = ConfigTestRunner(topology: topology, logger: Logger(label: "uplink.test"))
        let problems = tests.flatMap(runner.problems)
        guard problems.isEmpty else {
            for problem in problems { printError(problem) }
            throw ExitCode(exitConfigError)
        }
        var failed = 0
        for test in tests {
            let outcome = await runner.run(test)
            if !outcome.passed { failed += 1 }
            printOut(outcome.report + "\n")
        }
        printOut("\n\(tests.count - failed) passed, \(failed) failed\n")
        if failed > 0 { throw ExitCode(1) }
    }
}
