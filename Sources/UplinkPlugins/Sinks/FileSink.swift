#if canImport(Glibc)
import Glibc
#endif
import UplinkFileSystem
import UplinkCore

/// `file`: appends one line per event to a file, created with the given mode. Lines are written whole per
/// chunk and the file is fsynced at shutdown (and every `fsync_interval` when set).
public struct FileSink<Input: Event>: SinkStage {
    public static var descriptor: PluginDescriptor {
        PluginDescriptor(
            type: "file", role: .sink,
            summary: "Appends one line per event to a file: raw bytes as is, records as JSON, messages as their body.",
            options: [
                OptionSpec("path", .string, required: true, "the file to append to (created if missing)"),
                OptionSpec("mode", .string, default: "0644", "permissions of a newly created file, octal"),
                OptionSpec("fsync_interval", .duration, "fsync at most this often while writing; always at shutdown"),
            ],
            accepts: Set(EventKind.allCases), output: .none
        ) { context in
            let config = context.config
            let path = config.string("path") ?? ""
            // `run` opens the file at start and stops when it cannot: refuse it here, where it is written.
            if config.contains("path") && path.isEmpty {
                config.error("option 'path' must name a file", at: "path")
            } else if config.contains("path") && context.checksPaths, let problem = FileIO.fileCreationProblem(path) {
                config.error("option 'path' cannot be opened for writing: \(problem)", at: "path")
            }
            let modeText = config.string("mode", default: "0644")
            let mode = mode_t(modeText, radix: 8)
            if mode == nil || mode! > 0o777 { config.error("option 'mode' must be octal permissions like 0644, got '\(modeText)'", at: "mode") }
            let interval = config.duration("fsync_interval")
            func make<E: Event>(_: E.Type) -> BuiltStage {
                .sink(FileSink<E>(path: path, mode: mode ?? 0o644, fsyncInterval: interval))
            }
            return make(context.inputKind!.eventType)
        }
    }

    public var path: String
    public var mode: mode_t
    public var fsyncInterval: Duration?

    public init(path: String, mode: mode_t = 0o644, fsyncInterval: Duration? = nil) {
        self.path = path
        self.mode = mode
        self.fsyncInterval = fsyncInterval
    }

    public func run(context: ComponentContext, input: Inbox<Input>) async throws {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, mode)
        guard fd >= 0 else { throw FileIO.Failure("cannot open", path: path) }
        defer {
            fsync(fd)
            close(fd)
        }
        var writer = LineWriter(fd: fd, path: path)
        let clock = ContinuousClock()
        var lastSync = clock.now
        for await chunk in input {
            try writer.write(chunk)
            context.metrics.sent(events: chunk.count, bytes: chunk.byteCount)
            if let fsyncInterval, clock.now - lastSync >= fsyncInterval {
                fsync(fd)
                lastSync = clock.now
            }
        }
    }
}
