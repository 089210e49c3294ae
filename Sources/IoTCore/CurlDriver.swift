internal import CCurl
import Glibc
import Synchronization

/// libcurl's global state, initialised once on first use. curl_global_init is not thread-safe against itself;
/// a global `let` is initialised exactly once, under the runtime's lock.
let curlGlobalInitResult: UInt32 = uplink_curl_global_init_default().rawValue

/// The libcurl transport: one multi handle driven by one dedicated thread.
///
/// Async callers queue a request under a lock and wake the thread (an eventfd); the thread moves up to
/// `maxInFlight` requests onto pooled easy handles, drives them with `curl_multi_socket_action` on an epoll set
/// of the sockets libcurl waits on (so a ready socket wakes only its own transfer, not every one in flight),
/// and completes each by resuming its continuation. No thread per request, no blocking call on the
/// cooperative pool. Easy handles are reused, and the multi handle's connection cache keeps connections alive
/// between requests.
///
/// Cancelling the awaiting task takes its transfer off the multi handle and resumes it with
/// `CancellationError`. ``shutdown()`` fails what is queued or running, stops the thread and cleans up the multi
/// handle there, which closes the kept-alive connections: a server waiting for its clients to leave (the
/// in-process emulator's graceful shutdown) is not kept waiting by a client object that is still referenced.
///
/// Other threads touch the event loop only through its wakeup, and only under the state lock while the phase is
/// not `.stopped`; the thread sets `.stopped` under that lock before it closes the loop, so a late wakeup can
/// never reach a closed descriptor.
final class CurlDriver: HTTPTransport, TaskExecutor {
    struct Options: Sendable {
        var maxInFlight: Int
        var connectTimeout: Duration
        var requestTimeout: Duration
        var caFile: String?
        var maxResponseBytes: Int
        var userAgent: String
    }

    /// A request waiting for the thread.
    struct Job: Sendable {
        var id: UInt64
        var request: HTTPRequest
        var continuation: CheckedContinuation<HTTPResponse, any Error>
    }

    enum Phase {
        case running
        case stopping
        case stopped
    }

    struct State {
        var phase = Phase.running
        var nextID: UInt64 = 0
        var pending: [Job] = []
        var cancelled: [UInt64] = []
        var blockingJobs: [@Sendable () -> Void] = []
        /// Jobs of tasks that prefer this driver as their executor (``CurlDriver/enqueue(_:)``).
        var executorJobs: [UnownedJob] = []
        /// The thread is between taking its queue and deciding to sleep: it takes the queue again before it
        /// sleeps, so what is queued meanwhile needs no wakeup write.
        var loopAwake = false
        var thread: pthread_t?
        /// A wakeup was written since the thread last took its queue: it will look again before it sleeps, so
        /// more work queued meanwhile needs no second write (one `write` per loop turn, not one per request).
        var wakeupPending = false
        /// Wakeups written, for tests.
        var wakeupsWritten = 0
        /// Set once `curl_multi_cleanup` ran (on the driver thread at its end, or in `deinit` if it never ran).
        var multiCleanedUp = false
    }

