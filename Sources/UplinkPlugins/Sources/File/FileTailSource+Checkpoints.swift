import Logging
import Synchronization
import UplinkCore

/// One file's checkpoint as stored: which file (identity and last known path) and where to resume.
struct CheckpointEntry: Sendable, Equatable {
    var identity: FileIdentity
    var path: String
    var offset: Int64
    /// Rotated away (or a copytruncate copy): no longer matched by the patterns but still to be read to its end.
    var rotated = false
}

/// The checkpoint file's format: `{"version":1,"files":[{"path":…,"device":…,"inode":…,
/// "fingerprint_bytes":…,"fingerprint":"hex","offset":…}]}`.
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
/// by acknowledgements, and written atomically to the state directory.
///
/// Acknowledgements arrive on the sinks' tasks, possibly after the source stopped, so the book outlives the
/// read loop: the loop writes every `interval` while it runs, and once the source has stopped the last
/// acknowledgement writes the final checkpoint (or ``stop()`` itself when nothing is in flight).
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
        var lastWrite = ContinuousClock.now
    }

    let path: String
    let interval: Duration
    let logger: Logger
    let metrics: ComponentMetrics?
    /// True when no checkpoint file existed: the source has never run with this id and state directory.
    let firstStart: Bool
    private let state = Mutex(State())
    /// Serialises writes, so an older snapshot never replaces a newer one.
    private let writeLock = Mutex(())

    init(path: String, interval: Duration, logger: Logger, metrics: ComponentMetrics? = nil) {
        self.path = path
        self.interval = interval
        self.logger = logger
        self.metrics = metrics
        var entries: [CheckpointEntry] = []
        var first = true
        if FileIO.fileExists(path) {
            first = false
            do {
                entries = try CheckpointCodec.decode(try FileIO.readFile(path, limit: 64 << 20))
            } catch {
                // Unknown files are then read from their beginning: duplicates rather than loss.
                logger.error(
                    "cannot read the checkpoint file; files are read again from their beginning",
                    metadata: ["checkpoint.path": "\(path)", "error": "\(error)"])
                metrics?.error()
            }
        }
        firstStart = first
        state.withLock { state in
            for entry in entries {
                state.records[state.nextID] = Record(
                    identity: entry.identity, path: entry.path, tracker: OffsetTracker(committed: entry.offset),
                    status: .dormant, rotated: entry.rotated)
                state.nextID += 1
            }
        }
    }

    // MARK: Records

    /// Records not read now, with where they stopped.
    func dormantEntries() -> [(id: Int, entry: CheckpointEntry)] {
        state.withLock { state in
            state.records.compactMap { id, record in
                record.status == .dormant
                    ? (
                        id,
                        CheckpointEntry(
                            identity: record.identity, path: record.path, offset: record.tracker.committed,
                            rotated: record.rotated)
                    )
                    : nil
            }.sorted { $0.id < $1.id }
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

    /// The acknowledgement for a chunk that completes the file up to `end`: the record advances when it
    /// (and everything sent before it) is delivered.
    func acknowledgement(for id: Int, end: Int64) -> Acknowledgement {
        let sequence: UInt64 = state.withLock { state in
            state.outstanding += 1
            return state.records[id]?.tracker.send(end: end) ?? 0
        }
        return Acknowledgement { [self] status in
            finish(id, sequence: sequence, delivered: status == .delivered)
        }
    }

    /// Bytes that produce no event (the discarded tail of an over-long line).
    func skip(_ id: Int, to end: Int64) {
        state.withLock { state in
            state.records[id]?.tracker.skip(to: end)
            state.dirty = true
        }
    }

    private func finish(_ id: Int, sequence: UInt64, delivered: Bool) {
        var stalledPath: String? = nil
        let writeFinal: Bool = state.withLock { state in
            state.outstanding -= 1
            if var record = state.records[id] {
                if record.tracker.finish(sequence, delivered: delivered) { state.dirty = true }
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
            return state.stopped && state.outstanding == 0 && !state.finalWritten
        }
        if let stalledPath {
            logger.warning(
                "events were not delivered; this file's checkpoint stays before them, so a restart reads them again",
                metadata: ["file.path": "\(stalledPath)"])
        }
        if writeFinal { write(final: true) }
    }

    // MARK: Writing

    /// Writes when something changed and `interval` has passed since the last write.
    func writeIfDue() {
        let due = state.withLock { $0.dirty && ContinuousClock.now - $0.lastWrite >= interval }
        if due { write(final: false) }
    }

    /// Time until a pending change is due to be written, nil when nothing changed.
    func timeUntilDue() -> Duration? {
        state.withLock { state in
            guard state.dirty else { return nil }
            return max(.zero, interval - (ContinuousClock.now - state.lastWrite))
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

    func write(final: Bool) {
        writeLock.withLock { _ in
            let bytes: [UInt8]? = state.withLock { state in
                if final {
                    if state.finalWritten { return nil }
                    state.finalWritten = true
                } else if state.finalWritten {
                    return nil
                }
                state.dirty = false
                state.lastWrite = ContinuousClock.now
                let entries = state.records.sorted { $0.key < $1.key }.compactMap { _, record in
                    record.status == .forgotten
                        ? nil
                        : CheckpointEntry(
                            identity: record.identity, path: record.path, offset: record.tracker.committed,
                            rotated: record.rotated)
                }
                return CheckpointCodec.encode(entries)
            }
            guard let bytes else { return }
            do {
                try FileIO.writeFileAtomically(path, bytes, mode: 0o600)
            } catch {
                logger.error(
                    "cannot write the checkpoint file", metadata: ["checkpoint.path": "\(path)", "error": "\(error)"])
                metrics?.error()
                state.withLock { $0.dirty = true }
            }
        }
    }
}
