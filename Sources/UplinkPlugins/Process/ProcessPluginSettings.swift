import UplinkCore
import UplinkYAML

/// The options of `type: process` (as a source, a transform or a sink):
///
/// | key | type | default | |
/// |---|---|---|---|
/// | `command` | list of strings | required | argv; the first word is searched in PATH unless it has a `/` |
/// | `env` | mapping of strings | | added to the agent's environment |
/// | `pass_secrets` | bool | false | also pass the variables the configuration reads secrets from (``SecretVariables``) |
/// | `working_dir` | string | the config file's directory | relative paths are resolved against it too |
/// | `input_kind` | raw, record, message | the inputs' kind | transform, sink; must match the plugin's hello |
/// | `output_kind` | raw, record, message | record | source, transform; must match the plugin's hello |
/// | `config` | mapping | `{}` | handed to the plugin in `init` |
/// | `timeout` | duration | 10s | for the hello, for an answer to a batch, and for exiting after shutdown |
/// | `restart_backoff` | duration | 500ms | delay before the first restart, doubled up to 30s |
/// | `max_restarts` | integer | 5 | consecutive crashes or timeouts without progress before the component fails |
/// | `max_in_flight` | integer | 4 | batches sent and not yet acknowledged (back-pressure) |
/// | `batch_max_events` | integer | 256 | events per batch message |
public struct ProcessPluginSettings: Sendable {
    public var command: [String]
    public var environment: [(String, String)]
    /// Whether the plugin inherits the variables the configuration reads secrets from.
    public var passSecrets = false
    public var workingDirectory: String?
    public var inputKind: EventKind?
    public var outputKind: EventKind?
    public var config: Value
    public var timeout: Duration
    public var restartBackoff: Duration
    public var maxBackoff: Duration = .seconds(30)
    public var maxRestarts: Int
    public var maxInFlight: Int
    public var batchMaxEvents: Int

    public init(
        command: [String], environment: [(String, String)] = [], workingDirectory: String? = nil,
        inputKind: EventKind? = nil, outputKind: EventKind? = nil, config: Value = .object(Fields()),
        timeout: Duration = .seconds(10), restartBackoff: Duration = .milliseconds(500), maxRestarts: Int = 5,
        maxInFlight: Int = 4, batchMaxEvents: Int = 256
    ) {
        self.command = command
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.inputKind = inputKind
        self.outputKind = outputKind
        self.config = config
        self.timeout = timeout
        self.restartBackoff = restartBackoff
        self.maxRestarts = maxRestarts
        self.maxInFlight = maxInFlight
        self.batchMaxEvents = batchMaxEvents
    }

    /// The command as written, for messages and listings.
    public var commandLine: String { command.joined(separator: " ") }

    static let kinds = EventKind.allCases.map(\.rawValue)

    /// The options table of each role (sources have no input, sinks no output and no batch outputs).
    static func options(for role: ComponentRole) -> [OptionSpec] {
        var options = [
            OptionSpec(
                "command", .stringList, required: true,
                "the plugin's argv, e.g. [python3, enrich.py]; the first word is searched in PATH"),
            OptionSpec("env", .map(key: "variable name", value: "value"), "environment variables added to the agent's for the plugin"),
            OptionSpec(
                "pass_secrets", .bool, default: "false",
                "also pass the variables the configuration reads secrets from (device_secret: ${VAR}, …); better: give the one the plugin needs in env"
            ),
            OptionSpec(
                "working_dir", .string, default: "the config file's directory",
                "where the plugin runs; relative paths in `command` start here"),
        ]
        if role != .source {
            options.append(
                OptionSpec(
                    "input_kind", .enumeration(kinds), default: "the inputs' kind",
                    "the kind sent to the plugin; its hello must accept it"))
        }
        if role != .sink {
            options.append(
                OptionSpec(
                    "output_kind", .enumeration(kinds), default: "record",
                    "the kind the plugin emits; its hello must declare the same"))
        }
        options += [
            OptionSpec("config", .map(key: "name", value: "any YAML value (sent as JSON)"), default: "{}", "a mapping handed to the plugin in its init message"),
            OptionSpec(
                "timeout", .duration, default: "10s",
                "for the hello, for an answer to a batch, and for exiting after shutdown; a plugin that hangs longer is killed and restarted"
            ),
            OptionSpec(
                "restart_backoff", .duration, default: "500ms",
                "delay before restarting a crashed plugin, doubled on each consecutive crash up to 30s"),
            OptionSpec(
                "max_restarts", .int, default: "5",
                "consecutive crashes or timeouts without progress before the component fails"),
        ]
        if role != .source {
            options += [
                OptionSpec(
                    "max_in_flight", .int, default: "4",
                    "batches sent to the plugin and not yet acknowledged; the inbox is not read beyond"),
                OptionSpec("batch_max_events", .int, default: "256", "events per batch message"),
            ]
        }
        return options
    }

    /// Reads the settings, reporting located errors through the reader.
    static func read(_ config: ConfigReader, role: ComponentRole, inputKind: EventKind?) -> ProcessPluginSettings {
        let command = config.stringList("command") ?? []
        if config.contains("command") && command.isEmpty {
            config.error("option 'command' must name a program, for example [python3, plugin.py]", at: "command")
        }
        var settings = ProcessPluginSettings(command: command)
        settings.environment = config.stringMap("env") ?? []
        settings.passSecrets = config.bool("pass_secrets", default: false)
        let configDirectory = FileIO.parentDirectory(of: config.file)
        if let directory = config.string("working_dir") {
            settings.workingDirectory = directory.hasPrefix("/") ? directory : configDirectory + "/" + directory
        } else {
            settings.workingDirectory = configDirectory
        }
        if role != .source {
            let declared: EventKind? = config.enumeration("input_kind")
            if let declared, let inputKind, declared != inputKind {
                config.error(
                    "option 'input_kind' is \(declared.rawValue), but the inputs produce \(inputKind.rawValue) events",
                    at: "input_kind")
            }
            settings.inputKind = declared ?? inputKind
        }
        if role != .sink {
            settings.outputKind = config.enumeration("output_kind", default: EventKind.record)
        }
        if let node = config.value("config") {
            if node.mapping == nil {
                config.error("option 'config' must be a mapping, not \(node.kindDescription)", at: "config")
            } else {
                settings.config = YAMLValue.convert(node)
            }
        }
        settings.timeout = config.duration("timeout", default: settings.timeout)
        if settings.timeout <= .zero { config.error("option 'timeout' must be more than 0", at: "timeout") }
        settings.restartBackoff = config.duration("restart_backoff", default: settings.restartBackoff)
        settings.maxRestarts = config.int("max_restarts", default: settings.maxRestarts, range: 0...1_000_000)
        if role != .source {
            settings.maxInFlight = config.int("max_in_flight", default: settings.maxInFlight, range: 1...65536)
            settings.batchMaxEvents = config.int(
                "batch_max_events", default: settings.batchMaxEvents, range: 1...1_000_000)
        }
        return settings
    }
}

/// YAML to JSON for `config:` (`Value.init(yaml:)`, reading `1_000` as an integer as options do): quoted
/// scalars stay strings, so a plugin gets `"007"` when the operator wrote `"007"`.
enum YAMLValue {
    static func convert(_ node: YAMLNode) -> Value {
        Value(yaml: node, integerUnderscores: true)
    }
}
