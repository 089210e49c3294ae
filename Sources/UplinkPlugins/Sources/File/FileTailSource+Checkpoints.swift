import Logging
import Synchronization
import UplinkFileSystem
import UplinkCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One file's checkpoint as stored: which file (identity and last known path) and where to resume.
struct CheckpointEntry: Sendable, Equatable {
    var identity: FileIdentity
    var path: String
    var offset: Int64
    /// Rotated away (or a copytruncate copy): no longer matched by the patterns but still to be read to its end.
    var rotated = false
    /// Byte ranges after `offset` whose events were delivered (acknowledged out of order): a restart skips them.
    /// Sorted, disjoint, at most ``CheckpointSlots/maximumRanges``; not in the first (JSON) format.
    var delivered: [Range<Int64>] = []
}

/// The first checkpoint format, `checkpoints.json`: `{"version":1,"files":[{"path":…,"device":…,"inode":…,
/// "fingerprint_bytes":…,"fingerprint":"hex","offset":…}]}`, rewritten atomically on every write. It is read
/// once, when no slot file (``CheckpointSlots``) exists yet, and removed once its successor is on disk.
enum CheckpointCodec {
    static let version: Int64 = 1

    struct Failure: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    static func encode(_ entries: [CheckpointEntry]) -> [UInt8] {
        var files: [Value] = []
        for entry in entries {
            var fields = Fields()
            fields.append("path", .string(entry.path))
            fields.append("device", .int(Int64(bitPattern: entry.identity.device)))
            fields.append("inode", .int(Int64(bitPattern: entry.identity.inode)))
            fields.append("fingerprint_bytes", .int(Int64(entry.identity.fingerprint.length)))
            fields.append("fingerprint", .string(entry.identity.fingerprint.hexHash))
            fields.append("offset", .int(entry.offset))
            if entry.rotated { fields.append("rotated", .bool(true)) }
            files.append(.object(fields))
        }
        var root = Fields()
        root.append("version", .int(version))
        root.append("files", .array(files))
        var bytes: [UInt8] = []
        root.appendJSON(to: &bytes)
        bytes.append(0x0A)
        return bytes
    }

    static func decode(_ bytes: [UInt8]) throws -> [CheckpointEntry] {
        guard case .object(let root) = try JSONReader.parse(bytes) else {
            throw Failure(message: "the checkpoint file is not a JSON object")
        }
        guard case .int(let version)? = root["version"], version == Self.version else {
            throw Failure(message: "unsupported checkpoint version")
        }
        guard case .array(let files)? = root["files"] else { throw Failure(message: "no 'files' list") }
        var entries: [CheckpointEntry] = []
        for file in files {
            guard case .object(let fields) = file,
                case .string(let path)? = fields["path"],
                case .int(let device)? = fields["device"],
                case .int(let inode)? = fields["inode"],
                case .int(let length)? = fields["fingerprint_bytes"],
                case .string(let hash)? = fields["fingerprint"],
                let hashValue = UInt64(hash, radix: 16),
                case .int(let offset)? = fields["offset"],
                length >= 0, offset >= 0
            else { throw Failure(message: "a malformed file entry") }
            let identity = FileIdentity(
                device: UInt64(bitPattern: device), inode: UInt64(bitPattern: inode),
                fingerprint: FileFingerprint(length: Int(length), hash: hashValue))
            var rotated = false
            if case .bool(let flag)? = fields["rotated"] { rotated = flag }
            entries.append(CheckpointEntry(identity: identity, path: path, offset: offset, rotated: rotated))
        }
        return entries
    }
}


