import Logging
import UplinkCore
import UplinkFileSystem

/// Where a transform's dead letters go: the `dead_letter_*` options shared by `json`, `thing_model` and `batch`.
struct DeadLetterSettings: Sendable {
    var path: String?
    var maxBytes = 10 << 20
    var keep = 3

    static let options: [OptionSpec] = [
        OptionSpec(
            "dead_letter_path", .string, default: "<data_dir>/<id>/dead-letters.jsonl",
            "file of rejected events, one JSON line each with the reason and the payload in base64 (mode 0600)"),
        OptionSpec(
            "dead_letter_max_size", .size, default: "10MiB", deprecatedNames: ["dead_letter_max_bytes"],
            "rotate the dead-letter file before it passes this size (the sink's option has the same name)"),
        OptionSpec("dead_letter_keep", .int, default: "3", "rotated dead-letter files to keep (path.1, path.2, …)"),
    ]

    /// Reads the options. When the component's settings never dead-letter (`used` is false), setting them is an
    /// error that says why (`hint`), so an operator does not believe rejects are kept when they are dropped.
    static func read(from config: ConfigReader, used: Bool, hint: String) -> DeadLetterSettings {
        var settings = DeadLetterSettings()
        if !used {
            for option in options where config.contains(option.name) {
                config.error("'\(option.name)' is not used: \(hint)", at: option.name)
            }
            return settings
        }
        settings.path = config.string("dead_letter_path")
        if let path = settings.path, path.isEmpty || path.hasSuffix("/") {
            config.error("'dead_letter_path' must name a file", at: "dead_letter_path")
        }
        settings.maxBytes = config.size("dead_letter_max_size") ?? settings.maxBytes
        if settings.maxBytes < 1024 {
            config.error("'dead_letter_max_size' must be at least 1KiB", at: "dead_letter_max_size")
        }
        settings.keep = config.int("dead_letter_keep", default: settings.keep, range: 0...100)
        return settings
    }

    /// The file (nothing is created until the first dead letter).
    func file(for context: ComponentContext) -> DeadLetterFile {
        DeadLetterFile(
            path: path ?? context.dataDirectory + "/" + context.id + "/dead-letters.jsonl", maxBytes: maxBytes,
            keep: keep)
    }
}

/// Counts, logs and dead-letters the events a transform cannot turn into output.
///
/// Every reject counts as a component error; the first is logged with its reason, the rest are summarised when
/// the transform ends, never one log line per event.
///
/// A dead letter is a final answer only once it is on disk. When writing it fails (the file cannot be opened,
/// written or fsynced), the event is not acknowledged: ``settle(_:)`` resolves the chunk it came from as failed,
/// so the source keeps it (a file's checkpoint stays before it and a restart reads it again). The failure is
/// counted in `errors_total`, logged with the path and errno (the first of a run of failures; the next success is
/// logged too), and reported to `/health` (degraded, then unhealthy) until a dead letter is written again.
struct Rejections {
    let context: ComponentContext
    let deadLetters: DeadLetterFile?
    /// How a reject that is not dead-lettered is counted.
    let dropReason: DropReason
    private(set) var rejected = 0
    private(set) var deadLettered = 0
    private(set) var dropped = 0
    /// Dead letters that could not be written.
    private(set) var writeFailures = 0
    /// A dead-letter write failed since the last ``settle(_:)``: the chunk being handled must not be acknowledged.
    private var unsettledFailure = false
    private let health = DeadLetterHealth()

    init(context: ComponentContext, deadLetters: DeadLetterFile?, dropReason: DropReason = .parseError) {
        self.context = context
        self.deadLetters = deadLetters
        self.dropReason = dropReason
        if deadLetters != nil {
            let health = self.health
            context.metrics.addReporter { health.report() }
        }
    }

    /// Rejects an event: dead-letters `payload` when `deadLetter` is true (and a file is configured), else drops it.
    mutating func reject(_ payload: some Collection<UInt8>, topic: String?, reason: String, deadLetter: Bool) {
        count(reason: reason)
        if deadLetter, let deadLetters {
            do {
                try deadLetters.write(component: context.id, topic: topic, reason: reason, retCode: nil, payload: payload)
                deadLettered += 1
                context.metrics.dropped(1, reason: .deadLetter)
                if health.recovered() {
                    context.logger.info("dead letters are written again", metadata: ["file.path": "\(deadLetters.path)"])
                }
                return
            } catch {
                writeFailures += 1
                unsettledFailure = true
                context.metrics.error()
                if health.failed(error) {
                    context.logger.error(
                        "cannot write a dead letter; the rejected events are not acknowledged, so their source keeps them",
                        metadata: [
                            "file.path": "\(error.path)", "errno": "\(error.code)", "error": "\(error)",
                        ])
                }
            }
        }
        dropped += 1
        context.metrics.dropped(1, reason: dropReason)
    }

    /// Ends the handling of one input chunk: when a dead letter of its events could not be written, its
    /// acknowledgements are resolved as failed (whatever happens to its other events), so the source does not
    /// take the event for delivered. Call it for each chunk, while still holding the chunk.
    mutating func settle(_ acknowledgements: Acknowledgements) {
        guard unsettledFailure else { return }
        unsettledFailure = false
        acknowledgements.resolve(.failed)
    }

    /// Counts a problem with an event that is still sent on (kept as raw text).
    mutating func count(reason: String) {
        rejected += 1
        context.metrics.error()
        if rejected == 1 {
            context.logger.warning(
                "rejected an event; further rejects are counted and summarised at the end",
                metadata: ["event.reason": "\(reason)"])
        }
    }

    /// Closes the dead-letter file (fsync) and logs the totals.
    func finish() {
        deadLetters?.close()
        guard rejected > 0 else { return }
        context.logger.warning(
            "events rejected",
            metadata: [
                "events.rejected": "\(rejected)", "events.dead_lettered": "\(deadLettered)",
                "events.dropped": "\(dropped)", "events.dead_letter_failures": "\(writeFailures)",
            ])
    }
}
