import Logging
import Synchronization
import UplinkCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension ExecSource {
    // MARK: Scheduled

    /// Runs the command every `interval` (a run that outlasts it delays the next; missed starts are skipped),
    /// sending each run's output as one chunk whose events carry the exit status.
    func runScheduled(context: ComponentContext, output: Outbox<RawEvent>) async throws {
        let clock = ContinuousClock()
        var next = clock.now
        var failing = false
        let stderrLog = StderrLog(logger: context.logger)
        while true {
            try Task.checkCancellation()
            do {
                try await runOnce(context: context, output: output, stderrLog: stderrLog)
                if failing {
                    failing = false
                    context.logger.info("command runs again", metadata: ["exec.command": "\(commandLine)"])
                }
            } catch let error as SpawnError {
                context.metrics.error()
                if !failing {
                    failing = true
                    context.logger.error(
                        "cannot start command; trying again at the next interval", metadata: ["error": "\(error)"])
                }
            }
            next += settings.interval
            let now = clock.now
            if next < now {
                let missed = Int(((now - next) / settings.interval).rounded(.down)) + 1
                next += settings.interval * missed
                context.logger.warning(
                    "command runs longer than its interval; skipping starts",
                    metadata: ["exec.command": "\(commandLine)", "exec.skipped": "\(missed)"])
            }
            try await Task.sleep(until: next, clock: clock)
        }
    }

    private func runOnce(context: ComponentContext, output: Outbox<RawEvent>, stderrLog: StderrLog) async throws {
        let child = try ChildProcess.spawn(
            arguments: settings.arguments, environment: environment(), workingDirectory: settings.workingDirectory)
        defer { child.terminate() }
        let collected = OutputCollector(limit: settings.maxOutputBytes)
        let (status, timedOut) = try await supervise(
            child, timeout: settings.timeout, stderrLog: stderrLog,
            readStdout: { try await collected.read(from: child.stdout) })
        var attributes = status.attributes
        attributes["pid"] = "\(child.pid)"
        if timedOut { attributes["timed_out"] = "true" }
        let origin = EventOrigin(sourceID: context.id, location: commandLine, attributes: attributes)
        var framer = EventFramer(origin: origin, framer: settings.framing.makeFramer())
        var events: [RawEvent] = []
        let now = currentTimeMillis()
        let (bytes, discarded) = collected.result
        framer.frame(bytes, timestamp: now, into: &events)
        var last: [RawEvent] = []
        framer.flush(timestamp: now, into: &last)
        if discarded > 0 {
            for index in last.indices { last[index].truncated = true }
            context.logger.warning(
                "command output exceeded max_output_bytes; the rest was discarded",
                metadata: ["exec.command": "\(commandLine)", "exec.discarded_bytes": "\(discarded)"])
        }
        events += last
        if timedOut {
            context.logger.warning(
                "command timed out; killed it with its process group",
                metadata: [
                    "exec.command": "\(commandLine)", "exec.timeout": "\(settings.timeout)",
                    "exec.lines": "\(events.count)",
                ])
        } else if !status.succeeded {
            context.logger.warning(
                "command failed", metadata: ["exec.command": "\(commandLine)", "exec.status": "\(status)"])
        } else {
            context.logger.debug(
                "command finished", metadata: ["exec.command": "\(commandLine)", "exec.lines": "\(events.count)"])
        }
        stderrLog.summarise()
        if !events.isEmpty { try await output.send(events) }
    }

    // MARK: Streaming

    /// Keeps the command running: its lines go out as it writes them; when it exits it is started again after a
    /// back-off that grows while it keeps exiting quickly.
    func runStreaming(context: ComponentContext, output: Outbox<RawEvent>) async throws {
        var backoff = Backoff(
            initial: settings.restartDelay, maximum: settings.maxRestartDelay, resetAfter: .seconds(10))
        var restarts = 0
        let stderrLog = StderrLog(logger: context.logger)
        var spawnFailing = false
        while true {
            try Task.checkCancellation()
            let started = ContinuousClock.now
            var outcome = "could not start"
            do {
                let child = try ChildProcess.spawn(
                    arguments: settings.arguments, environment: environment(),
                    workingDirectory: settings.workingDirectory)
                defer { child.terminate() }
                spawnFailing = false
                context.logger.info(
                    restarts == 0 ? "command started" : "command restarted",
                    metadata: [
                        "exec.command": "\(commandLine)", "exec.pid": "\(child.pid)", "exec.restarts": "\(restarts)",
                    ])
                let origin = EventOrigin(
                    sourceID: context.id, location: commandLine, attributes: ["pid": "\(child.pid)"])
                let framing = settings.framing
                let (status, _) = try await supervise(
                    child, timeout: nil, stderrLog: stderrLog,
                    readStdout: {
                        var reader = FramedReader(fd: child.stdout, origin: origin, framer: framing.makeFramer())
                        try await reader.run(output: output, metrics: context.metrics)
                    })
                outcome = "\(status)"
            } catch let error as SpawnError {
                context.metrics.error()
                if !spawnFailing {
                    spawnFailing = true
                    context.logger.error("cannot start command", metadata: ["error": "\(error)"])
                }
            }
            stderrLog.summarise()
            guard settings.restart else {
                context.logger.info(
                    "command exited", metadata: ["exec.command": "\(commandLine)", "exec.status": "\(outcome)"])
                return
            }
            let delay = backoff.next(healthyFor: ContinuousClock.now - started)
            restarts += 1
            context.logger.warning(
                "command exited; restarting",
                metadata: [
                    "exec.command": "\(commandLine)", "exec.status": "\(outcome)", "exec.restart_in": "\(delay)",
                ])
            try await Task.sleep(for: delay)
        }
    }

    // MARK: One run

    private enum RunEvent: Sendable {
        case stdoutDone, stderrDone, exited(ExitStatus), timeout, grace
    }

    /// Waits for the command to exit and for its pipes to close, logging stderr, killing the process group on
    /// `timeout` and on cancellation. If the command exits while something it started still holds the pipes,
    /// that group is killed after a grace second, and the pipes abandoned after another.
    func supervise(
        _ child: ChildProcess, timeout: Duration?, stderrLog: StderrLog,
        readStdout: @escaping @Sendable () async throws -> Void
    ) async throws -> (ExitStatus, timedOut: Bool) {
        try await withTaskCancellationHandler {
            try await withThrowingTaskGroup(of: RunEvent.self) { group in
                group.addTask {
                    try await readStdout()
                    return .stdoutDone
                }
                group.addTask {
                    try await stderrLog.read(from: child.stderr)
                    return .stderrDone
                }
                group.addTask { .exited(try await child.waitForExit()) }
                if let timeout {
                    group.addTask {
                        try await Task.sleep(for: timeout)
                        return .timeout
                    }
                }
                var status: ExitStatus? = nil
                var stdoutDone = false
                var stderrDone = false
                var timedOut = false
                var graces = 0
                while status == nil || !stdoutDone || !stderrDone {
                    guard let event = try await group.next() else { break }
                    switch event {
                    case .stdoutDone: stdoutDone = true
                    case .stderrDone: stderrDone = true
                    case .exited(let exit):
                        status = exit
                        if !stdoutDone || !stderrDone {
                            group.addTask {
                                try await Task.sleep(for: .seconds(1))
                                return .grace
                            }
                        }
                    case .timeout:
                        if status == nil {
                            timedOut = true
                            child.signalGroup(SIGKILL)
                        }
                    case .grace:
                        graces += 1
                        child.signalGroup(SIGKILL)
                        if graces == 1 {
                            group.addTask {
                                try await Task.sleep(for: .seconds(1))
                                return .grace
                            }
                        } else {
                            // Something outside the group (setsid) holds the pipes: stop reading them.
                            stdoutDone = true
                            stderrDone = true
                        }
                    }
                }
                group.cancelAll()
                try Task.checkCancellation()
                return (status ?? .exited(-1), timedOut)
            }
        } onCancel: {
            child.signalGroup(SIGKILL)
        }
    }
}

