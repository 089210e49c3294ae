import Synchronization
import UplinkFileSystem
import UplinkCore

/// Whether a transform's dead letters can be written, for `/health`: failing from the first failed write until
/// the next one that succeeds.
final class DeadLetterHealth: Sendable {
    private let failing = Mutex<ComponentReport.Failure?>(nil)

    /// Records a failed write; true when it starts a run of failures (the one to log).
    func failed(_ error: FileIO.Failure, now: ContinuousClock.Instant = .now) -> Bool {
        failing.withLock { failure in
            guard failure == nil else { return false }
            failure = ComponentReport.Failure(
                since: now, reason: "cannot write dead letters to \(error.path) (errno \(error.code))")
            return true
        }
    }

    /// Records a successful write; true when it ends a run of failures.
    func recovered() -> Bool {
        failing.withLock { failure in
            defer { failure = nil }
            return failure != nil
        }
    }

    func report() -> ComponentReport {
        ComponentReport(failure: failing.withLock { $0 })
    }
}
