import ArgumentParser
import CUplinkLinux
public import UplinkCore
import UplinkPlugins

/// The `uplink` command line as a library, so a user's package can build its own `uplink` binary with its
/// plugins registered, without forking Uplink:
///
/// ```swift
/// import UplinkCLI
/// import UplinkPlugins
///
/// await UplinkCLI.main(adding: [MyTransform.descriptor])
/// ```
///
/// Every command that builds a topology (`run`, `validate`, `plugins`, `graph`, `auth`, `publish`) uses the
/// registry given here, plus the shared objects a configuration lists under `plugins:`.
public enum UplinkCLI {
    /// Parses the process's arguments, runs the command and exits (with 78 for an invalid configuration).
    public static func main(registry: PluginRegistry) async {
        // A few malloc arenas, not glibc's 8 per core, and batch bodies mapped on their own (see the constants).
        uplink_tune_malloc(UPLINK_MALLOC_ARENAS, UPLINK_MALLOC_MMAP_THRESHOLD)
        if let hint = CommandHint.unknownCommand(in: Array(CommandLine.arguments.dropFirst()), root: CommandHint.Node(Uplink.self)) {
            Uplink.exit(withError: ValidationError(hint))
        }
        await CommandContext.$registry.withValue(registry) {
            await Uplink.main()
        }
    }

    /// The built-ins plus `plugins`: the one extra line a custom binary needs. A descriptor that kept the
    /// default origin is listed by `uplink plugins` as compiled into this binary, not as a built-in.
    public static func main(adding plugins: [PluginDescriptor]) async {
        var registry = Builtins.registry
        let program = CommandLine.arguments.first.map { String($0.split(separator: "/").last ?? "") } ?? "uplink"
        for var descriptor in plugins {
            if descriptor.origin == "built-in" { descriptor.origin = "compiled into \(program)" }
            registry.register(descriptor)
        }
        await main(registry: registry)
    }
}

/// What every command runs with. A task-local rather than a global: argument-parser builds the commands
/// itself, so the registry cannot be passed to them, and a task-local needs no lock and keeps tests that run
/// commands with different registries apart.
enum CommandContext {
    @TaskLocal static var registry: PluginRegistry = Builtins.registry
}