/// A scheduled run's standard output, kept up to a limit (the rest is read and counted, so the command never
/// blocks on a full pipe). Shared with the reading task, so what was read survives its cancellation.
final class OutputCollector: Sendable {
    private let state = Mutex<([UInt8], Int)>(([], 0))
    let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    func read(from fd: Int32) async throws {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = try await AsyncFileDescriptor.read(fd, into: &buffer)
            if count == 0 { return }
            state.withLock { state in
                let room = max(0, limit - state.0.count)
                state.0.append(contentsOf: buffer[0..<min(room, count)])
                state.1 += max(0, count - room)
            }
        }
    }

    /// The bytes kept and the number discarded.
    var result: ([UInt8], Int) { state.withLock { $0 } }
}

/// Logs a command's stderr, line by line, at most 20 lines a minute; the rest is counted and summarised.
final class StderrLog: Sendable {
    let logger: Logger
    private let state = Mutex(State())
    static let linesPerMinute = 20

    private struct State {
        var windowStart = ContinuousClock.now
        var logged = 0
        var suppressed = 0
    }

    init(logger: Logger) {
        self.logger = logger
    }

    func read(from fd: Int32) async throws {
        var framer = LineFramer(mode: .newline, maxFrameBytes: 4096)
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = try await AsyncFileDescriptor.read(fd, into: &buffer)
            var lines: [String] = []
            if count == 0 {
                framer.flush { lines.append(String(decoding: $0.bytes, as: UTF8.self)) }
            } else {
                framer.frames(in: Array(buffer[0..<count])) { lines.append(String(decoding: $0.bytes, as: UTF8.self)) }
            }
            for line in lines { log(line) }
            if count == 0 { return }
        }
    }

    private func log(_ line: String) {
        let allowed = state.withLock { state in
            if ContinuousClock.now - state.windowStart >= .seconds(60) {
                state.windowStart = .now
                state.logged = 0
            }
            guard state.logged < Self.linesPerMinute else {
                state.suppressed += 1
                return false
            }
            state.logged += 1
            return true
        }
        if allowed { logger.warning("command wrote to stderr", metadata: ["exec.stderr": "\(line)"]) }
    }

    /// Logs how many lines were not logged, if any.
    func summarise() {
        let suppressed = state.withLock { state in
            defer { state.suppressed = 0 }
            return state.suppressed
        }
        if suppressed > 0 {
            logger.warning("more stderr lines were not logged", metadata: ["exec.stderr_lines": "\(suppressed)"])
        }
    }
}