/// The file source's checkpoints: one record per file (live, or dormant when no longer tailed), advanced only
/// by acknowledgements, and written in place into `checkpoints.slots` (``CheckpointSlotFile``).
///
/// A checkpoint is written as soon as an acknowledgement moves it (one `pwrite` into the page cache, which a
/// killed process does not lose), so a restart after `kill -9` sends again only what was in flight. Besides the
/// offset up to which everything was delivered, it records the byte ranges acknowledged out of order after it
/// (``OffsetTracker/deliveredRanges(limit:)``, at most ``CheckpointSlots/maximumRanges`` per file), which the
/// restart skips: a batch waiting for a retry does not make every later batch be sent again. It is
/// synced every `interval`, and only when something was written: a power cut may lose up to `interval` of
/// checkpoints (those lines are sent again), never a checkpoint beyond delivered data.
///
/// Acknowledgements arrive on the sinks' tasks, possibly after the source stopped, so the book outlives the
/// read loop: the loop syncs every `interval` while it runs, and once the source has stopped the last
/// acknowledgement writes and syncs the final checkpoint (or ``stop()`` itself when nothing is in flight).
final class CheckpointBook: Sendable {
    enum Status: Sendable, Equatable {
        /// A file being read.
        case live
        /// Not read now (rotated away, released, or not found yet at startup); kept so that the file is
        /// recognised if it is seen again.
        case dormant
        /// Dropped from the file; kept in memory only until its chunks in flight are acknowledged.
        case forgotten
    }

    struct Record: Sendable {
        var identity: FileIdentity
        var path: String
        var tracker: OffsetTracker
        var status: Status
        var rotated = false
        var stallReported = false
    }

    private struct State: Sendable {
        var records: [Int: Record] = [:]
        var nextID = 1
        var outstanding = 0
        var stopped = false
        var finalWritten = false
        var dirty = false
        /// A checkpoint left out delivered ranges (more than the format holds); logged once.
        var rangesOmittedReported = false
    }

    /// The file's writer and what the book knows about its failures; only touched under its lock, which also
    /// serialises writes, so an older snapshot never replaces a newer one.
    private struct Writer {
        var file: CheckpointSlotFile
        var lastSync = ContinuousClock.now
        /// The first checkpoint file, removed once the slot file holds its successor on disk.
        var legacyPath: String?
        var failures = FailureReport()
        /// After a failed write, changes wait until then (one `interval`) instead of failing on every
        /// acknowledgement.
        var retryAfter: ContinuousClock.Instant?

        func backingOff(now: ContinuousClock.Instant = .now) -> Bool { retryAfter.map { now < $0 } ?? false }
    }

    /// Write and sync failures: each one counts in `errors_total`; the log gets the first one, then at most
    /// one line a minute with how many happened meanwhile.
    struct FailureReport: Sendable {
        static let logInterval: Duration = .seconds(60)
        var lastLogged: ContinuousClock.Instant?
        var suppressed = 0

        /// Returns how many failures the line to log now stands for, nil when it is not time to log.
        mutating func record(now: ContinuousClock.Instant = .now) -> Int? {
            suppressed += 1
            if let lastLogged, now - lastLogged < Self.logInterval { return nil }
            defer {
                lastLogged = now
                suppressed = 0
            }
            return suppressed
        }
    }

    /// The slot file: `checkpoints.slots` in the state directory.
    let path: String
    /// The first format's file, `checkpoints.json`, read once to migrate.
    let legacyPath: String
    let interval: Duration
    let logger: Logger
    let metrics: ComponentMetrics?
    /// True when no checkpoint file existed: the source has never run with this id and state directory.
    let firstStart: Bool
    /// Checkpoint writes that left out some file's delivered ranges (more gaps than ``CheckpointSlots/maximumRanges``).
    let rangesOmitted: ExtraCounter?
    private let state = Mutex(State())
    private let writer: Mutex<Writer>

