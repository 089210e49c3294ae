import Logging
import UplinkCore

/// `file`: tails files matched by glob patterns, following rotation (rename-and-create and copytruncate),
/// resuming from checkpoints that advance only for delivered events.
///
/// Options: `include` (list of globs, required, `**` allowed), `exclude` (globs; without `/` they match file
/// names), `read_from` (`beginning` | `end`, for files found at the very first start), `delimiter`,
/// `max_line_bytes` (1MiB), `long_lines` (`truncate` | `split`), `partial_line_timeout` (5s), `multiline`
/// (`start_pattern`, `timeout`, `max_lines`), `rotate_wait` (5s), `scan_interval` (2s), `watch` (`auto` |
/// `inotify` | `poll`), `poll_interval` (250ms), `checkpoint_interval` (1s), `fingerprint_bytes` (256),
/// `exit_on_eof` (false).
///
/// A path it may not read (see ``UnreadablePaths``) is warned about with its errno once, counted as an error,
/// and reported as a failure to `/health` until it can be read.
public struct FileTailSource: SourceStage {
    public typealias Output = RawEvent

    public enum ReadFrom: String, Sendable, CaseIterable {
        case beginning, end
    }

    static let options: [OptionSpec] =
        [
            OptionSpec(
                "include", .stringList, required: true,
                "glob patterns of the files to tail, for example [/var/log/app/*.log]; ** matches any number of directories"
            ),
            OptionSpec(
                "exclude", .stringList,
                "glob patterns of files to leave out; a pattern without / matches the file name, for example ['*.gz']"),
            OptionSpec(
                "read_from", .enumeration(ReadFrom.allCases.map(\.rawValue)), default: "beginning",
                "where to start in files found at the very first start; files that appear later are always read from their beginning, and a restart resumes from the checkpoints"
            ),
        ] + FramingOptions.specs()
        + [
            OptionSpec(
                "partial_line_timeout", .duration, default: "5s",
                "a last line without its newline is sent as it is after this long without new data; 0 waits for the newline forever"
            ),
            OptionSpec(
                "multiline", .mapping(MultilineOptions.specs),
                "join lines into one event: { start_pattern: regex (required), timeout: 1s, max_lines: 500 }; a line matching start_pattern begins an event, the lines that follow are added to it"
            ),
            OptionSpec(
                "rotate_wait", .duration, default: "5s",
                "how long a rotated file is still read after its last new data before it is closed"),
            OptionSpec(
                "scan_interval", .duration, default: "2s",
                "how often the include patterns are expanded again to find new files (inotify finds them sooner)"),
            OptionSpec(
                "watch", .enumeration(WatchMode.allCases.map(\.rawValue)), default: "auto",
                "how changes are noticed: inotify, polling, or inotify with polling as fallback"),
            OptionSpec("poll_interval", .duration, default: "250ms", "how often files are checked when polling"),
            OptionSpec(
                "checkpoint_interval", .duration, default: "1s",
                "how often written checkpoints are synced to disk (they are written in place as soon as deliveries move them, and synced at shutdown); a power cut may send again up to this much"),
            OptionSpec(
                "fingerprint_bytes", .size, default: "256",
                "how many leading bytes identify a file besides its device and inode"),
            OptionSpec(
                "exit_on_eof", .bool, default: "false",
                "stop the source once every file has been read to its end (for batch jobs and benchmarks)"),
        ]

    public static let descriptor = PluginDescriptor(
        type: "file", role: .source,
        summary: "Tails files matched by globs; follows rotation; resumes from checkpoints of delivered data.",
        options: options, output: .kind(.raw), keepsState: true
    ) { context in
        .source(FileTailSource(settings: Settings.read(context.config)))
    }

    /// The validated options.
    struct Settings: Sendable {
        var filter = PathFilter(include: [], exclude: [])
        var readFrom = ReadFrom.beginning
        var framing = FramingOptions(mode: .newline, maxFrameBytes: 1 << 20, longFrames: .truncate)
        var partialLineTimeout: Duration = .seconds(5)
        var multiline: MultilineOptions? = nil
        var rotateWait: Duration = .seconds(5)
        var scanInterval: Duration = .seconds(2)
        var watch = WatchMode.auto
        var pollInterval: Duration = .milliseconds(250)
        var checkpointInterval: Duration = .seconds(1)
        var fingerprintBytes = 256
        var exitOnEOF = false
        var readSize = 65536

