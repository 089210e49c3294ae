import Dispatch
import Logging
import ServiceLifecycle
import UnixSignals
import UplinkCore

#if canImport(Glibc)
import Glibc
#endif

extension Run {
    /// How long cancelled components get to end before the process exits without them (a transform stuck in
    /// a computation cannot be cancelled).
    static let cancellationGrace: Duration = .seconds(1)

    /// Called when the pipeline gives up draining: if components are still running after
    /// ``cancellationGrace``, the process exits 1 naming them, so `shutdown_timeout` really ends it. What a
    /// disk buffer acknowledged is already synced, and the tail's checkpoints are in the page cache, so
    /// nothing acknowledged is lost.
    static func exitIfStuck(logger: Logger) -> @Sendable (@escaping @Sendable () -> [String]) -> Void {
        { unfinished in
            // Not on the cooperative pool: its threads may be the ones that are stuck.
            let (seconds, attoseconds) = cancellationGrace.components
            let delay = Double(seconds) + Double(attoseconds) / 1e18
            DispatchQueue(label: "uplink.shutdown-deadline").asyncAfter(deadline: .now() + delay) {
                let stuck = unfinished()
                guard !stuck.isEmpty else { return }
                logger.critical(
                    "components did not stop when cancelled; exiting without them",
                    metadata: ["shutdown.stuck_components": "\(stuck.joined(separator: ","))"])
                _exit(1)
            }
        }
    }
}

/// Listens for SIGINT and SIGTERM beside the service group's own graceful shutdown: the second one stops the
/// pipeline at once (``ReloadingPipeline/stopNow()``) instead of waiting for the drain. Listed before the
/// pipeline, so the group shuts it down after the pipeline has ended.
struct SecondStopSignal: Service {
    let pipeline: ReloadingPipeline
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var received = 0
            for await signal in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                received += 1
                guard received == 2 else { continue }
                logger.warning(
                    "second stop signal: stopping at once; what a disk buffer holds stays for the next start",
                    metadata: ["signal": "\(signal)"])
                pipeline.stopNow()
            }
        }
    }
}