    init(directory: String, interval: Duration, logger: Logger, metrics: ComponentMetrics? = nil) {
        path = directory + "/checkpoints.slots"
        legacyPath = directory + "/checkpoints.json"
        self.interval = interval
        self.logger = logger
        self.metrics = metrics
        let file = CheckpointSlotFile(path: path)
        var entries: [CheckpointEntry] = []
        var first = false
        var migrateFrom: String? = nil
        do {
            if let recovery = try file.load() {
                entries = recovery.newest?.entries ?? []
                if recovery.damagedSlots > 0 {
                    // Unknown files are then read from their beginning: duplicates rather than loss.
                    logger.warning(
                        recovery.newest == nil
                            ? "the checkpoint file is damaged; files are read again from their beginning"
                            : "a checkpoint slot is damaged (a torn write); resuming from the other slot",
                        metadata: ["checkpoint.path": "\(path)", "checkpoint.damaged_slots": "\(recovery.damagedSlots)"])
                    metrics?.error()
                }
            } else if FileIO.fileExists(legacyPath) {
                migrateFrom = legacyPath
                entries = try CheckpointCodec.decode(try FileIO.readFile(legacyPath, limit: 64 << 20))
            } else {
                first = true
            }
        } catch {
            logger.error(
                "cannot read the checkpoint file; files are read again from their beginning",
                metadata: ["checkpoint.path": "\(migrateFrom ?? path)", "error": "\(error)"])
            metrics?.error()
        }
        firstStart = first
        rangesOmitted = metrics?.counter(
            "uplink_file_checkpoint_ranges_omitted_total",
            help: "checkpoint writes that left out delivered ranges beyond the per-file maximum (sent again after a crash)")
        writer = Mutex(Writer(file: file, legacyPath: migrateFrom))
        state.withLock { state in
            for entry in entries {
                state.records[state.nextID] = Record(
                    identity: entry.identity, path: entry.path,
                    tracker: OffsetTracker(committed: entry.offset, carried: entry.delivered),
                    status: .dormant, rotated: entry.rotated)
                state.nextID += 1
            }
            // A migrated checkpoint is written in the new format at the first chance; a first start writes an
            // empty one, so the next start knows it is not the first (`read_from` applies to the first only).
            state.dirty = migrateFrom != nil || first
        }
    }

    // MARK: Records

    /// Records not read now, with where they stopped.
    func dormantEntries() -> [(id: Int, entry: CheckpointEntry)] {
        state.withLock { state in
            state.records.compactMap { id, record in
                record.status == .dormant ? (id, Self.entry(record).entry) : nil
            }.sorted { $0.id < $1.id }
        }
    }

    /// What the checkpoint holds for a record, and whether delivered ranges had to be left out.
    private static func entry(_ record: Record) -> (entry: CheckpointEntry, omitted: Bool) {
        let (ranges, omitted) = record.tracker.deliveredRanges(limit: CheckpointSlots.maximumRanges)
        return (
            CheckpointEntry(
                identity: record.identity, path: record.path, offset: record.tracker.committed,
                rotated: record.rotated, delivered: ranges),
            omitted > 0
        )
    }

    /// The delivered ranges a reader opening the record's file must skip; none (they are forgotten) when one
    /// ends past `fileSize`: the file is shorter than what was delivered, so it is not that content any more.
    func carriedRanges(_ id: Int, fileSize: Int64) -> [Range<Int64>] {
        state.withLock { state in
            guard let carried = state.records[id]?.tracker.carried else { return [] }
            if let last = carried.last, last.upperBound > fileSize {
                state.records[id]!.tracker.dropCarried()
                state.dirty = true
                return []
            }
            return carried
        }
    }

    /// The reader skipped a carried range (its events were delivered by an earlier run).
    func skipCarried(_ id: Int, _ range: Range<Int64>) {
        state.withLock { state in
            state.records[id]?.tracker.skipCarried(range)
            state.dirty = true
        }
    }

