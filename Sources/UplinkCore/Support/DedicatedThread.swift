import DequeModule
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A thread of its own for work that may block (a shared-object plugin's callbacks, a disk buffer's writes and
/// fsyncs), which must never happen on a cooperative-pool thread: a blocked pool thread stalls unrelated stages
/// (the pool has as many threads as cores, two on a small board). Jobs run one at a time, in the order queued.
public final class DedicatedThread: @unchecked Sendable {
    // @unchecked: `queued` is created before the thread starts and destroyed only after the thread released its
    // reference; everything else is under `jobs`' lock.
    private let jobs = Mutex<Deque<(@Sendable () -> Void)?>>(Deque())
    private let queued = Semaphore()

    /// Starts the thread; `purpose` names it in the failure message if the system refuses one.
    public init(purpose: String) {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(self)
        let result = pthread_create(
            &thread, nil,
            { argument in
                let owner = Unmanaged<DedicatedThread>.fromOpaque(argument!).takeRetainedValue()
                owner.loop()
                return nil
            }, box.toOpaque())
        precondition(result == 0, "cannot start a thread for \(purpose)")
        pthread_detach(thread)
    }

    private func enqueue(_ job: (@Sendable () -> Void)?) {
        jobs.withLock { $0.append(job) }
        queued.post()
    }

    private func loop() {
        while true {
            queued.wait()
            let job = jobs.withLock { $0.removeFirst() }
            guard let job else { return }
            job()
        }
    }

    /// Runs `body` on the thread and returns its result; the caller suspends meanwhile. Not cancellable: a
    /// blocking call cannot be interrupted. This thread lets go of `body`, what it captured and its result before
    /// the caller resumes: a chunk's acknowledgements report when their last holder lets go, so the caller (a disk
    /// buffer's `send` that synced) finds them resolved, not resolved a moment later by this thread.
    public func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withUnsafeContinuation { continuation in
            let pending = PendingJob(body)
            enqueue {
                // `consume`: this thread keeps no copy of the result (a disk buffer's acknowledgements) either.
                let result = pending.run()
                continuation.resume(returning: consume result)
            }
        }
    }

    /// Queues `body` without waiting for it.
    public func post(_ body: @escaping @Sendable () -> Void) {
        enqueue(body)
    }

    /// Ends the thread after the jobs already queued.
    public func stop() {
        enqueue(nil)
    }
}

/// A job that lets go of its closure once it ran. Touched by the dedicated thread only.
private final class PendingJob<T>: @unchecked Sendable {
    private var body: (() -> T)?

    init(_ body: @escaping @Sendable () -> T) { self.body = body }

    func run() -> T {
        let body = self.body!
        self.body = nil
        return body()
    }
}

/// A POSIX semaphore (counting, process-private) that blocks its waiter's thread, which is what a dedicated
/// thread waiting for its next job wants, and what the cooperative pool must never do.
final class Semaphore: @unchecked Sendable {
    // @unchecked: sem_t is made for concurrent post and wait; it is destroyed when nobody can use it any more.
    private let raw = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)

    init() { sem_init(raw, 0, 0) }

    deinit {
        sem_destroy(raw)
        raw.deallocate()
    }

    func post() { sem_post(raw) }

    func wait() {
        while sem_wait(raw) != 0 {}  // EINTR
    }
}
