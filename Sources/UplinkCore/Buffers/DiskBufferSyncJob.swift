import Synchronization
import UplinkFileSystem

/// A disk buffer's group commit, run on its sync thread while its own thread goes on writing and reading: the
/// segments it covers (oldest first), each up to the size it had when the job started, and how many of the oldest
/// held upstream acknowledgements that makes durable. The buffer's thread applies the results (releases what it
/// covered, or sets aside and rewrites what a failed sync left); only its cold paths ever wait for them.
final class DiskBufferSyncJob: Sendable {
    struct Target: Sendable {
        var segment: Int
        var fd: Int32
        var bytes: Int
        var events: Int
    }

    let targets: [Target]
    let acknowledgements: Int
    /// One fdatasync result per target, in order, up to the first failure (the ones after it were not tried).
    private let codes = Mutex<[Int32]?>(nil)
    private let done = Semaphore()

    init(targets: [Target], acknowledgements: Int) {
        self.targets = targets
        self.acknowledgements = acknowledgements
    }

    /// On the sync thread: fdatasyncs each target in order, stopping at the first failure (what comes after a
    /// failed segment is set aside and rewritten with it, so syncing it would only add a useless flush).
    func run(_ fileSystem: any FileSystem) {
        var results: [Int32] = []
        results.reserveCapacity(targets.count)
        for target in targets {
            let code = fileSystem.fdatasync(target.fd)
            results.append(code)
            if code != 0 { break }
        }
        codes.withLock { $0 = results }
        done.post()
    }

    /// The results, waiting for the job to end if it is still running (which blocks the caller's thread: only the
    /// buffer's own thread calls it, on a cold path that must see everything synced).
    func results() -> [Int32] {
        if let codes = codes.withLock({ $0 }) { return codes }
        done.wait()
        done.post()
        return codes.withLock { $0! }
    }
}