    /// A new file: returns its record id.
    func create(identity: FileIdentity, path: String, offset: Int64) -> Int {
        state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            state.records[id] = Record(
                identity: identity, path: path, tracker: OffsetTracker(committed: offset), status: .live)
            state.dirty = true
            return id
        }
    }

    /// A dormant record's file is read again.
    func revive(_ id: Int, identity: FileIdentity, path: String, rotated: Bool) {
        state.withLock { state in
            state.records[id]?.status = .live
            state.records[id]?.identity = identity
            state.records[id]?.path = path
            state.records[id]?.rotated = rotated
            state.dirty = true
        }
    }

    func update(_ id: Int, identity: FileIdentity? = nil, path: String? = nil, rotated: Bool? = nil) {
        state.withLock { state in
            guard state.records[id] != nil else { return }
            if let rotated, state.records[id]!.rotated != rotated {
                state.records[id]!.rotated = rotated
                state.dirty = true
            }
            if let identity, state.records[id]!.identity != identity {
                state.records[id]!.identity = identity
                state.dirty = true
            }
            if let path, state.records[id]!.path != path {
                state.records[id]!.path = path
                state.dirty = true
            }
        }
    }

    /// The file is no longer read: kept as dormant (it still exists) or forgotten (deleted or gone).
    func release(_ id: Int, keep: Bool, path: String? = nil) {
        state.withLock { state in
            guard var record = state.records[id] else { return }
            if let path { record.path = path }
            if keep {
                record.status = .dormant
                state.records[id] = record
            } else if record.tracker.inFlight == 0 {
                state.records[id] = nil
            } else {
                record.status = .forgotten
                state.records[id] = record
            }
            state.dirty = true
        }
    }

    func committed(_ id: Int) -> Int64? {
        state.withLock { $0.records[id]?.tracker.committed }
    }

    // MARK: Acknowledgements

    /// The acknowledgement for a chunk that completes the file up to `end`, its events starting at `start`: the
    /// record advances when it (and everything sent before it) is delivered. A stage may cut it at an event's
    /// offset (`batch`, where a batch ends inside the chunk): each part is then recorded as it finishes, so a
    /// delivered part becomes a delivered range even while the rest of the chunk is in flight.
    /// (Without `start`, the acknowledgement cannot be cut.)
    func acknowledgement(for id: Int, start: Int64? = nil, end: Int64) -> Acknowledgement {
        let sequence: UInt64 = state.withLock { state in
            state.outstanding += 1
            return state.records[id]?.tracker.send(end: end) ?? 0
        }
        let whole = min(start ?? end, end)..<end
        return Acknowledgement(range: whole) { [self] part in
            finish(id, sequence: sequence, part: part.range == whole ? nil : part.range, last: part.isLast,
                delivered: part.status == .delivered)
        }
    }

    /// Bytes that produce no event (the discarded tail of an over-long line).
    func skip(_ id: Int, to end: Int64) {
        state.withLock { state in
            let before = state.records[id]?.tracker.committed
            state.records[id]?.tracker.skip(to: end)
            if state.records[id]?.tracker.committed != before { state.dirty = true }
        }
    }

    /// A chunk's acknowledgement came back: all of it (`part` nil), or the part of a cut one (`last` when the
    /// chunk has no part left in flight).
    private func finish(_ id: Int, sequence: UInt64, part: Range<Int64>?, last: Bool, delivered: Bool) {
        var stalledPath: String? = nil
        let (moved, writeFinal): (Bool, Bool) = state.withLock { state in
            if last { state.outstanding -= 1 }
            var moved = false
            if var record = state.records[id] {
                let advanced = part.map { record.tracker.finish(sequence, part: $0, delivered: delivered) }
                    ?? record.tracker.finish(sequence, delivered: delivered)
                // A delivered chunk changes the checkpoint even when an earlier one holds the offset back: it
                // becomes (or extends) a delivered range.
                if advanced || delivered {
                    state.dirty = true
                    moved = true
                }
                if record.tracker.isStalled && !record.stallReported {
                    record.stallReported = true
                    stalledPath = record.path
                }
                if record.status == .forgotten && record.tracker.inFlight == 0 {
                    state.records[id] = nil
                } else {
                    state.records[id] = record
                }
            }
            return (moved, state.stopped && state.outstanding == 0 && !state.finalWritten)
        }
        if let stalledPath {
            logger.warning(
                "events were not delivered; this file's checkpoint stays before them, so a restart reads them again",
                metadata: ["file.path": "\(stalledPath)"])
        }
        if writeFinal {
            write(final: true)
        } else if moved {
            // At once: a killed process then sends again only what was in flight (the page cache keeps it).
            write(final: false)
        }
    }

    // MARK: Writing

    /// Writes what changed, and syncs when `interval` has passed since the last sync.
    func writeIfDue() {
        write(final: false)
        let due = writer.withLock { $0.file.needsSync && ContinuousClock.now - $0.lastSync >= interval }
        if due { sync() }
    }

    /// Time until written checkpoints are due to be synced, nil when there is nothing to sync.
    func timeUntilDue() -> Duration? {
        let dirty = state.withLock { $0.dirty }
        return writer.withLock { writer in
            let now = ContinuousClock.now
            if dirty { return max(.zero, (writer.retryAfter ?? now) - now) }
            guard writer.file.needsSync else { return nil }
            return max(.zero, interval - (now - writer.lastSync))
        }
    }

    /// The source stopped: the final checkpoint is written once every acknowledgement is in (now, if none is
    /// outstanding).
    func stop() {
        let writeNow = state.withLock { state in
            state.stopped = true
            return state.outstanding == 0 && !state.finalWritten
        }
        if writeNow { write(final: true) }
    }

    /// Chunks whose acknowledgement has not come back.
    var outstanding: Int { state.withLock { $0.outstanding } }

    /// Writes the checkpoint if it changed (not while backing off after a failure); the final one is written in
    /// any case and synced, and no other write follows it.
    func write(final: Bool) {
        writer.withLock { writer in
            if !final && writer.backingOff() { return }
            let entries: [CheckpointEntry]? = state.withLock { state in
                if final {
                    if state.finalWritten { return nil }
                    state.finalWritten = true
                } else if state.finalWritten || !state.dirty {
                    return nil
                }
                state.dirty = false
                var omitted = false
                let entries = state.records.sorted { $0.key < $1.key }.compactMap { _, record -> CheckpointEntry? in
                    guard record.status != .forgotten else { return nil }
                    let (entry, cut) = Self.entry(record)
                    if cut { omitted = true }
                    return entry
                }
                if omitted {
                    rangesOmitted?.increment()
                    if !state.rangesOmittedReported {
                        state.rangesOmittedReported = true
                        logger.info(
                            "a checkpoint holds at most \(CheckpointSlots.maximumRanges) delivered ranges per file; the later ones are sent again after a crash",
                            metadata: ["checkpoint.path": "\(path)"])
                    }
                }
                return entries
            }
            guard let entries else { return }
            do {
                try writer.file.write(entries)
                if final { try writer.file.sync() }
                writer.retryAfter = nil
                retireLegacyFile(&writer)
            } catch {
                writer.retryAfter = .now + interval
                report(error, in: &writer)
                state.withLock { $0.dirty = true }
            }
        }
    }

    /// Syncs written checkpoints; on failure they are not counted as durable and the next sync tries again.
    func sync() {
        writer.withLock { writer in
            do {
                try writer.file.sync()
                writer.lastSync = .now
                retireLegacyFile(&writer)
            } catch {
                writer.lastSync = .now
                report(error, in: &writer)
            }
        }
    }

    /// Once the slot file is on disk, the first format's file has been read for the last time.
    private func retireLegacyFile(_ writer: inout Writer) {
        guard let legacy = writer.legacyPath, !writer.file.needsSync else { return }
        writer.legacyPath = nil
        if unlink(legacy) != 0 && errno != ENOENT { report(FileIO.Failure("cannot remove", path: legacy), in: &writer) }
    }

    private func report(_ error: any Error, in writer: inout Writer) {
        metrics?.error()
        guard let count = writer.failures.record() else { return }
        var metadata: Logger.Metadata = ["checkpoint.path": "\(path)", "error": "\(error)", "checkpoint.failures": "\(count)"]
        if let failure = error as? FileIO.Failure {
            metadata["checkpoint.path"] = "\(failure.path)"
            metadata["errno"] = "\(failure.code)"
        }
        logger.error(
            "cannot write the checkpoint file; it stays where it was on disk, and a restart reads again what came after",
            metadata: metadata)
    }
}
