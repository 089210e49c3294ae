import CUplinkLinux
import Synchronization
import UplinkCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// How a child process ended.
enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    init(waitStatus: Int32) {
        if uplink_WIFSIGNALED(waitStatus) != 0 {
            self = .signaled(uplink_WTERMSIG(waitStatus))
        } else {
            self = .exited(uplink_WEXITSTATUS(waitStatus))
        }
    }

    var succeeded: Bool { self == .exited(0) }

    var description: String {
        switch self {
        case .exited(let code): return "exit code \(code)"
        case .signaled(let signal): return "killed by signal \(signal)"
        }
    }

    /// The metadata events of a run carry: `exit_code` or `signal`.
    var attributes: [String: String] {
        switch self {
        case .exited(let code): return ["exit_code": "\(code)"]
        case .signaled(let signal): return ["signal": "\(signal)"]
        }
    }
}

/// Why a command could not be started.
struct SpawnError: Error, Sendable, CustomStringConvertible {
    var command: String
    var errno: Int32
    var description: String { "cannot run \(command): \(String(cString: strerror(errno)))" }
}

/// A command started with posix_spawn in its own process group, with stdout and stderr on pipes and stdin on
/// /dev/null. Its exit is awaited through a pidfd on the I/O reactor (or by polling where pidfds are missing),
/// so no thread blocks in waitpid.
final class ChildProcess: Sendable {
    let pid: pid_t
    /// Read ends, non-blocking.
    let stdout: Int32
    let stderr: Int32
    private let pidfd: Int32
    private let state = Mutex(State())

    private struct State {
        var status: ExitStatus? = nil
        var pipesClosed = false
    }

    private init(pid: pid_t, stdout: Int32, stderr: Int32, pidfd: Int32) {
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self.pidfd = pidfd
    }

    /// Starts `arguments[0]` (looked up in PATH when it has no `/`) with exactly `environment` (`KEY=value`).
    static func spawn(
        arguments: [String], environment: [String], workingDirectory: String?
    ) throws(SpawnError) -> ChildProcess {
        precondition(!arguments.isEmpty)
        let command = arguments[0]
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        guard uplink_pipe2(&outPipe, O_CLOEXEC) == 0 else { throw SpawnError(command: command, errno: errno) }
        guard uplink_pipe2(&errPipe, O_CLOEXEC) == 0 else {
            let code = errno
            close(outPipe[0])
            close(outPipe[1])
            throw SpawnError(command: command, errno: code)
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // dup2 clears close-on-exec on the copies; the originals close at exec.
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        if let workingDirectory { uplink_posix_spawn_file_actions_addchdir(&actions, workingDirectory) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group (so a timeout kills everything it started), default signal dispositions (the
        // agent ignores some for its own shutdown) and an empty signal mask.
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        posix_spawnattr_setpgroup(&attributes, 0)
        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result =
            command.contains("/")
            ? posix_spawn(&pid, command, &actions, &attributes, argv, envp)
            : posix_spawnp(&pid, command, &actions, &attributes, argv, envp)
        close(outPipe[1])
        close(errPipe[1])
        guard result == 0 else {
            close(outPipe[0])
            close(errPipe[0])
            throw SpawnError(command: command, errno: result)
        }
        AsyncFileDescriptor.setNonBlocking(outPipe[0])
        AsyncFileDescriptor.setNonBlocking(errPipe[0])
        let pidfd = uplink_pidfd_open(pid)
        return ChildProcess(pid: pid, stdout: outPipe[0], stderr: errPipe[0], pidfd: pidfd)
    }

    /// Suspends until the process exits and returns how; reaps it. Cancellation throws (the process is not
    /// killed here: see ``terminate()``).
    func waitForExit() async throws -> ExitStatus {
        if pidfd >= 0 {
            while true {
                if let status = reap() { return status }
                try await IOReactor.shared.waitReadable(pidfd)
            }
        }
        var delay = Duration.milliseconds(1)
        while true {
            if let status = reap() { return status }
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .milliseconds(100))
        }
    }

    /// waitpid without blocking; nil while the process runs.
    private func reap() -> ExitStatus? {
        state.withLock { state in
            if let status = state.status { return status }
            var waitStatus: Int32 = 0
            let result = waitpid(pid, &waitStatus, WNOHANG)
            if result == pid {
                state.status = ExitStatus(waitStatus: waitStatus)
            } else if result < 0 && errno == ECHILD {
                // Reaped elsewhere (another library waiting on every child): the status is lost.
                state.status = .exited(-1)
            }
            return state.status
        }
    }

    var hasExited: Bool { reap() != nil }

    /// Sends `signal` to the whole process group (the command and everything it started).
    func signalGroup(_ signal: Int32) {
        _ = kill(-pid, signal)
    }

    /// Kills the group and reaps the process, waiting at most a moment (a killed process exits at once), then
    /// closes the descriptors. Used when a run ends, is cancelled, or fails.
    func terminate() {
        if !hasExited {
            signalGroup(SIGKILL)
            var request = timespec(tv_sec: 0, tv_nsec: 1_000_000)
            for _ in 0..<500 where !hasExited {
                nanosleep(&request, nil)
            }
        } else {
            // Whatever the command left behind in its group (it holds our pipes otherwise).
            signalGroup(SIGKILL)
        }
        closeDescriptors()
    }

    private func closeDescriptors() {
        let first = state.withLock { state in
            defer { state.pipesClosed = true }
            return !state.pipesClosed
        }
        guard first else { return }
        for fd in [stdout, stderr, pidfd] where fd >= 0 {
            IOReactor.shared.deregister(fd)
            close(fd)
        }
    }
}
