import Logging
import Synchronization
import UplinkCore

/// `exec`: runs a command and frames its standard output into events, on a schedule (each run's output with its
/// exit status) or as a long-running stream (restarted with back-off when it exits).
///
/// A scheduled run's events carry, in their origin's attributes, `exit_code` (or `signal` when it was killed),
/// `pid` and, when it overran `timeout`, `timed_out`; the `json` transform's `attributes_field` puts them in the
/// record. A streaming command's events carry its `pid` (its exit status is logged when it exits).
///
/// Options: `command` (required: an argv list; with `shell: true` a command line for /bin/sh), `shell` (false), `env`
/// (mapping added to the agent's environment), `clear_env` (false), `pass_secrets` (false), `working_dir`, `mode` (`scheduled` |
/// `streaming`), `interval` (1m), `timeout` (the interval), `max_output_bytes` (1MiB), `restart` (true),
/// `restart_delay` (1s), `max_restart_delay` (1m), `delimiter`, `max_line_bytes`, `long_lines`.
public struct ExecSource: SourceStage {
    public typealias Output = RawEvent

    public enum Mode: String, Sendable, CaseIterable {
        /// Run every `interval`; a run's output goes out when it exits, with its exit status.
        case scheduled
        /// Keep the command running; lines go out as they are written.
        case streaming
    }

    static let options: [OptionSpec] =
        [
            OptionSpec(
                "command", .stringList, required: true,
                "the program and its arguments, for example [df, -P]; with shell: true, a command line such as ['df -P | tail -n +2']"
            ),
            OptionSpec("shell", .bool, default: "false", "run the command with /bin/sh -c (pipes, globs, variables)"),
            OptionSpec("env", .map(key: "variable name", value: "value"), "environment variables added to (or replacing) the agent's own"),
            OptionSpec("clear_env", .bool, default: "false", "start from an empty environment instead of the agent's"),
            OptionSpec(
                "pass_secrets", .bool, default: "false",
                "also pass the variables the configuration reads secrets from (device_secret: ${VAR}, …); better: give the one the command needs in env"
            ),
            OptionSpec("working_dir", .string, "directory the command runs in (default: the agent's)"),
            OptionSpec(
                "mode", .enumeration(Mode.allCases.map(\.rawValue)), default: "scheduled",
                "scheduled: run every interval; streaming: keep it running and restart it when it exits"),
            OptionSpec("interval", .duration, default: "1m", "scheduled: time between the starts of two runs"),
            OptionSpec(
                "timeout", .duration,
                "scheduled: a run still going after this long is killed with its process group (default: interval)"),
            OptionSpec(
                "max_output_bytes", .size, default: "1MiB",
                "scheduled: output of one run kept at most; the rest is discarded and counted"),
            OptionSpec("restart", .bool, default: "true", "streaming: start the command again when it exits"),
            OptionSpec(
                "restart_delay", .duration, default: "1s",
                "streaming: first wait before a restart; doubles while it keeps exiting quickly"),
            OptionSpec("max_restart_delay", .duration, default: "1m", "streaming: longest wait before a restart"),
        ] + FramingOptions.specs()

    public static let descriptor = PluginDescriptor(
        type: "exec", role: .source,
        summary: "Runs a command on a schedule or as a stream; frames its output; stderr goes to the log.",
        options: options, output: .kind(.raw)
    ) { context in
        .source(ExecSource(settings: Settings.read(context.config)))
    }

    struct Settings: Sendable {
        var arguments: [String] = []
        var environment: [(String, String)] = []
        var clearEnvironment = false
        /// Whether the command inherits the variables secrets are read from (``SecretVariables``).
        var passSecrets = false
        var workingDirectory: String? = nil
        var mode = Mode.scheduled
        var interval: Duration = .seconds(60)
        var timeout: Duration = .seconds(60)
        var maxOutputBytes = 1 << 20
        var restart = true
        var restartDelay: Duration = .seconds(1)
        var maxRestartDelay: Duration = .seconds(60)
        var framing = FramingOptions(mode: .newline, maxFrameBytes: 1 << 20, longFrames: .truncate)

        static func read(_ config: ConfigReader) -> Settings {
            var settings = Settings()
            let shell = config.bool("shell", default: false)
            if let arguments = config.stringList("command") {
                if arguments.isEmpty || arguments[0].isEmpty {
                    config.error("option 'command' must start with a program name, for example [df, -P]", at: "command")
                }
                // With a shell the list is one command line: [ "df -P | tail -n +2" ].
                settings.arguments = shell ? ["/bin/sh", "-c", arguments.joined(separator: " ")] : arguments
            }
            settings.environment = config.stringMap("env") ?? []
            for (name, _) in settings.environment where name.isEmpty || name.contains("=") {
                config.error("environment variable names must be non-empty and have no '=', got '\(name)'", at: "env")
            }
            settings.clearEnvironment = config.bool("clear_env", default: false)
            settings.passSecrets = config.bool("pass_secrets", default: false)
            settings.workingDirectory = config.string("working_dir")
            settings.mode = config.enumeration("mode", default: .scheduled)
            settings.interval = config.duration("interval", default: .seconds(60))
            if settings.interval <= .zero { config.error("option 'interval' must be more than 0", at: "interval") }
            settings.timeout = config.duration("timeout") ?? settings.interval
            if settings.timeout <= .zero { config.error("option 'timeout' must be more than 0", at: "timeout") }
            settings.maxOutputBytes = config.size("max_output_bytes", default: 1 << 20)
            if settings.maxOutputBytes < 1 {
                config.error("option 'max_output_bytes' must be at least 1", at: "max_output_bytes")
            }
            settings.restart = config.bool("restart", default: true)
            settings.restartDelay = config.duration("restart_delay", default: .seconds(1))
            settings.maxRestartDelay = config.duration("max_restart_delay", default: .seconds(60))
            if settings.restartDelay <= .zero {
                config.error("option 'restart_delay' must be more than 0", at: "restart_delay")
            }
            if settings.maxRestartDelay < settings.restartDelay {
                config.error(
                    "option 'max_restart_delay' must not be less than 'restart_delay'", at: "max_restart_delay")
            }
            let scheduledOnly = ["interval", "timeout", "max_output_bytes"]
            let streamingOnly = ["restart", "restart_delay", "max_restart_delay"]
            for name in settings.mode == .streaming ? scheduledOnly : streamingOnly where config.contains(name) {
                config.warning("option '\(name)' has no effect in \(settings.mode.rawValue) mode", at: name)
            }
            settings.framing = FramingOptions.read(config)
            return settings
        }
    }

    let settings: Settings

    init(settings: Settings) {
        self.settings = settings
    }

    /// The command as shown in logs and in events' location.
    var commandLine: String {
        settings.arguments.map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " ")
    }

    /// `KEY=value` strings: the agent's environment (unless cleared) without the secrets' variables (unless
    /// `pass_secrets`), with `env` applied.
    func environment() -> [String] {
        let inherited = settings.clearEnvironment ? [] : ChildEnvironment.inherited(passSecrets: settings.passSecrets)
        return ChildEnvironment.entries(inherited, overrides: settings.environment)
    }

    public func run(context: ComponentContext, output: Outbox<RawEvent>) async throws {
        switch settings.mode {
        case .scheduled: try await runScheduled(context: context, output: output)
        case .streaming: try await runStreaming(context: context, output: output)
        }
    }
}