    /// The multi handle, touched by the driver thread only (and by `deinit` when that never started).
    struct MultiHandle: @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer
    }

    /// The epoll set, libcurl's timer and the wakeup eventfd (`uplink_multi_events` in the CCurl shim); other
    /// threads only write to its eventfd (`uplink_multi_events_wakeup`), which is made for that.
    struct EventLoop: @unchecked Sendable {
        let pointer: UnsafeMutablePointer<uplink_multi_events>
    }

    let options: Options
    let multi: MultiHandle
    let events: EventLoop
    let state = Mutex(State())

    /// Starts the driver thread.
    init(options: Options) throws(IoTCoreError) {
        guard curlGlobalInitResult == CURLE_OK.rawValue else {
            throw IoTCoreError(code: .transport, message: "curl_global_init failed (\(curlGlobalInitResult))")
        }
        guard let multi = curl_multi_init() else {
            throw IoTCoreError(code: .transport, message: "curl_multi_init failed")
        }
        let events = UnsafeMutablePointer<uplink_multi_events>.allocate(capacity: 1)
        guard uplink_multi_events_open(events, multi) == 0 else {
            let error = errno
            events.deallocate()
            curl_multi_cleanup(multi)
            throw IoTCoreError(code: .transport, message: "cannot set up the libcurl event loop (errno \(error))")
        }
        self.options = options
        self.multi = MultiHandle(pointer: multi)
        self.events = EventLoop(pointer: events)
        // Keep a connection per possible transfer, so keep-alive survives a burst.
        _ = uplink_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, max(4, options.maxInFlight))

        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let status = pthread_create(&thread, nil, curlDriverThreadEntry, context)
        guard status == 0 else {
            Unmanaged<CurlDriver>.fromOpaque(context).release()
            throw IoTCoreError(code: .transport, message: "cannot start the libcurl thread (error \(status))")
        }
        state.withLock { $0.thread = thread }
    }

    deinit {
        // The thread holds a reference until it exits and cleans the handle up itself; only a driver whose
        // thread never started still owns it here.
        if !state.withLock({ $0.multiCleanedUp }) {
            curl_multi_cleanup(multi.pointer)
            uplink_multi_events_close(events.pointer)
        }
        events.pointer.deallocate()
    }

    /// Wakes the driver thread, unless a wakeup is already pending. Call with the state lock held: the thread
    /// closes the event loop only after setting `.stopped` under that lock, so its eventfd is open whenever this
    /// runs; and it clears `wakeupPending` under that lock when it takes its queue, before it next sleeps.
    private func wakeThread(_ state: inout State) {
        guard state.phase != .stopped, !state.wakeupPending, !state.loopAwake else { return }
        state.wakeupPending = true
        state.wakeupsWritten += 1
        uplink_multi_events_wakeup(events.pointer)
    }

    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<HTTPResponse, any Error>) in
                // Under the lock: either the cancellation handler already ran (then the task is cancelled
                // here) or it will run later and find the job queued or handed to the thread.
                let failure: (any Error)? = state.withLock { state in
                    if Task.isCancelled { return CancellationError() }
                    guard state.phase == .running else {
                        return TransportFailure(kind: .shutdown, message: "the client was shut down")
                    }
                    state.pending.append(Job(id: id, request: request, continuation: continuation))
                    wakeThread(&state)
                    return nil
                }
                if let failure {
                    continuation.resume(throwing: failure)
                }
            }
        } onCancel: {
            let queued: Job? = state.withLock { state in
                if let index = state.pending.firstIndex(where: { $0.id == id }) {
                    return state.pending.remove(at: index)
                }
                // Running or already finished: the thread ignores ids it does not know.
                state.cancelled.append(id)
                wakeThread(&state)
                return nil
            }
            if let queued {
                queued.continuation.resume(throwing: CancellationError())
            }
        }
    }

    func performBlocking<T: Sendable>(_ job: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            let queued = state.withLock { state in
                guard state.phase != .stopped else { return false }
                state.blockingJobs.append { continuation.resume(returning: job()) }
                wakeThread(&state)
                return true
            }
            if !queued {
                // After shutdown there is no thread left; the job is short, run it here.
                continuation.resume(returning: job())
            }
        }
    }

    /// Fails what is queued, stops the thread and waits for it; the thread fails what is running, cleans up the
    /// multi handle (closing its connections) and the easy handles. Idempotent.
    func shutdown() {
        let (thread, pending): (pthread_t?, [Job]) = state.withLock { state in
            guard state.phase == .running else { return (nil, []) }
            state.phase = .stopping
            wakeThread(&state)
            defer { state.pending = [] }
            return (state.thread, state.pending)
        }
        for job in pending {
            job.continuation.resume(throwing: TransportFailure(kind: .shutdown, message: "the client was shut down"))
        }
        guard let thread else { return }
        if pthread_equal(thread, pthread_self()) != 0 {
            pthread_detach(thread)
        } else {
            pthread_join(thread, nil)
        }
    }

    /// Runs a job of a task that prefers this driver as its executor on the driver thread, between its turns
    /// of the event loop. The `iotcore_http` sink runs its deliveries here: an answer then resumes the publish
    /// that waits for it, and the next request is handed over, on the thread that read the answer, without
    /// waking a thread of the cooperative pool (and being woken by it) for every request. Jobs must not block.
    /// After shutdown, jobs go to the global executor.
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let queued = state.withLock { state in
            guard state.phase != .stopped else { return false }
            state.executorJobs.append(job)
            wakeThread(&state)
            return true
        }
        if !queued { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
    }

    /// Number of queued requests not yet on the wire, for tests.
    var queuedCount: Int {
        state.withLock { $0.pending.count }
    }

    /// Wakeups written to the driver thread so far, for tests.
    var wakeupCount: Int {
        state.withLock { $0.wakeupsWritten }
    }
}

/// The driver thread's entry point; owns one reference to the driver until the loop ends.
private func curlDriverThreadEntry(_ context: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    guard let context else { return nil }
    // CURLOPT_NOSIGNAL stops libcurl from ignoring SIGPIPE for the process; blocking it on this thread (where
    // every socket write happens) turns a write to a closed peer into EPIPE instead of killing the agent.
    var pipe = sigset_t()
    sigemptyset(&pipe)
    sigaddset(&pipe, SIGPIPE)
    pthread_sigmask(SIG_BLOCK, &pipe, nil)
    let driver = Unmanaged<CurlDriver>.fromOpaque(context).takeRetainedValue()
    driver.runLoop()
    return nil
}