        static func read(_ config: ConfigReader) -> Settings {
            var settings = Settings()
            let include = config.stringList("include") ?? []
            if config.contains("include") && include.isEmpty {
                config.error("option 'include' must list at least one pattern", at: "include")
            }
            settings.filter.include = globs(include, option: "include", config: config)
            settings.filter.exclude = globs(config.stringList("exclude") ?? [], option: "exclude", config: config)
            if settings.filter.include.contains(where: { !$0.isAbsolute }) {
                config.warning(
                    "relative 'include' patterns depend on the directory uplink runs in; prefer absolute paths",
                    at: "include")
            }
            settings.readFrom = config.enumeration("read_from", default: .beginning)
            settings.framing = FramingOptions.read(config)
            settings.partialLineTimeout = config.duration("partial_line_timeout", default: .seconds(5))
            settings.multiline = MultilineOptions.read(config)
            settings.rotateWait = config.duration("rotate_wait", default: .seconds(5))
            settings.scanInterval = positive(config, "scan_interval", default: .seconds(2))
            settings.watch = config.enumeration("watch", default: .auto)
            settings.pollInterval = positive(config, "poll_interval", default: .milliseconds(250))
            settings.checkpointInterval = positive(config, "checkpoint_interval", default: .seconds(1))
            settings.fingerprintBytes = config.size("fingerprint_bytes", default: 256)
            if settings.fingerprintBytes < 16 || settings.fingerprintBytes > 65536 {
                config.error("option 'fingerprint_bytes' must be between 16 and 65536", at: "fingerprint_bytes")
                settings.fingerprintBytes = 256
            }
            settings.exitOnEOF = config.bool("exit_on_eof", default: false)
            return settings
        }

        private static func globs(_ patterns: [String], option: String, config: ConfigReader) -> [Glob] {
            var result: [Glob] = []
            for pattern in patterns {
                do {
                    result.append(try Glob(pattern))
                } catch {
                    config.error("invalid pattern '\(pattern)' in '\(option)': \(error)", at: option)
                }
            }
            return result
        }

        private static func positive(_ config: ConfigReader, _ name: String, default fallback: Duration) -> Duration {
            let value = config.duration(name, default: fallback)
            guard value > .zero else {
                config.error("option '\(name)' must be more than 0", at: name)
                return fallback
            }
            return value
        }
    }

    let settings: Settings

    init(settings: Settings) {
        self.settings = settings
    }

    /// Tails files matching `include` with the other options at their defaults (for embedding and tests).
    public init(include: [String], exclude: [String] = [], readFrom: ReadFrom = .beginning) throws {
        var settings = Settings()
        settings.filter = PathFilter(
            include: try include.map { try Glob($0) }, exclude: try exclude.map { try Glob($0) })
        settings.readFrom = readFrom
        self.settings = settings
    }

    public func run(context: ComponentContext, output: Outbox<RawEvent>) async throws {
        let directory = try context.stateDirectory()
        let book = CheckpointBook(
            directory: directory, interval: settings.checkpointInterval, logger: context.logger,
            metrics: context.metrics)
        // Whatever ends the loop (cancellation, end of files, an error), the final checkpoint is written once
        // the events already sent are acknowledged.
        defer { book.stop() }
        let tailer = try FileTailer(settings: settings, context: context, output: output, book: book)
        defer { tailer.close() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Acknowledgements write the checkpoint themselves; the read loop also syncs between reads, but it
            // can wait a long time on a full downstream buffer: this syncs every interval anyway, so a power cut
            // re-reads only what the last interval wrote.
            group.addTask { [book, interval = settings.checkpointInterval] in
                while true {
                    try await Task.sleep(for: interval)
                    book.writeIfDue()
                }
            }
            defer { group.cancelAll() }
            try await tailer.run()
        }
    }
}
