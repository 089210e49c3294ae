import CUplinkLinux
import Synchronization
import UplinkFileSystem
import UplinkCore

#if canImport(Glibc)
    import Glibc
#endif

/// A child process with pipes on its stdin and stdout (its stderr is the agent's), in a process group of
/// its own so that stopping it also stops whatever it started (`sh -c` pipelines, interpreters' helpers).
///
/// Spawned with `posix_spawnp`: no fork of a multi-threaded process, and an exec failure (command not found)
/// comes back as an error here instead of a child that dies at once. Our ends of the pipes are non-blocking
/// and watched by ``IOReactor``, so talking to a slow plugin never blocks a cooperative-pool thread.
final class PluginProcess: Sendable {
    let pid: pid_t
    /// Our end of the child's stdin.
    let input: Int32
    /// Our end of the child's stdout.
    let output: Int32
    /// The command as written, for messages.
    let commandLine: String

    private struct State {
        var inputOpen = true
        var outputOpen = true
        var status: ExitStatus?
    }

    private let state = Mutex(State())

    private init(pid: pid_t, input: Int32, output: Int32, commandLine: String) {
        self.pid = pid
        self.input = input
        self.output = output
        self.commandLine = commandLine
    }

    /// How a child ended.
    enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        init(waitStatus: Int32) {
            // WIFEXITED / WEXITSTATUS / WTERMSIG are macros, which Swift does not import.
            let signal = waitStatus & 0x7F
            self = signal == 0 ? .exited((waitStatus >> 8) & 0xFF) : .signaled(signal)
        }

