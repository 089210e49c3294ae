import ArgumentParser
import IoTCore
import Logging
import UplinkCore
import UplinkPlugins

#if canImport(Glibc)
import Glibc
#endif

/// Picks the `iotcore_http` sink a one-shot command uses.
func iotCoreTarget(configs: [String], sink: String?) throws -> IoTCoreTarget {
    guard let topology = loadTopology(paths: configs) else { throw ExitCode(exitConfigError) }
    let targets = IoTCoreTarget.all(in: topology)
    if let sink {
        guard let target = targets.first(where: { $0.sinkID == sink }) else {
            let ids = targets.map(\.sinkID)
            let hint = ValueParsing.suggestion(for: sink, among: ids).map { "; did you mean '\($0)'?" } ?? ""
            printError("no iotcore_http sink with id '\(sink)'\(hint) (found: \(ids.joined(separator: ", ")))")
            throw ExitCode(exitConfigError)
        }
        return target
    }
    guard let first = targets.first else {
        printError("the configuration has no iotcore_http sink")
        throw ExitCode(exitConfigError)
    }
    if targets.count > 1 { printError("several iotcore_http sinks; using '\(first.sinkID)' (choose with --sink)") }
    return first
}
