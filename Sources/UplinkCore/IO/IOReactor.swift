#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization
import CUplinkLinux
import UplinkFileSystem

/// One epoll thread that wakes tasks when their file descriptors become readable (pipes, ttys, serial
/// ports, inotify) or writable (a process plugin's stdin). Sources never block a cooperative-pool thread and
/// no source needs a thread of its own.
public final class IOReactor: Sendable {
    /// The process-wide reactor, started on first use.
    public static let shared = IOReactor()

    private struct State {
        var waiters: [Int32: UnsafeContinuation<Void, any Error>] = [:]
    }

    private let epollFD: Int32
    private let state = Mutex(State())

    private init() {
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        precondition(epollFD >= 0, "epoll_create1 failed")
        let fd = epollFD
        var thread = pthread_t()
        let box = Unmanaged.passRetained(self)
        let result = pthread_create(&thread, nil, { argument in
            let reactor = Unmanaged<IOReactor>.fromOpaque(argument!).takeRetainedValue()
            reactor.loop()
            return nil
        }, box.toOpaque())
        precondition(result == 0, "cannot start the I/O reactor thread")
        pthread_detach(thread)
        _ = fd
    }

    /// Suspends until `fd` is readable (or has hung up / errored: the caller's `read` then tells which).
    /// Regular files are always readable. Cancellation resumes with `CancellationError`.
    public func waitReadable(_ fd: Int32) async throws {
        try await wait(fd, for: EPOLLIN.rawValue | EPOLLRDHUP.rawValue)
    }

    /// Suspends until `fd` is writable (or its reader is gone: the caller's `write` then fails with EPIPE).
    /// Writers to pipes (a process plugin's stdin) use it so a slow reader never blocks a pool thread.
    /// A descriptor is waited on for one direction at a time: use separate descriptors to read and write.
    public func waitWritable(_ fd: Int32) async throws {
        try await wait(fd, for: EPOLLOUT.rawValue)
    }

    private func wait(_ fd: Int32, for interest: UInt32) async throws {
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                let outcome: Int32 = state.withLock { state in
                    if Task.isCancelled { return -2 }
                    var event = epoll_event()
                    event.events = interest | EPOLLONESHOT.rawValue
                    event.data.fd = fd
                    var result = epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &event)
                    if result != 0 && errno == ENOENT {
                        result = epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event)
                    }
                    if result != 0 { return errno }
                    state.waiters[fd] = continuation
                    return 0
                }
                switch outcome {
                case 0: break
                case -2: continuation.resume(throwing: CancellationError())
                case EPERM: continuation.resume()  // regular files: reads and writes never block
                default: continuation.resume(throwing: FileIO.Failure("cannot watch", path: "fd \(fd)", code: outcome))
                }
            }
        } onCancel: {
            let waiter = state.withLock { state -> UnsafeContinuation<Void, any Error>? in
                guard let waiter = state.waiters.removeValue(forKey: fd) else { return nil }
                var event = epoll_event()
                epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, &event)
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Forgets a descriptor before it is closed, so a reused number is not confused with it.
    public func deregister(_ fd: Int32) {
        let waiter = state.withLock { state -> UnsafeContinuation<Void, any Error>? in
            var event = epoll_event()
            epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, &event)
            return state.waiters.removeValue(forKey: fd)
        }
        waiter?.resume(throwing: CancellationError())
    }

    private func loop() {
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while true {
            let count = events.withUnsafeMutableBufferPointer { epoll_wait(epollFD, $0.baseAddress, 64, -1) }
            if count < 0 {
                if errno == EINTR { continue }
                return
            }
            var ready: [UnsafeContinuation<Void, any Error>] = []
            state.withLock { state in
                for index in 0..<Int(count) {
                    if let waiter = state.waiters.removeValue(forKey: events[index].data.fd) { ready.append(waiter) }
                }
            }
            for waiter in ready { waiter.resume() }
        }
    }
}

/// Reads from a non-blocking descriptor without blocking a thread: waits on the reactor when it would block.
public enum AsyncFileDescriptor {
    /// Reads up to `buffer.count` bytes into the start of `buffer`; 0 means end of file.
    /// Throws on errors and on cancellation.
    public static func read(_ fd: Int32, into buffer: inout [UInt8]) async throws -> Int {
        while true {
            try Task.checkCancellation()
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count >= 0 { return count }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK {
                try await IOReactor.shared.waitReadable(fd)
                continue
            }
            throw FileIO.Failure("cannot read", path: "fd \(fd)", code: code)
        }
    }

    /// Writes all of `bytes` to a non-blocking descriptor, waiting on the reactor whenever it would block, so
    /// a slow reader suspends the task instead of a pool thread. Throws on errors (EPIPE when the reader is
    /// gone) and on cancellation; on a throw, part of the bytes may have been written.
    public static func write(_ fd: Int32, _ bytes: [UInt8]) async throws {
        var offset = 0
        let count = bytes.count
        while offset < count {
            try Task.checkCancellation()
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, count - offset) }
            if written >= 0 {
                offset += written
                continue
            }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK {
                try await IOReactor.shared.waitWritable(fd)
                continue
            }
            throw FileIO.Failure("cannot write to", path: "fd \(fd)", code: code)
        }
    }

    /// Sets O_NONBLOCK; returns the previous flags so they can be restored.
    @discardableResult
    public static func setNonBlocking(_ fd: Int32) -> Int32 {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        return flags
    }
}
