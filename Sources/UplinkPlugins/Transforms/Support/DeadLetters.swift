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
/// A dead letter is a final answer only once it is on disk. The events of one chunk are appended as they are
/// rejected and made durable together, by one fsync in ``settle(_:)``, before the chunk is acknowledged. When
/// writing fails (the file cannot be opened, written or fsynced), the events are not acknowledged: ``settle(_:)``
/// resolves the chunk they came from as failed, so the source keeps them (a file's checkpoint stays before them
/// and a restart reads them again). The failure is counted in `errors_total`, logged with the path and errno
/// (the first of a run of failures; the next success is logged too), and reported to `/health` (degraded, then
/// unhealthy) until a dead letter is written again.
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
    /// Dead letters appended since the last ``settle(_:)``, durable only once it commits them, and the ticket of
    /// the last one (committing it covers the earlier ones: the file syncs what was written before it).
    private var uncommitted = 0
    private var lastTicket: DeadLetterFile.Ticket?
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
    /// A dead letter is appended now and made durable by ``settle(_:)``.
    mutating func reject(_ payload: some Collection<UInt8>, topic: String?, reason: String, deadLetter: Bool) {
        count(reason: reason)
        if deadLetter, let deadLetters {
            do {
                lastTicket = try deadLetters.append(
                    component: context.id, topic: topic, reason: reason, retCode: nil, payload: payload)
                uncommitted += 1
                return
            } catch {
                // The chunk fails whatever else happens: what it appended before counts as failed with it (a
                // failed rotation may have cut it off the file).
                writeFailed(error, events: 1 + uncommitted)
                uncommitted = 0
                lastTicket = nil
                return
            }
        }
        dropped += 1
        context.metrics.dropped(1, reason: dropReason)
    }

    /// Ends the handling of one input chunk: makes its dead letters durable (one fsync), and when that or an
    /// earlier write failed, resolves its acknowledgements as failed (whatever happens to its other events), so
    /// the source does not take the events for delivered. Call it for each chunk, while still holding the chunk.
    mutating func settle(_ acknowledgements: Acknowledgements) {
        if let deadLetters, let ticket = lastTicket {
            let events = uncommitted
            uncommitted = 0
            lastTicket = nil
            do {
                try deadLetters.commit(ticket)
                deadLettered += events
                context.metrics.dropped(events, reason: .deadLetter)
                if health.recovered() {
                    context.logger.info("dead letters are written again", metadata: ["file.path": "\(deadLetters.path)"])
                }
            } catch {
                writeFailed(error, events: events)
            }
        }
        guard unsettledFailure else { return }
        unsettledFailure = false
        acknowledgements.resolve(.failed)
    }

    /// Counts dead letters that are not on disk; the chunk they came from is failed by ``settle(_:)``.
    private mutating func writeFailed(_ error: FileIO.Failure, events: Int) {
        writeFailures += events
        unsettledFailure = true
        context.metrics.error()
        dropped += events
        context.metrics.dropped(events, reason: dropReason)
        if health.failed(error) {
            context.logger.error(
                "cannot write a dead letter; the rejected events are not acknowledged, so their source keeps them",
                metadata: [
                    "file.path": "\(error.path)", "errno": "\(error.code)", "error": "\(error)",
                ])
        }
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
