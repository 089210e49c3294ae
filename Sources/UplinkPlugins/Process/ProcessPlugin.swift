import Logging
import Synchronization
import UplinkFileSystem
import UplinkCore

#if canImport(Glibc)
    import Glibc
#endif

/// One started plugin: the child, the reader of its stdout (which may already hold lines sent after the
/// hello), and what it said about itself.
struct PluginSession: Sendable {
    let child: PluginProcess
    var reader: LineReader
    let hello: PluginHello
}

/// Starting and checking process plugins, shared by the source, transform and sink hosts.
public enum ProcessPlugin {
    /// Spawns the plugin, sends `init` and waits up to `timeout` for its `hello`, which must speak this
    /// protocol version, accept `role` and declare the configured kinds. `log` lines before the hello are
    /// logged. A plugin that exits or hangs first is a restartable failure; a wrong hello is not.
    static func start(
        _ settings: ProcessPluginSettings, component: String, role: ComponentRole, logger: Logger
    ) async throws(ProcessPluginError) -> PluginSession {
        let command = settings.commandLine
        var spawned: PluginProcess?
        for attempt in 1...10 {
            do {
                spawned = try PluginProcess.spawn(
                    command: settings.command, environment: settings.environment, passSecrets: settings.passSecrets,
                    workingDirectory: settings.workingDirectory)
                break
            } catch let failure where failure.code == ETXTBSY && attempt < 10 {
                // A script that was just written can still be open for writing in a child another thread is
                // spawning (it inherits the descriptor until its exec): a transient state, so try again.
                try? await Task.sleep(for: .milliseconds(20))
            } catch {
                throw ProcessPluginError(.cannotStart, command: command, "\(error)")
            }
        }
        guard let child = spawned else {
            throw ProcessPluginError(.cannotStart, command: command, "cannot start it: text file busy")
        }
        let expired = Flag()
        let timeout = settings.timeout
        // Killing the group on expiry ends the read below with end of file: one path for "it exited" and
        // "it hung", and no task is left blocked on the pipe.
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            expired.set()
            child.signalGroup(SIGKILL)
        }
        defer { watchdog.cancel() }

        func failure(_ code: ProcessPluginError.Code, _ message: String) async -> ProcessPluginError {
            let status = await child.terminate(grace: .milliseconds(200))
            if expired.isSet {
                return ProcessPluginError(.timedOut, command: command, "no hello within \(timeout) of its init")
            }
            if code == .crashed, let status {
                return ProcessPluginError(code, command: command, "\(message) (\(status))")
            }
            return ProcessPluginError(code, command: command, message)
        }

        let initLine = HostMessage.initialize(
            component: component, role: role, input: settings.inputKind, output: settings.outputKind,
            config: settings.config)
        do {
            try await AsyncFileDescriptor.write(child.input, initLine)
        } catch {
            // It closed its stdin (usually: it already exited).
            throw await failure(.crashed, "exited before reading its init")
        }
        var reader = LineReader(fd: child.output)
        while true {
            let line: ArraySlice<UInt8>?
            do {
                line = try await reader.next()
            } catch {
                throw await failure(.crashed, "cannot read its hello: \(error)")
            }
            guard let line else { throw await failure(.crashed, "exited before its hello") }
            let message: PluginMessage
            do {
                message = try PluginMessage.parse(line)
            } catch {
                throw await failure(.handshake, "expected a hello, got \(error.message)")
            }
            switch message {
            case .log(let level, let text):
                logger.log(level: level, "\(text)", metadata: ["plugin.command": "\(command)"])
                continue
            case .error(let text, _, _):
                throw await failure(.handshake, "refused to start: \(text)")
            case .hello(let hello):
                if let problem = check(hello, settings: settings, role: role) {
                    throw await failure(.handshake, problem)
                }
                return PluginSession(child: child, reader: reader, hello: hello)
            default:
                throw await failure(.handshake, "expected a hello first, got \(PluginMessage.quote(line))")
            }
        }
    }

    /// What is wrong with a hello for this component, if anything.
    static func check(_ hello: PluginHello, settings: ProcessPluginSettings, role: ComponentRole) -> String? {
        if hello.protocolVersion != ProcessProtocol.version {
            return "it speaks protocol \(hello.protocolVersion); this uplink speaks \(ProcessProtocol.version)"
        }
        let name = "'\(hello.name)'"
        if !hello.roles.isEmpty && !hello.roles.contains(role) {
            return "\(name) is a \(hello.roles.map(\.rawValue).joined(separator: " or ")), not a \(role.rawValue)"
        }
        if role != .source {
            guard let input = hello.input else {
                return "\(name)'s hello must declare \"input\" (raw, record, message or any)"
            }
            if input != "any", let expected = settings.inputKind, input != expected.rawValue {
                return "\(name) accepts \(input) events, but this component sends \(expected.rawValue) (input_kind)"
            }
        }
        if role != .sink {
            guard let output = hello.output else {
                return "\(name)'s hello must declare \"output\" (raw, record or message)"
            }
            if let expected = settings.outputKind, output != expected {
                return "\(name) emits \(output.rawValue) events, but output_kind is \(expected.rawValue)"
            }
        }
        return nil
    }

    /// Starts a component's plugin only to read its hello, then shuts it down: what `uplink plugins --config`
    /// lists for `type: process` components.
    public static func probe(
        _ settings: ProcessPluginSettings, component: String, role: ComponentRole, logger: Logger
    ) async throws(ProcessPluginError) -> PluginHello {
        let session = try await start(settings, component: component, role: role, logger: logger)
        session.child.writeWithoutWaiting(HostMessage.shutdown)
        // Nothing is at stake: SIGTERM soon for plugins that do not read their stdin (sources often do not).
        await session.child.terminate(grace: settings.timeout, termAfter: .milliseconds(500))
        return session.hello
    }

    /// Logs a plugin's line that is not a protocol message: the first ones, then every thousandth, so a plugin
    /// printing debug output to stdout cannot flood the agent's log.
    static func reportViolation(
        _ violation: ProcessProtocolViolation, count: inout Int, context: ComponentContext, command: String
    ) {
        count += 1
        context.metrics.error()
        if count <= 5 || count % 1000 == 0 {
            context.logger.warning(
                "process plugin sent a line that is not a protocol message; ignored",
                metadata: [
                    "plugin.command": "\(command)", "error": "\(violation.message)", "plugin.violations": "\(count)",
                ])
        }
    }

    /// Logs a `log` message with the component's logger.
    static func relay(_ level: Logger.Level, _ text: String, context: ComponentContext, plugin: String) {
        context.logger.log(level: level, "\(text)", metadata: ["plugin.name": "\(plugin)"])
    }
}

/// A flag set once, from any task.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)

    init() {}

    var isSet: Bool { value.load(ordering: .acquiring) }

    func set() { value.store(true, ordering: .releasing) }
}
