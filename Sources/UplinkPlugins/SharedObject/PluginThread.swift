import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A thread of its own for one shared-object plugin instance: its callbacks may block (a sink writing to a
/// socket, a source waiting on a device), which must never happen on a cooperative-pool thread, and the C
/// ABI promises that one instance is called from one thread, one call at a time.
final class PluginThread: @unchecked Sendable {
    // @unchecked: `semaphore` is created before the thread starts and destroyed in deinit, which runs only
    // after the thread released its reference; everything else is under `jobs`' lock.
    private let jobs = Mutex<[(@Sendable () -> Void)?]>([])
    private let semaphore: UnsafeMutablePointer<sem_t>

    init() {
        semaphore = .allocate(capacity: 1)
        sem_init(semaphore, 0, 0)
        var thread = pthread_t()
        let box = Unmanaged.passRetained(self)
        let result = pthread_create(
            &thread, nil,
            { argument in
                let owner = Unmanaged<PluginThread>.fromOpaque(argument!).takeRetainedValue()
                owner.loop()
                return nil
            }, box.toOpaque())
        precondition(result == 0, "cannot start a plugin thread")
        pthread_detach(thread)
    }

    deinit {
        sem_destroy(semaphore)
        semaphore.deallocate()
    }

    private func enqueue(_ job: (@Sendable () -> Void)?) {
        jobs.withLock { $0.append(job) }
        sem_post(semaphore)
    }

    private func loop() {
        while true {
            while sem_wait(semaphore) != 0 {}  // EINTR
            let job = jobs.withLock { $0.removeFirst() }
            guard let job else { return }
            job()
        }
    }

    /// Runs `body` on the thread and returns its result. Not cancellable: a C call cannot be interrupted.
    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withUnsafeContinuation { continuation in
            enqueue { continuation.resume(returning: body()) }
        }
    }

    /// Ends the thread after the jobs already queued.
    func stop() {
        enqueue(nil)
    }
}
