import Synchronization
import UplinkFileSystem

/// A disk buffer's group commit, run on its sync thread while its own thread goes on writing and reading: the
/// buffer's directory when a segment was created since its last sync (first, so the new names are durable), the
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

    let directory: String?
    let targets: [Target]
    let acknowledgements: Int
    /// The directory's fsync result (0 without one), and one fdatasync result per target, in order, up to the first
    /// failure (the ones after it were not tried).
    private let codes = Mutex<(directory: Int32, targets: [Int32])?>(nil)
    private let done = Semaphore()

    init(directory: String?, targets: [Target], acknowledgements: Int) {
        self.directory = directory
        self.targets = targets
        self.acknowledgements = acknowledgements
    }

    /// On the sync thread: fdatasyncs each target in order, stopping at the first failure (what comes after a
    /// failed segment is set aside and rewritten with it, so syncing it would only add a useless flush).
    func run(_ fileSystem: any FileSystem) {
        let directoryCode = directory.map { fileSystem.syncDirectory($0) } ?? 0
        var results: [Int32] = []
        results.reserveCapacity(targets.count)
        // After a failed directory sync the job has failed: the next one syncs the directory and the files again.
        for target in targets where directoryCode == 0 {
            let code = fileSystem.fdatasync(target.fd)
            results.append(code)
            if code != 0 { break }
        }
        codes.withLock { $0 = (directoryCode, results) }
        done.post()
    }

    /// The results, waiting for the job to end if it is still running (which blocks the caller's thread: only the
    /// buffer's own thread calls it, on a cold path that must see everything synced).
    func results() -> (directory: Int32, targets: [Int32]) {
        if let codes = codes.withLock({ $0 }) { return codes }
        done.wait()
        done.post()
        return codes.withLock { $0! }
    }
}