        var description: String {
            switch self {
            case .exited(let code): return "exited with status \(code)"
            case .signaled(let signal): return "killed by signal \(signal)"
            }
        }
    }

    /// Starts `command` (argv; the first word is searched in PATH unless it has a `/`) in `workingDirectory`,
    /// with the agent's environment plus `environment`; the variables the configuration reads secrets from are left
    /// out unless `passSecrets` (``ChildEnvironment``).
    static func spawn(
        command: [String], environment: [(String, String)], passSecrets: Bool = false, workingDirectory: String?
    ) throws(FileIO.Failure) -> PluginProcess {
        _ = ignoreBrokenPipes
        let commandLine = command.joined(separator: " ")
        guard let executable = command.first else {
            throw FileIO.Failure("cannot start", path: "an empty command", code: EINVAL)
        }
        var stdinPipe: [Int32] = [-1, -1]
        var stdoutPipe: [Int32] = [-1, -1]
        guard uplink_pipe2(&stdinPipe, O_CLOEXEC) == 0 else {
            throw FileIO.Failure("cannot create a pipe for", path: commandLine)
        }
        guard uplink_pipe2(&stdoutPipe, O_CLOEXEC) == 0 else {
            let code = errno
            close(stdinPipe[0])
            close(stdinPipe[1])
            throw FileIO.Failure("cannot create a pipe for", path: commandLine, code: code)
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 clears close-on-exec on the copies; every other descriptor of ours is close-on-exec.
        posix_spawn_file_actions_adddup2(&actions, stdinPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
        if let workingDirectory { _ = uplink_posix_spawn_file_actions_addchdir(&actions, workingDirectory) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group, so the whole tree can be signalled; default signal handling and an empty mask,
        // because the agent ignores SIGPIPE and the lifecycle library blocks SIGINT/SIGTERM, and a child
        // inherits both through exec.
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)

        let entries = ChildEnvironment.entries(
            ChildEnvironment.inherited(passSecrets: passSecrets), overrides: environment)
        let argv = command.map { strdup($0) } + [nil]
        let envp = entries.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }

        var pid: pid_t = 0
        let result = posix_spawnp(&pid, executable, &actions, &attributes, argv, envp)
        close(stdinPipe[0])
        close(stdoutPipe[1])
        guard result == 0 else {
            close(stdinPipe[1])
            close(stdoutPipe[0])
            throw FileIO.Failure("cannot start", path: commandLine, code: result)
        }
        AsyncFileDescriptor.setNonBlocking(stdinPipe[1])
        AsyncFileDescriptor.setNonBlocking(stdoutPipe[0])
        return PluginProcess(pid: pid, input: stdinPipe[1], output: stdoutPipe[0], commandLine: commandLine)
    }

    /// Closes our end of its stdin: the plugin reads end of file.
    func closeInput() {
        let wasOpen = state.withLock { state in
            defer { state.inputOpen = false }
            return state.inputOpen
        }
        guard wasOpen else { return }
        IOReactor.shared.deregister(input)
        close(input)
    }

    /// Closes our end of its stdout, after the last read.
    func closeOutput() {
        let wasOpen = state.withLock { state in
            defer { state.outputOpen = false }
            return state.outputOpen
        }
        guard wasOpen else { return }
        IOReactor.shared.deregister(output)
        close(output)
    }

    /// Sends `signal` to its whole process group (nothing once it has been reaped: the pid may be reused).
    func signalGroup(_ signal: Int32) {
        state.withLock { state in
            guard state.status == nil else { return }
            kill(-pid, signal)
        }
    }

    /// Its exit status if it has ended (reaping it), nil while it runs.
    func reap() -> ExitStatus? {
        state.withLock { state in
            if let status = state.status { return status }
            var raw: Int32 = 0
            let result = waitpid(pid, &raw, WNOHANG)
            if result == pid {
                state.status = ExitStatus(waitStatus: raw)
            } else if result < 0 && errno == ECHILD {
                // Someone else reaped it (a SIGCHLD handler set to SIG_IGN); it is gone either way.
                state.status = .exited(-1)
            }
            return state.status
        }
    }

    /// Waits up to `timeout` for it to end. Runs in a task of its own so that it still waits when the caller
    /// is being cancelled (cleanup after a cancelled pipeline must still reap the child).
    func waitForExit(timeout: Duration) async -> ExitStatus? {
        await Task {
            let clock = ContinuousClock()
            let deadline = clock.now + timeout
            var pause = Duration.milliseconds(1)
            while true {
                if let status = reap() { return status }
                if clock.now >= deadline { return nil }
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .milliseconds(20))
            }
        }.value
    }

    /// Waits up to `grace` for it to exit, then SIGKILLs its group; does not close our descriptors, so it is
    /// safe while other tasks still use them (closing a descriptor another task is about to read or write
    /// would let that task touch whatever file or socket reuses the number next).
    @discardableResult
    func awaitExit(grace: Duration) async -> ExitStatus? {
        if let status = await waitForExit(timeout: grace) { return status }
        signalGroup(SIGKILL)
        return await waitForExit(timeout: .seconds(5))
    }

    /// Writes what fits in the pipe now, without waiting: a last message before stopping it, when waiting for
    /// a plugin that does not read is not an option.
    func writeWithoutWaiting(_ bytes: [UInt8]) {
        state.withLock { state in
            guard state.inputOpen else { return }
            _ = bytes.withUnsafeBytes { write(input, $0.baseAddress, $0.count) }
        }
    }

    /// Ends it for good: closes its stdin, gives it `grace` to exit (sending SIGTERM to the group after
    /// `termAfter` when given, for plugins that never read their stdin), then SIGKILLs the group; always reaps
    /// it and closes our descriptors, so nothing outlives the component. Call it only once no other task reads
    /// or writes its pipes.
    @discardableResult
    func terminate(grace: Duration, termAfter: Duration? = nil) async -> ExitStatus? {
        closeInput()
        var status: ExitStatus?
        if let termAfter, termAfter < grace {
            status = await waitForExit(timeout: termAfter)
            if status == nil { signalGroup(SIGTERM) }
        }
        if status == nil { status = await waitForExit(timeout: grace) }
        if status == nil {
            signalGroup(SIGKILL)
            status = await waitForExit(timeout: .seconds(5))
        } else {
            // The leader is gone; anything it left running in its group goes too.
            kill(-pid, SIGKILL)
        }
        closeOutput()
        return status
    }
}

/// Writing to a pipe whose reader died raises SIGPIPE, whose default action kills the agent. `uplink run`
/// already ignores it; this covers every other host of process plugins (tests, custom binaries). Children
/// get the default back (POSIX_SPAWN_SETSIGDEF).
private let ignoreBrokenPipes: Void = {
    signal(SIGPIPE, SIG_IGN)
}()
