#if canImport(Glibc)
import Glibc
#endif
import DequeModule
import Logging
import Synchronization
public import UplinkFileSystem

/// A durable edge in front of a sink: events are appended to checksummed segment files in the state
/// directory, read back in order, and deleted once the sink has acknowledged them.
///
/// - Upstream acknowledgements are resolved when the data is on disk (after the fsync that covers it, and the
///   directory fsync that made its segment's name durable), so a source may checkpoint: from then on the buffer
///   owns the data, across crashes and restarts.
/// - A failed fsync acknowledges nothing. The data it covered may never reach the disk (Linux drops the dirty
///   pages after a failed writeback), so the buffer reads it back while the process still sees it and rewrites it
///   into a fresh segment; until that succeeds, writers wait (back-pressure) and nothing more is acknowledged.
///   Each failure is logged with the file and errno, counted in the sink's `errors_total`, and reported to
///   `/health`. If the data cannot even be read back, the buffer refuses further writes (the producer fails and
///   the pipeline stops) rather than acknowledge what is not on disk.
/// - Records are framed `[length u32][crc32 u32][payload]`. After a power cut a torn or corrupted record is
///   skipped and counted; everything intact is delivered. A restart never appends to an old segment.
/// - The read position that the sink has acknowledged is kept in `ledger.slots` (``DiskBufferLedger``, written in
///   place, fdatasynced at most once per `fsyncInterval`), so a restart re-sends what was in flight (at least
///   once) and never skips.
/// - What was just written is also kept in memory (``Recent``, bounded), so a sink that keeps up gets the events
///   themselves and nothing is read back, checksummed or decoded; one that falls behind reads the segments.
/// - The total size is bounded by `maxBytes`; `when_full` decides between back-pressure and counted drops.
/// - Nothing is loaded into memory at start-up beyond one segment's scan buffer.
public final class DiskBuffer<E: PersistableEvent>: EventEdge, Sendable {
    public typealias Element = E

    public struct Configuration: Sendable {
        public var directory: String
        public var maxBytes: Int
        public var whenFull: OverflowPolicy
        public var fsyncInterval: Duration
        /// Events handed to the consumer per chunk.
        public var chunkEvents: Int
        /// Where the segments live: the real disk, or a simulated one in crash-state tests.
        public var fileSystem: any FileSystem
        /// How long a writer waits before trying a failing disk again (a write, or the rewrite after a failed fsync).
        public var retryDelay: Duration
        /// The size at which a segment is sealed and the next one started: by default an eighth of `maxBytes`,
        /// within 64 KiB ... 32 MiB (small ones in tests make many segments out of little data).
        public var segmentBytes: Int
        /// Whether group commits (fdatasync, directory fsync) and unlinks run on the buffer's sync thread, so that
        /// writing and reading go on meanwhile (the default). `false` runs them on the buffer's thread, in the order
        /// they are asked for: the file-system operations of a sequence then no longer depend on timing, so the
        /// crash-state tests that use it replay exactly from their seed.
        public var commitsOnSyncThread = true

        public init(
            directory: String, maxBytes: Int = 256 << 20, whenFull: OverflowPolicy = .block,
            fsyncInterval: Duration = .milliseconds(500), chunkEvents: Int = 1000,
            fileSystem: any FileSystem = PosixFileSystem(), retryDelay: Duration = .seconds(1), segmentBytes: Int? = nil
        ) {
            self.directory = directory
            self.fileSystem = fileSystem
            self.retryDelay = retryDelay
            self.segmentBytes = segmentBytes ?? min(32 << 20, max(64 << 10, maxBytes / 8))
            self.maxBytes = maxBytes
            self.whenFull = whenFull
            self.fsyncInterval = fsyncInterval
            self.chunkEvents = chunkEvents
        }

    }

    static var headerBytes: Int { 8 }
    static var frameHeaderBytes: Int { 8 }
    static var maxRecordBytes: Int { 64 << 20 }
    /// "UPLB", format version 1, then reserved bytes.
    private static var magic: [UInt8] { Array("UPLB".utf8) + [1, 0, 0, 0] }

    struct Segment {
        var id: Int
        var bytes: Int
        /// Records written to (or found in) the segment, and how many of them the reader has passed.
        var events: Int
        var consumed = 0
    }

    struct Position: Comparable {
        var segment: Int
        var offset: Int

        static func < (lhs: Position, rhs: Position) -> Bool {
            (lhs.segment, lhs.offset) < (rhs.segment, rhs.offset)
        }
    }

    struct InFlight {
        var end: Position
        var acknowledged: Bool
    }

    struct State {
        var segments = Deque<Segment>()
        var writeFD: Int32 = -1
        var readFD: Int32 = -1
        var readFDSegment = -1
        var read = Position(segment: 0, offset: 0)
        var acknowledged = Position(segment: 0, offset: 0)
        var inFlight = Deque<InFlight>()
        var unreadEvents = 0
        var totalBytes = 0
        var heldAcknowledgements: [Acknowledgements] = []
        /// A deferred sync is on its way for writes that came before the interval was up.
        var syncScheduled = false
        var lastSync = ContinuousClock.now
        /// The acknowledged position moved since the ledger was last written.
        var ledgerDirty = false
        var ledger: TwoSlotFile<DiskBufferLedger>
        var lastLedgerSync = ContinuousClock.now
        var lastLedgerWrite = ContinuousClock.now
        var ledgerSyncScheduled = false
        /// The first format's ledger (`ledger.json`), removed once the slot file is on disk.
        var legacyLedger: String?
        var loggedLedgerFailure = false
        /// This run wrote the ledger (so its slot file exists).
        var ledgerWritten = false
        /// Where a consumer that fell behind reads segments into: ``readWindowBytes``, allocated at the first such read
        /// and reused, so that a read neither maps, zero-fills and unmaps a fresh megabyte nor page-faults on it
        /// (unless the decoded events keep slices of it: ``PersistableEvent/decodedEventsKeepTheirBytes``).
        var readWindow: [UInt8] = []
        /// Chunks just written, oldest first, for a consumer that keeps up.
        var recent = Deque<Recent>()
        var recentBytes = 0
        var openProducers = 0
        var receiverClosed = false
        /// The consumer waiting in `next()` for a chunk, answered by whatever makes one readable (``wakeConsumer(_:)``).
        var consumer: UnsafeContinuation<EventChunk<E>?, Never>?
        var spaceWaiters: [UnsafeContinuation<Void, Never>] = []
        var droppedEvents = 0
        var damagedRecords = 0
        var writeError: FileIO.Failure?
        /// How much of the write segment an fsync has covered.
        var syncedBytes = 0
        var syncedEvents = 0
        /// Records whose fsync failed, read back, waiting to be rewritten into a fresh segment.
        var rewrite: (frames: [UInt8], events: Int)?
        /// Set while data is not durable because an fsync (or what follows it) failed.
        var syncFailure: (since: ContinuousClock.Instant, error: FileIO.Failure)?
        var syncFailures = 0
        /// The buffer cannot vouch for what it holds (unsynced data could not be read back): it takes no more.
        var broken: FileIO.Failure?
        var deferredSync: Task<Void, Never>?
        /// Segments sealed at a roll, oldest first, with data no sync has covered yet: each keeps its descriptor
        /// until a sync has (the group commit runs on the sync thread while writing goes on in the next segment).
        var sealed: [Sealed] = []
        /// The group commit under way on the sync thread; at most one at a time.
        var syncInFlight: DiskBufferSyncJob?
        /// A sync was asked for (a roll, the interval) while one was under way: the next starts when it ends.
        var syncWanted = false
        /// A write segment was created since the directory was last synced: the next sync (a job's first step, or
        /// inline) makes its name durable before anything it covers is acknowledged.
        var directoryUnsynced = false
    }

    /// A sealed segment waiting for a sync: its descriptor, and how much of it a sync has covered.
    struct Sealed {
        var id: Int
        var fd: Int32
        var syncedBytes: Int
        var syncedEvents: Int
    }

    /// A chunk as written: where its frames are, where each ends, and the events themselves.
    struct Recent {
        var segment: Int
        /// End offset of each event's frame; `taken` events (the frames before `ends[taken - 1]`) were handed out.
        var ends: [Int]
        var events: [E]
        var taken = 0
        var bytes: Int
        var start: Int

        /// Where the first event not yet handed out starts.
        var next: Int { taken == 0 ? start : ends[taken - 1] }
    }

    /// The ledger is written in place at most this often while acknowledgements flow (and synced at most once
    /// per `fsyncInterval`).
    static var ledgerWriteInterval: Duration { .milliseconds(100) }

    /// About how many record bytes one chunk for the consumer holds at most.
    static var chunkBytes: Int { 1 << 20 }

    /// How much of a segment one read for a consumer that fell behind takes at most.
    static var readWindowBytes: Int { 1 << 20 }

    /// How much of what was just written is kept in memory for the consumer.
    static var recentLimit: Int { 2 << 20 }

    struct Published: Sendable {
        var unreadEvents: Int
        var totalBytes: Int
        var droppedEvents: Int
        var damagedRecords: Int
        var syncFailure: (since: ContinuousClock.Instant, error: FileIO.Failure)?
        var syncFailures: Int

        init(_ state: State) {
            unreadEvents = state.unreadEvents
            totalBytes = state.totalBytes
            droppedEvents = state.droppedEvents
            damagedRecords = state.damagedRecords
            syncFailure = state.syncFailure
            syncFailures = state.syncFailures
        }
    }

    /// Runs `body` under the state's lock (on the buffer's thread only) and publishes the counters.
    private func withState<T: Sendable>(_ body: (inout State) -> T) -> T {
        state.withLock { state in
            let result = body(&state)
            let counters = Published(state)
            published.withLock { $0 = counters }
            return result
        }
    }

    private enum SendStep: Sendable {
        case written([Acknowledgements], Wake)
        case wait([Acknowledgements])
        case dropped, closed
        case failed(FileIO.Failure)
        case broken(FileIO.Failure)
        /// Records set aside by a failed fsync are durable again; the chunk is tried again after them.
        case rewritten([Acknowledgements])
    }

    /// What a consumer asking for its next chunk gets, decided on the buffer's thread.
    private enum Answer {
        /// A chunk, or nil at the end of the input.
        case now(EventChunk<E>?)
        /// Nothing yet: the consumer waits in `state.consumer`.
        case parked
    }

    /// A parked consumer's answer and the acknowledgements a sync made durable on the way, handed from the
    /// buffer's thread to whoever resumes it, outside the lock.
    struct Wake: Sendable {
        var consumer: UnsafeContinuation<EventChunk<E>?, Never>?
        var chunk: EventChunk<E>?
        var released: [Acknowledgements]
    }

    public let configuration: Configuration
    let logger: Logger
    private let fileSystem: any FileSystem
    private let state: Mutex<State>
    /// What other threads read (metrics, `/health`, the buffer's status), copied from `state` by ``withState(_:)``
    /// after each step, under a lock of its own that is never held across a write or an fsync.
    private let published: Mutex<Published>
    /// Where the buffer's blocking I/O runs (writes, fsyncs, segment rolls, reads for the consumer), so a slow
    /// disk stalls this buffer only, never a cooperative-pool thread and the unrelated stages waiting for one.
    /// One thread also serialises the fsyncs on a descriptor (a roll's and the periodic one). Every path takes
    /// `state`'s lock only on this thread (the cold ones too: open, flush, close, attach, detach), so no pool thread
    /// waits on the lock while a sync is under way.
    private let ioThread = DedicatedThread(purpose: "a disk buffer")
    /// Where the periodic and roll fdatasyncs run (``DiskBufferSyncJob``), so that writing and reading go on
    /// meanwhile: a sync of a 32 MiB segment takes tens of milliseconds, during which the producer's writes and the
    /// consumer's reads would otherwise wait, and the sink starve. Touches no state: the buffer's thread applies
    /// each job's results.
    private let syncThread = DedicatedThread(purpose: "a disk buffer's fsyncs")
    /// The consumer is being replaced: it reads nil while the segments wait for its successor. Outside `state`, so
    /// that a reload sets and reads it without waiting for the buffer's thread.
    private let consumerDetached = Atomic<Bool>(false)
    /// The sink's metrics, where failed syncs are counted (set by the runtime; a reload attaches the successor's).
    private let metrics = Mutex<ComponentMetrics?>(nil)

    /// Opens (or creates) the buffer in `configuration.directory`. Only the directory is made here (so a data
    /// directory that cannot be created fails the start); recovering what an earlier run left (listing the
    /// segments, reading and checksumming every record in them, reading the ledger) is the buffer thread's first
    /// job, so a slow card stalls no cooperative-pool thread meanwhile. Every call that reads or writes the buffer
    /// runs on that thread after it; ``opened()`` waits for it.
    public init(configuration: Configuration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        self.fileSystem = configuration.fileSystem
        try FileIO.makeDirectories(configuration.directory, mode: 0o700, fileSystem: fileSystem)
        let initial = State(
            ledger: TwoSlotFile<DiskBufferLedger>(path: configuration.directory + "/" + DiskBufferLedger.fileName, fileSystem: fileSystem))
        published = Mutex(Published(initial))
        state = Mutex(initial)
        ioThread.post { [self] in recoverOnThread() }
    }

    /// Returns once the buffer has recovered what an earlier run left (its counters include it from then on).
    public func opened() async {
        await ioThread.run {}
    }

    /// Scans what an earlier run left, outside the state's lock (counters stay readable meanwhile), and installs it.
    private func recoverOnThread() {
        let recovered = Self.recover(configuration.directory, fileSystem: fileSystem, logger: logger)
        let (events, damaged) = (recovered.unreadEvents, recovered.damaged)
        let bytes = recovered.segments.reduce(0) { $0 + $1.bytes }
        withState { state in
            state.ledger = recovered.ledger
            state.legacyLedger = recovered.legacyLedger
            state.segments = Deque(recovered.segments)
            state.totalBytes = bytes
            state.unreadEvents = events
            state.damagedRecords = damaged
            state.read = recovered.start
            state.acknowledged = recovered.start
        }
        if events > 0 || damaged > 0 {
            logger.notice(
                "disk buffer recovered",
                metadata: [
                    "buffer.path": "\(configuration.directory)", "buffer.events": "\(events)",
                    "buffer.damaged_records": "\(damaged)", "buffer.bytes": "\(bytes)",
                ])
        }
    }

    deinit {
        ioThread.stop()
        syncThread.stop()
        state.withLock { state in
            state.deferredSync?.cancel()
            // Whatever is still held was never acknowledged, so these syncs' results change no promise. (No job is
            // under way: each holds the buffer until its results are applied.)
            for sealed in state.sealed { _ = fileSystem.fdatasync(sealed.fd); fileSystem.close(sealed.fd) }
            if state.writeFD >= 0 { _ = fileSystem.fdatasync(state.writeFD); fileSystem.close(state.writeFD) }
            if state.readFD >= 0 { fileSystem.close(state.readFD) }
        }
    }

    /// Counts failed syncs in `metrics` (`errors_total`) and reports the buffer as failing to `/health` while its
    /// data is not durable.
    public func reportFailures(to metrics: ComponentMetrics) {
        self.metrics.withLock { $0 = metrics }
        metrics.addReporter { [weak self] in
            guard let self else { return ComponentReport() }
            let (failure, count) = self.published.withLock { ($0.syncFailure, $0.syncFailures) }
            return ComponentReport(
                samples: [
                    MetricSample(
                        name: "uplink_buffer_sync_failures_total",
                        help: "Failed fsyncs (or rewrites after one) of the disk buffer: nothing they covered was acknowledged.",
                        value: .counter(Double(count)))
                ],
                failure: failure.map {
                    ComponentReport.Failure(since: $0.since, reason: "the disk buffer cannot make data durable: \($0.error)")
                })
        }
    }

    public var bufferedEvents: Int { published.withLock { $0.unreadEvents } }
    public var droppedEvents: Int { published.withLock { $0.droppedEvents } }
    /// Records skipped because a power cut or disk error damaged them.
    public var damagedRecords: Int { published.withLock { $0.damagedRecords } }
    public var bytesOnDisk: Int { published.withLock { $0.totalBytes } }

    /// Counted on the buffer's thread, before anything queued after it there (a `next()` that checks for producers):
    /// the caller never waits on the state's lock, which that thread may hold across an fsync.
    public func addProducer() {
        ioThread.post { [self] in withState { $0.openProducers += 1 } }
    }

    public func finishProducer() {
        // The last producer's end syncs: on the buffer's thread, after what the producers queued there.
        ioThread.post { [self] in
            let wake = withState { state -> Wake? in
                state.openProducers -= 1
                guard state.openProducers <= 0 else { return nil }
                let released = sync(&state)
                var wake = wakeConsumer(&state)
                wake.released += released
                return wake
            }
            if let wake { finish(consume wake) }
        }
    }

    /// Syncs and writes the ledger on the buffer's thread, after the acknowledgements queued there, and returns
    /// when that is done (shutdown: a restart must find the ledger where the sink left it). The caller suspends
    /// meanwhile: a slow fsync holds no cooperative-pool thread.
    public func closeReceiver() async {
        let (waiters, released) = await ioThread.run { [self] in
            withState { state -> ([UnsafeContinuation<Void, Never>], [Acknowledgements]) in
                state.receiverClosed = true
                let released = sync(&state)
                writeLedger(&state, syncNow: true)
                defer { state.spaceWaiters.removeAll() }
                return (state.spaceWaiters, released)
            }
        }
        release(released)
        for waiter in waiters { waiter.resume() }
        // The unlinks of acknowledged segments queued on the sync thread are done too.
        await syncThread.run {}
    }

    /// Ends the current consumer's input without waiting for the buffer's thread (which may be inside an fsync):
    /// the flag is set at once, and a consumer parked in `next()` is woken on the thread.
    public func detachConsumer() {
        consumerDetached.store(true, ordering: .sequentiallyConsistent)
        ioThread.post { [self] in finish(withState { wakeConsumer(&$0) }) }
    }

    /// Hands the buffer to a new consumer. What the previous one read but never got acknowledged (it was
    /// cancelled past its drain deadline) is read again from the acknowledged position: at least once, as
    /// after a restart.
    public func attachConsumer() async {
        // On the buffer's thread (it reads frame headers), after the acknowledgements queued there; a reload waits.
        await ioThread.run { [self] in attach() }
    }

    private func attach() {
        withState { state in
            consumerDetached.store(false, ordering: .sequentiallyConsistent)
            guard !state.inFlight.isEmpty else { return }
            state.inFlight.removeAll()
            state.read = state.acknowledged
            var unread = 0
            for index in state.segments.indices {
                let segment = state.segments[index]
                if segment.id < state.acknowledged.segment {
                    state.segments[index].consumed = segment.events
                } else if segment.id == state.acknowledged.segment {
                    state.segments[index].consumed = min(segment.events, recordsBefore(state.acknowledged.offset, in: segment.id))
                } else {
                    state.segments[index].consumed = 0
                }
                unread += segment.events - state.segments[index].consumed
            }
            state.unreadEvents = unread
        }
    }

    /// How many records a segment holds before `offset` (a record boundary), by walking the frame headers.
    private func recordsBefore(_ offset: Int, in segment: Int) -> Int {
        let fd = fileSystem.open(segmentPath(segment), flags: O_RDONLY | O_CLOEXEC, mode: 0)
        guard fd >= 0 else { return 0 }
        defer { fileSystem.close(fd) }
        var header = [UInt8](repeating: 0, count: Self.frameHeaderBytes)
        var position = Self.headerBytes
        var count = 0
        while position < offset {
            guard header.withUnsafeMutableBytes({ fileSystem.preadFully(fd, into: $0, at: position) }) == Self.frameHeaderBytes
            else { break }
            position += Self.frameHeaderBytes + Int(readUInt32(header, 0))
            count += 1
        }
        return count
    }

    public var isConsumerDetached: Bool { consumerDetached.load(ordering: .sequentiallyConsistent) }

    // MARK: Writing

    public func send(_ chunk: EventChunk<E>) async throws {
        if chunk.isEmpty { return }
        let (frames, ends) = Self.frames(of: chunk.events)
        var loggedWriteError = false
        while true {
            let step: SendStep = await ioThread.run { [self] in withState { state in
                if state.receiverClosed { return .closed }
                if let broken = state.broken { return .broken(broken) }
                if let error = state.writeError { return .failed(error) }
                if state.rewrite != nil {
                    // Records whose fsync failed come first: nothing newer is written before they are durable.
                    let released = sync(&state)
                    if let broken = state.broken { return .broken(broken) }
                    if state.rewrite != nil, let failure = state.syncFailure {
                        state.writeError = failure.error
                        return .failed(failure.error)
                    }
                    return .rewritten(released)
                }
                if state.totalBytes + frames.count > configuration.maxBytes && state.totalBytes > 0 {
                    switch configuration.whenFull {
                    case .block:
                        // What is written is durable once synced: acknowledge it before waiting, so a source
                        // blocked on a full buffer still checkpoints everything the buffer holds.
                        return .wait(sync(&state))
                    case .dropNewest:
                        state.droppedEvents += chunk.count
                        return .dropped
                    case .dropOldest:
                        if !dropOldestSegment(&state) {
                            state.droppedEvents += chunk.count
                            return .dropped
                        }
                        if state.totalBytes + frames.count > configuration.maxBytes {
                            state.droppedEvents += chunk.count
                            return .dropped
                        }
                    }
                }
                do throws(FileIO.Failure) {
                    try append(frames, events: chunk.count, to: &state)
                    remember(chunk.events, ends: ends, bytes: frames.count, &state)
                } catch {
                    if let broken = state.broken { return .broken(broken) }
                    state.writeError = error
                    return .failed(error)
                }
                state.heldAcknowledgements.append(chunk.acknowledgements)
                var released: [Acknowledgements] = []
                let sinceSync = ContinuousClock.now - state.lastSync
                if configuration.fsyncInterval == .zero {
                    // Every chunk durable before its send returns (`fsync_interval: 0`): inline.
                    released = sync(&state)
                } else if state.syncWanted || sinceSync >= configuration.fsyncInterval {
                    // A roll sealed a segment, or the interval is up: a group commit on the sync thread; this
                    // chunk's acknowledgement goes out when it completes, and writing goes on meanwhile.
                    released = requestSync(&state)
                } else if !state.syncScheduled {
                    // Nothing may come after this write: sync it when the interval is up anyway.
                    state.syncScheduled = true
                    scheduleSync(after: configuration.fsyncInterval - sinceSync, &state)
                }
                // A consumer waiting for data gets its chunk (from memory) right here: no second hand-over.
                return .written(released, wakeConsumer(&state))
            } }
            // `consume`, and the wait for room after the switch: a token reports when its last holder lets go, so
            // nothing here may keep the acknowledgements released before that wait. A source blocked on a full
            // buffer must checkpoint everything the buffer holds, not wait for the cloud to make room.
            var waitsForRoom = false
            switch consume step {
            case .written(let released, let wake):
                if loggedWriteError { logger.notice("disk buffer writable again") }
                release(released)
                finish(consume wake)
                return
            case .broken(let error):
                throw error
            case .rewritten(let released):
                release(released)
                continue
            case .dropped:
                chunk.discardedByPolicy()
                return
            case .closed:
                throw ChannelClosedError()
            case .failed(let error):
                // A full or failing disk: keep the data upstream (not acknowledged), say so once, try again.
                if !loggedWriteError {
                    logger.error("cannot write to the disk buffer; holding data and retrying", metadata: ["error": "\(error)"])
                    loggedWriteError = true
                }
                try await Task.sleep(for: configuration.retryDelay)
                await ioThread.run { [self] in withState { $0.writeError = nil } }
            case .wait(let released):
                release(released)
                waitsForRoom = true
            }
            if waitsForRoom {
                await waitForRoom(frames.count)
                try Task.checkCancellation()
            }
        }
    }

    /// Waits until `bytes` more fit in the buffer (or the receiver closed); the consumer's reads make the room.
    private func waitForRoom(_ bytes: Int) async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            ioThread.post { [self] in
                let resumeNow = withState { state -> Bool in
                    if state.receiverClosed || state.totalBytes + bytes <= configuration.maxBytes { return true }
                    state.spaceWaiters.append(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    /// The chunk's records framed `[length u32][crc32 u32][payload]`, each encoded straight into the one buffer
    /// that is written, and where each frame ends (relative to the first).
    static func frames(of events: [E]) -> (frames: [UInt8], ends: [Int]) {
        let payloadBytes = E.totalByteCount(of: events)
        var writer = BinaryWriter(reserving: payloadBytes + payloadBytes / 16 + events.count * (frameHeaderBytes + 48))
        var ends: [Int] = []
        ends.reserveCapacity(events.count)
        for event in events {
            let start = writer.bytes.count
            writer.bytes.append(contentsOf: repeatElement(0, count: frameHeaderBytes))
            event.encode(to: &writer)
            let length = writer.bytes.count - start - frameHeaderBytes
            writer.bytes.withUnsafeMutableBytes { bytes in
                let crc = CRC32.checksum(UnsafeRawBufferPointer(rebasing: bytes[(start + frameHeaderBytes)...]))
                bytes.storeBytes(of: UInt32(length).littleEndian, toByteOffset: start, as: UInt32.self)
                bytes.storeBytes(of: crc.littleEndian, toByteOffset: start + 4, as: UInt32.self)
            }
            ends.append(writer.bytes.count)
        }
        return (writer.bytes, ends)
    }

    private func appendUInt32(_ bytes: inout [UInt8], _ value: UInt32) {
        bytes.append(UInt8(truncatingIfNeeded: value))
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value >> 16))
        bytes.append(UInt8(truncatingIfNeeded: value >> 24))
    }

    /// Keeps a chunk just appended (it ends the write segment) for the consumer, within ``recentLimit``.
    private func remember(_ events: [E], ends: [Int], bytes: Int, _ state: inout State) {
        guard bytes <= Self.recentLimit, let segment = state.segments.last else { return }
        let start = segment.bytes - bytes
        while let oldest = state.recent.first, state.recentBytes + bytes > Self.recentLimit {
            state.recentBytes -= oldest.bytes
            state.recent.removeFirst()
        }
        state.recent.append(Recent(segment: segment.id, ends: ends.map { $0 + start }, events: events, bytes: bytes, start: start))
        state.recentBytes += bytes
    }

    /// Hands out, from memory, up to `room` events of the chunk that starts at the read position (if it is still
    /// kept), and moves the read position past them. Chunks the position has passed are forgotten.
    private func takeRecent(room: Int, into events: inout [E], segmentIndex: Int, _ state: inout State) -> Bool {
        while let oldest = state.recent.first,
            oldest.segment < state.read.segment || (oldest.segment == state.read.segment && oldest.next < state.read.offset)
        {
            state.recentBytes -= oldest.bytes
            state.recent.removeFirst()
        }
        guard room > 0, var entry = state.recent.first, entry.segment == state.read.segment,
            entry.next == state.read.offset
        else { return false }
        let count = min(room, entry.events.count - entry.taken)
        events.append(contentsOf: entry.events[entry.taken..<(entry.taken + count)])
        entry.taken += count
        state.read.offset = entry.ends[entry.taken - 1]
        state.segments[segmentIndex].consumed += count
        state.unreadEvents -= count
        if entry.taken == entry.events.count {
            state.recentBytes -= entry.bytes
            state.recent.removeFirst()
        } else {
            state.recent[0] = entry
        }
        return true
    }

    private func forgetRecent(_ state: inout State) {
        state.recent.removeAll()
        state.recentBytes = 0
    }

    private func segmentPath(_ id: Int) -> String {
        Self.segmentPath(id, in: configuration.directory)
    }

    static func segmentPath(_ id: Int, in directory: String) -> String {
        let digits = String(id)
        return directory + "/segment-" + String(repeating: "0", count: max(0, 10 - digits.count)) + digits + ".dat"
    }

    private func append(_ frames: [UInt8], events: Int, to state: inout State) throws(FileIO.Failure) {
        if state.writeFD < 0 || (state.segments.last!.bytes + frames.count > configuration.segmentBytes && state.segments.last!.bytes > Self.headerBytes) {
            if let broken = state.broken { throw broken }
            if state.writeFD >= 0, let last = state.segments.last {
                // Sealed: the sync thread makes it durable while writing goes on in the next one (its descriptor is
                // kept until then). The sync starts after this write (`syncWanted`); its acknowledgements go out
                // when it completes.
                if last.bytes > state.syncedBytes || state.syncInFlight != nil {
                    state.sealed.append(
                        Sealed(id: last.id, fd: state.writeFD, syncedBytes: state.syncedBytes, syncedEvents: state.syncedEvents))
                    state.syncWanted = state.syncWanted || last.bytes > state.syncedBytes
                } else {
                    fileSystem.close(state.writeFD)
                }
                state.writeFD = -1
            }
            let id = (state.segments.last?.id ?? state.read.segment) + 1
            state.writeFD = try createSegment(id, holding: [], &state)
            state.directoryUnsynced = true
            state.segments.append(Segment(id: id, bytes: Self.headerBytes, events: 0))
            state.totalBytes += Self.headerBytes
            state.syncedBytes = Self.headerBytes
            state.syncedEvents = 0
        }
        let code = frames.withUnsafeBytes { fileSystem.writeAll(state.writeFD, $0) }
        if code != 0 {
            // Cut a partial write back off, so a torn frame never hides the records written after it.
            _ = fileSystem.truncate(state.writeFD, to: state.segments.last!.bytes)
            throw FileIO.Failure("cannot write buffer segment", path: segmentPath(state.segments.last!.id), code: code)
        }
        state.segments[state.segments.count - 1].bytes += frames.count
        state.segments[state.segments.count - 1].events += events
        state.totalBytes += frames.count
        state.unreadEvents += events
    }

    /// Creates segment `id` with the header and `frames`. With `frames` (a rewrite), also makes its content and its
    /// name durable (fdatasync, directory fsync); an empty write segment's name is made durable by the next sync
    /// (`directoryUnsynced`), before anything in it is acknowledged. Returns the open descriptor; on failure the
    /// file is removed.
    private func createSegment(_ id: Int, holding frames: [UInt8], _ state: inout State) throws(FileIO.Failure) -> Int32 {
        let path = segmentPath(id)
        // Read-write: after a failed fsync the unsynced records are read back through this descriptor.
        let fd = fileSystem.open(path, flags: O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, mode: 0o600)
        guard fd >= 0 else { throw FileIO.Failure("cannot create buffer segment", path: path, code: -fd) }
        var failure: FileIO.Failure?
        var code = (Self.magic + frames).withUnsafeBytes { fileSystem.writeAll(fd, $0) }
        if code != 0 {
            failure = FileIO.Failure("cannot write buffer segment", path: path, code: code)
        } else if frames.isEmpty {
            return fd
        } else if case let synced = fileSystem.fdatasync(fd), synced != 0 {
            failure = FileIO.Failure("cannot fsync buffer segment", path: path, code: synced)
        } else {
            code = fileSystem.syncDirectory(configuration.directory)
            if code != 0 { failure = FileIO.Failure("cannot fsync directory", path: configuration.directory, code: code) }
        }
        if let failure {
            fileSystem.close(fd)
            _ = fileSystem.unlink(path)
            throw failure
        }
        return fd
    }

    /// Syncs what was written since the last sync once `delay` has passed, so the sources get their
    /// acknowledgements within the fsync interval even when no later write or read would trigger it (the last
    /// writes before the sink stalls). The task holds the buffer weakly and is cancelled with it.
    private func scheduleSync(after delay: Duration, _ state: inout State) {
        state.deferredSync = Task { [weak self] in
            do { try await Task.sleep(for: delay) } catch { return }
            guard let self else { return }
            let wake = await self.ioThread.run { self.withState { state -> Wake? in
                state.syncScheduled = false
                state.deferredSync = nil
                guard !state.heldAcknowledgements.isEmpty || state.rewrite != nil else { return nil }
                let released = self.requestSync(&state)
                // A rewrite may have made records readable again: the consumer gets them (or keeps waiting).
                var wake = self.wakeConsumer(&state)
                wake.released += released
                return wake
            } }
            if let wake { self.finish(consume wake) }
        }
    }

    /// Makes everything written durable now, on the buffer's thread (the cold paths, `fsync_interval: 0`, and the
    /// rewrite after a failed sync), after the group commit under way, and returns the upstream acknowledgements
    /// that became so. When it cannot, nothing more is returned: the acknowledgements stay held, the failure is
    /// logged and counted.
    private func sync(_ state: inout State) -> [Acknowledgements] {
        var released = awaitSyncInFlight(&state)
        do throws(FileIO.Failure) {
            try makeDurable(&state)
        } catch {
            // Try again after `retryDelay` even if nothing is written or read meanwhile (the last writes before
            // the input ends): the sources are waiting for these acknowledgements.
            if !state.syncScheduled && state.broken == nil {
                state.syncScheduled = true
                scheduleSync(after: configuration.retryDelay, &state)
            }
            return released
        }
        state.lastSync = .now
        noteDurable(&state)
        released += state.heldAcknowledgements
        state.heldAcknowledgements.removeAll()
        return released
    }

    /// Starts a group commit of everything written so far on the sync thread, or asks for one after the job under
    /// way. The acknowledgements it covers are released when it completes (``completeSync(_:_:)``); returned now
    /// are only those that need no sync. A rewrite after a failed sync is done here and now.
    private func requestSync(_ state: inout State) -> [Acknowledgements] {
        if state.broken != nil { return [] }
        if state.rewrite != nil { return sync(&state) }
        guard state.syncInFlight == nil else {
            state.syncWanted = true
            return []
        }
        state.syncWanted = false
        state.lastSync = .now
        let targets = unsyncedTargets(state)
        guard !targets.isEmpty || state.directoryUnsynced else {
            closeSyncedSealed(&state)
            defer { state.heldAcknowledgements.removeAll() }
            return state.heldAcknowledgements
        }
        let job = DiskBufferSyncJob(
            directory: state.directoryUnsynced ? configuration.directory : nil, targets: targets,
            acknowledgements: state.heldAcknowledgements.count)
        state.directoryUnsynced = false
        state.syncInFlight = job
        if !configuration.commitsOnSyncThread {
            job.run(fileSystem)
            var released = completeSync(job, &state)
            if state.syncWanted && state.syncInFlight == nil { released += requestSync(&state) }
            return released
        }
        syncThread.post { [self] in
            job.run(fileSystem)
            ioThread.post { [self] in
                let wake = withState { state -> Wake in
                    var released = completeSync(job, &state)
                    if state.syncWanted && state.syncInFlight == nil { released += requestSync(&state) }
                    // A rewrite after a failed sync may have made records readable again.
                    var wake = wakeConsumer(&state)
                    wake.released += released
                    return wake
                }
                finish(consume wake)
            }
        }
        return []
    }

    /// Every segment with data no sync has covered, oldest first (the sealed ones, then the write segment), up to
    /// what is written now.
    private func unsyncedTargets(_ state: State) -> [DiskBufferSyncJob.Target] {
        var targets: [DiskBufferSyncJob.Target] = []
        for sealed in state.sealed {
            guard let segment = state.segments.first(where: { $0.id == sealed.id }), segment.bytes > sealed.syncedBytes else {
                continue
            }
            targets.append(.init(segment: segment.id, fd: sealed.fd, bytes: segment.bytes, events: segment.events))
        }
        if state.writeFD >= 0, let last = state.segments.last, last.bytes > state.syncedBytes {
            targets.append(.init(segment: last.id, fd: state.writeFD, bytes: last.bytes, events: last.events))
        }
        return targets
    }

    /// On the buffer's thread, once `job` ran (or when a cold path waited for it): records what it covered and
    /// returns the acknowledgements that made durable; after a failure, nothing is released and the records no sync
    /// covered, from the failed segment on, are set aside and rewritten (``sync(_:)``). A job already applied
    /// returns nothing.
    private func completeSync(_ job: DiskBufferSyncJob, _ state: inout State) -> [Acknowledgements] {
        guard state.syncInFlight === job else { return [] }
        state.syncInFlight = nil
        let (directoryCode, codes) = job.results()
        if let directory = job.directory, directoryCode != 0 {
            // The new segments' names may not be durable: nothing is acknowledged; the next sync tries again.
            noteSyncFailure(FileIO.Failure("cannot fsync directory", path: directory, code: directoryCode), &state)
            state.directoryUnsynced = true
            if !state.syncScheduled && state.broken == nil {
                state.syncScheduled = true
                scheduleSync(after: configuration.retryDelay, &state)
            }
            return []
        }
        for (target, code) in zip(job.targets, codes) {
            if code == 0 {
                markSynced(target, &state)
                continue
            }
            noteSyncFailure(FileIO.Failure("cannot fsync buffer segment", path: segmentPath(target.segment), code: code), &state)
            setAsideUnsynced(from: target.segment, &state)
            return sync(&state)
        }
        closeSyncedSealed(&state)
        noteDurable(&state)
        let count = min(job.acknowledgements, state.heldAcknowledgements.count)
        defer { state.heldAcknowledgements.removeFirst(count) }
        return Array(state.heldAcknowledgements.prefix(count))
    }

    /// The group commit under way, if any, applied after waiting for it (a cold path, or a sync done inline).
    private func awaitSyncInFlight(_ state: inout State) -> [Acknowledgements] {
        guard let job = state.syncInFlight else { return [] }
        _ = job.results()
        return completeSync(job, &state)
    }

    private func markSynced(_ target: DiskBufferSyncJob.Target, _ state: inout State) {
        if state.writeFD >= 0, state.segments.last?.id == target.segment {
            state.syncedBytes = max(state.syncedBytes, target.bytes)
            state.syncedEvents = max(state.syncedEvents, target.events)
        } else if let index = state.sealed.firstIndex(where: { $0.id == target.segment }) {
            state.sealed[index].syncedBytes = max(state.sealed[index].syncedBytes, target.bytes)
            state.sealed[index].syncedEvents = max(state.sealed[index].syncedEvents, target.events)
        }
    }

    /// Closes the sealed segments that a sync covered whole, or that the sink's acknowledgements freed, unless a job
    /// under way may still use their descriptors.
    private func closeSyncedSealed(_ state: inout State) {
        guard state.syncInFlight == nil else { return }
        state.sealed.removeAll { sealed in
            let segment = state.segments.first { $0.id == sealed.id }
            guard segment == nil || segment!.bytes <= sealed.syncedBytes else { return false }
            fileSystem.close(sealed.fd)
            return true
        }
    }

    /// Everything written is durable again: the end of a failure spell is logged.
    private func noteDurable(_ state: inout State) {
        if let failure = state.syncFailure, state.broken == nil, state.rewrite == nil {
            state.syncFailure = nil
            logger.notice(
                "disk buffer durable again", metadata: ["buffer.path": "\(configuration.directory)", "error": "\(failure.error)"])
        }
    }

    /// fdatasyncs the sealed segments and the write segment (checked), then rewrites what a failed sync left into a
    /// fresh segment. No group commit is under way (``sync(_:)`` applied it first).
    private func makeDurable(_ state: inout State) throws(FileIO.Failure) {
        if let broken = state.broken { throw broken }
        if state.directoryUnsynced {
            let code = fileSystem.syncDirectory(configuration.directory)
            guard code == 0 else {
                let failure = FileIO.Failure("cannot fsync directory", path: configuration.directory, code: code)
                noteSyncFailure(failure, &state)
                throw failure
            }
            state.directoryUnsynced = false
        }
        for target in unsyncedTargets(state) {
            let code = fileSystem.fdatasync(target.fd)
            if code == 0 {
                markSynced(target, &state)
                continue
            }
            noteSyncFailure(FileIO.Failure("cannot fsync buffer segment", path: segmentPath(target.segment), code: code), &state)
            setAsideUnsynced(from: target.segment, &state)
            if let broken = state.broken { throw broken }
            break
        }
        closeSyncedSealed(&state)
        guard let rewrite = state.rewrite else { return }
        let id = (state.segments.last?.id ?? state.read.segment) + 1
        do throws(FileIO.Failure) {
            let fd = try createSegment(id, holding: rewrite.frames, &state)
            fileSystem.close(fd)
        } catch {
            noteSyncFailure(error, &state)
            throw error
        }
        let bytes = Self.headerBytes + rewrite.frames.count
        state.segments.append(Segment(id: id, bytes: bytes, events: rewrite.events))
        state.totalBytes += bytes
        state.unreadEvents += rewrite.events
        state.rewrite = nil
        logger.notice(
            "disk buffer records rewritten into a fresh segment after a failed fsync",
            metadata: ["file.path": "\(segmentPath(id))", "buffer.events": "\(rewrite.events)"])
    }

    /// After a failed fsync of segment `first`: reads back what no sync covered in it and in every segment written
    /// after it (the process still sees it), in order, for ``makeDurable(_:)`` to rewrite; ends each of them at what
    /// is durable and closes its descriptor. Records the consumer already read from a cut part are read again from
    /// the rewrite (at least once). Segments the sink's acknowledgements freed meanwhile are only closed (what they
    /// held was delivered). No group commit is under way.
    private func setAsideUnsynced(from first: Int, _ state: inout State) {
        var pieces = state.sealed.filter { $0.id >= first }
        state.sealed.removeAll { $0.id >= first }
        if state.writeFD >= 0, let last = state.segments.last, last.id >= first {
            pieces.append(Sealed(id: last.id, fd: state.writeFD, syncedBytes: state.syncedBytes, syncedEvents: state.syncedEvents))
            state.writeFD = -1
        }
        forgetRecent(&state)
        var frames: [UInt8] = []
        var events = 0
        for piece in pieces {
            defer { fileSystem.close(piece.fd) }
            guard state.broken == nil, let index = state.segments.firstIndex(where: { $0.id == piece.id }) else { continue }
            let segment = state.segments[index]
            let count = segment.bytes - piece.syncedBytes
            guard count > 0 else { continue }
            var bytes = [UInt8](repeating: 0, count: count)
            let read = bytes.withUnsafeMutableBytes { fileSystem.preadFully(piece.fd, into: $0, at: piece.syncedBytes) }
            guard read == count else {
                let failure = FileIO.Failure(
                    "cannot read back unsynced records of", path: segmentPath(segment.id), code: read < 0 ? Int32(-read) : EIO)
                state.broken = failure
                noteSyncFailure(failure, &state)
                logger.error(
                    "disk buffer cannot read back records whose fsync failed; it refuses further data",
                    metadata: ["file.path": "\(failure.path)", "error.errno": "\(failure.code)", "error": "\(failure)"])
                continue
            }
            frames += bytes
            events += segment.events - piece.syncedEvents
            state.unreadEvents -= segment.events - segment.consumed
            state.segments[index].bytes = piece.syncedBytes
            state.segments[index].events = piece.syncedEvents
            state.segments[index].consumed = min(segment.consumed, piece.syncedEvents)
            state.unreadEvents += piece.syncedEvents - state.segments[index].consumed
            state.totalBytes -= count
        }
        guard state.broken == nil, !frames.isEmpty else { return }
        if var pending = state.rewrite {
            pending.frames += frames
            pending.events += events
            state.rewrite = pending
        } else {
            state.rewrite = (frames, events)
        }
    }

    /// Counts a failed sync and marks the buffer failing for `/health`; the first failure of a spell is logged
    /// with the file and errno (the retries, every second, are only counted).
    private func noteSyncFailure(_ failure: FileIO.Failure, _ state: inout State) {
        state.syncFailures += 1
        metrics.withLock { $0 }?.error()
        guard state.syncFailure == nil else { return }
        state.syncFailure = (.now, failure)
        logger.error(
            "disk buffer data is not durable; nothing it holds is acknowledged until it is",
            metadata: [
                "file.path": "\(failure.path)", "error.errno": "\(failure.code)", "error": "\(failure)",
                "buffer.sync_failures": "\(state.syncFailures)",
            ])
    }

    /// Resolves outside the lock: a source's callback must never run while we hold it.
    private func release(_ acknowledgements: consuming [Acknowledgements]) {
        for acknowledgement in acknowledgements { acknowledgement.resolve(.delivered) }
    }

    private func dropOldestSegment(_ state: inout State) -> Bool {
        // The oldest segment nobody has started reading and nobody is writing: what the sink holds in flight
        // cannot be taken back, and the write segment is where the new chunk goes.
        guard let index = state.segments.firstIndex(where: { $0.id > state.read.segment }),
            index < state.segments.count - 1
        else { return false }
        let candidate = state.segments[index]
        state.segments.remove(at: index)
        state.totalBytes -= candidate.bytes
        state.unreadEvents -= candidate.events - candidate.consumed
        state.droppedEvents += candidate.events - candidate.consumed
        forgetRecent(&state)
        _ = fileSystem.unlink(segmentPath(candidate.id))
        // A sealed segment waiting for its sync: its records are dropped, so that sync no longer matters (its
        // descriptor is closed now, or once the job under way that may use it is done).
        closeSyncedSealed(&state)
        return true
    }

    // MARK: Reading

    /// One hand-over to the buffer's thread, which answers at once (a chunk, or nil at the end) or keeps the
    /// consumer until a write, the end of the input or a rewrite answers it with a chunk: a consumer that keeps up
    /// costs one hand-over each way per chunk, not a second one to be woken and then to ask again.
    public func next() async -> EventChunk<E>? {
        let cancelled = Task.isCancelled
        return await withUnsafeContinuation { (consumer: UnsafeContinuation<EventChunk<E>?, Never>) in
            ioThread.post { [self] in
                let (answer, released) = withState { receive(&$0, parking: cancelled ? nil : consumer) }
                guard case .now(let chunk) = consume answer else { return release(consume released) }
                // Nothing here may hold what is handed over once the consumer runs: a chunk's acknowledgements (and
                // those released) report when their last holder lets go.
                finish(Wake(consumer: consumer, chunk: consume chunk, released: consume released))
            }
        }
    }

    /// On the buffer's thread: the next chunk, nil at the end, or (with `parking`; a cancelled consumer gets nil
    /// instead) nothing yet, the consumer kept in `state`. Also returns the acknowledgements a sync made durable, to
    /// be released outside the lock.
    private func receive(
        _ state: inout State, parking: UnsafeContinuation<EventChunk<E>?, Never>?
    ) -> (Answer, [Acknowledgements]) {
        if consumerDetached.load(ordering: .sequentiallyConsistent) { return (.now(nil), []) }
        if let chunk = readReadableChunk(&state) { return (.now(chunk), []) }
        if let last = state.segments.last, state.read.segment >= last.id && state.read.offset >= last.bytes {
            // At the writer's end: whatever the counters say, nothing is left to read. A consumer that caught up
            // reads what comes next from memory (``Recent``): the read window is not needed until it lags.
            state.unreadEvents = 0
            state.readWindow = []
        }
        if state.openProducers <= 0 || state.receiverClosed { return (.now(nil), []) }
        // Caught up: make what was written durable now if the interval is up (otherwise the deferred sync that every
        // unsynced write schedules does it): at most one fsync per interval while data flows.
        let due = ContinuousClock.now - state.lastSync >= configuration.fsyncInterval
        let released = due ? (configuration.fsyncInterval == .zero ? sync(&state) : requestSync(&state)) : []
        // A sync that rewrote records after a failed fsync may have made some readable again.
        if state.unreadEvents > 0, let chunk = readReadableChunk(&state) { return (.now(chunk), released) }
        guard let parking else { return (.now(nil), released) }
        state.consumer = parking
        return (.parked, released)
    }

    /// On the buffer's thread, after something changed for a parked consumer: its answer, if it has one now
    /// (otherwise it stays parked and only `released` is handed back).
    private func wakeConsumer(_ state: inout State) -> Wake {
        guard let consumer = state.consumer else { return Wake(released: []) }
        state.consumer = nil
        let (answer, released) = receive(&state, parking: consumer)
        guard case .now(let chunk) = consume answer else { return Wake(released: released) }
        return Wake(consumer: consumer, chunk: chunk, released: released)
    }

    /// Releases a wake's acknowledgements and resumes its consumer, outside the lock, keeping nothing of either
    /// (they report when their last holder lets go: the consumer must find them reported, and hold its chunk alone).
    private func finish(_ wake: consuming Wake) {
        var released: [Acknowledgements] = []
        swap(&released, &wake.released)
        release(consume released)
        guard let consumer = wake.consumer else { return }
        consumer.resume(returning: wake.chunk.take())
    }

    /// The next chunk of intact records, or nil once nothing more is readable. `readChunk` stops after about
    /// ``chunkBytes`` even when every record there was damaged: read on while the position moves, or a consumer
    /// would wait (parked until the next write) in front of intact records.
    private func readReadableChunk(_ state: inout State) -> EventChunk<E>? {
        var before = state.read
        while true {
            if let chunk = readChunk(&state) { return chunk }
            if state.read == before { return nil }
            before = state.read
        }
    }

    /// Reads up to `chunkEvents` intact records from the read position, skipping damaged ones.
    private func readChunk(_ state: inout State) -> EventChunk<E>? {
        var events: [E] = []
        // The read window, taken out of `state` while in use (so writing into it copies nothing) and put back.
        var buffer: [UInt8] = []
        swap(&buffer, &state.readWindow)
        defer { if !E.decodedEventsKeepTheirBytes { swap(&buffer, &state.readWindow) } }
        // Bytes of the records taken so far: a sink that fell behind gets chunks of about `chunkBytes`, not
        // `chunkEvents` large messages (a whole segment) at once.
        var taken = 0
        var last = state.read
        while events.count < configuration.chunkEvents {
            if state.read.segment == last.segment { taken += state.read.offset - last.offset }
            last = state.read
            guard taken < Self.chunkBytes else { break }
            guard let segmentIndex = state.segments.firstIndex(where: { $0.id >= state.read.segment }) else { break }
            let segment = state.segments[segmentIndex]
            if segment.id != state.read.segment {
                state.read = Position(segment: segment.id, offset: Self.headerBytes)
            }
            if state.read.offset >= segment.bytes {
                // Finished this segment; move on only if the writer has moved on too. A chunk ends with its
                // segment, so the sink never holds more than about one segment in flight and `drop_oldest` can
                // still drop what it has not read.
                guard segmentIndex + 1 < state.segments.count, events.isEmpty else { break }
                state.read = Position(segment: state.segments[segmentIndex + 1].id, offset: Self.headerBytes)
                continue
            }
            if segment.bytes - state.read.offset < Self.frameHeaderBytes {
                // Less than a frame header left: a write torn by a power cut. Nothing more in this segment (the
                // position would otherwise stay here, in front of every segment written after it).
                state.damagedRecords += 1
                logger.warning("damaged record in the disk buffer; skipping the rest of its segment", metadata: ["buffer.segment": "\(segmentPath(segment.id))"])
                state.read.offset = segment.bytes
                continue
            }
            if takeRecent(room: configuration.chunkEvents - events.count, into: &events, segmentIndex: segmentIndex, &state) {
                continue
            }
            if state.readFDSegment != segment.id {
                if state.readFD >= 0 { fileSystem.close(state.readFD) }
                state.readFD = fileSystem.open(segmentPath(segment.id), flags: O_RDONLY | O_CLOEXEC, mode: 0)
                state.readFDSegment = segment.id
                if state.readFD < 0 {
                    logger.error("cannot open buffer segment; skipping it", metadata: ["buffer.segment": "\(segmentPath(segment.id))"])
                    state.damagedRecords += 1
                    state.read.offset = segment.bytes
                    continue
                }
            }
            let wanted = min(segment.bytes - state.read.offset, Self.readWindowBytes)
            var count = 0
            if E.decodedEventsKeepTheirBytes {
                // The events keep slices of the window, and writing into a shared one would copy it: a fresh one.
                buffer = [UInt8](unsafeUninitializedCapacity: wanted) { bytes, initialized in
                    count = fileSystem.preadFully(state.readFD, into: UnsafeMutableRawBufferPointer(bytes), at: state.read.offset)
                    initialized = max(0, count)
                }
            } else {
                if buffer.isEmpty { buffer = [UInt8](repeating: 0, count: Self.readWindowBytes) }
                count = buffer.withUnsafeMutableBytes { bytes in
                    fileSystem.preadFully(
                        state.readFD, into: UnsafeMutableRawBufferPointer(rebasing: bytes[..<wanted]), at: state.read.offset)
                }
            }
            guard count > 0 else {
                state.read.offset = segment.bytes
                continue
            }
            var index = 0
            var progressed = false
            while index + Self.frameHeaderBytes <= count && events.count < configuration.chunkEvents {
                let length = Int(readUInt32(buffer, index))
                let checksum = readUInt32(buffer, index + 4)
                if length > Self.maxRecordBytes || state.read.offset + index + Self.frameHeaderBytes + length > segment.bytes {
                    // A torn or garbled length: nothing after it in this segment can be trusted.
                    state.damagedRecords += 1
                    logger.warning("damaged record in the disk buffer; skipping the rest of its segment", metadata: ["buffer.segment": "\(segmentPath(segment.id))"])
                    let remaining = state.segments[segmentIndex].events - state.segments[segmentIndex].consumed
                    state.unreadEvents -= remaining
                    state.segments[segmentIndex].consumed += remaining
                    state.read.offset = segment.bytes
                    index = 0
                    progressed = true
                    break
                }
                guard index + Self.frameHeaderBytes + length <= count else {
                    if index == 0 {
                        // One record larger than the read window: read exactly it.
                        var record = [UInt8](repeating: 0, count: Self.frameHeaderBytes + length)
                        let full = record.withUnsafeMutableBytes { fileSystem.preadFully(state.readFD, into: $0, at: state.read.offset) }
                        if full != record.count { state.read.offset = segment.bytes; progressed = true; break }
                        decodeRecord(record[Self.frameHeaderBytes...], checksum: checksum, into: &events, state: &state)
                        state.segments[segmentIndex].consumed += 1
                        state.unreadEvents -= 1
                        index = record.count
                        progressed = true
                    }
                    break
                }
                let payload = buffer[(index + Self.frameHeaderBytes)..<(index + Self.frameHeaderBytes + length)]
                decodeRecord(payload, checksum: checksum, into: &events, state: &state)
                state.segments[segmentIndex].consumed += 1
                state.unreadEvents -= 1
                index += Self.frameHeaderBytes + length
                progressed = true
            }
            if index > 0 { state.read.offset += index }
            if !progressed { break }
        }
        guard !events.isEmpty else { return nil }
        let end = state.read
        state.inFlight.append(InFlight(end: end, acknowledged: false))
        let token = Acknowledgement { [weak self] status in
            guard status == .delivered, let self else { return }
            // On the buffer's thread: freeing segments and moving the ledger are file-system calls.
            self.ioThread.post { self.acknowledge(through: end) }
        }
        return EventChunk(events, acknowledgements: Acknowledgements([token]))
    }

    private func decodeRecord(_ payload: ArraySlice<UInt8>, checksum: UInt32, into events: inout [E], state: inout State) {
        guard CRC32.checksum(payload) == checksum else {
            state.damagedRecords += 1
            logger.warning("corrupted record in the disk buffer skipped", metadata: ["buffer.damaged_records": "\(state.damagedRecords)"])
            return
        }
        var reader = BinaryReader(payload)
        do {
            events.append(try E.decode(from: &reader))
        } catch {
            state.damagedRecords += 1
        }
    }

    private func readUInt32(_ bytes: [UInt8], _ index: Int) -> UInt32 {
        UInt32(bytes[index]) | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2]) << 16 | UInt32(bytes[index + 3]) << 24
    }

    // MARK: Acknowledgement and the ledger

    private func acknowledge(through end: Position) {
        let waiters = withState { state -> [UnsafeContinuation<Void, Never>] in
            guard let index = state.inFlight.firstIndex(where: { $0.end == end && !$0.acknowledged }) else { return [] }
            state.inFlight[index].acknowledged = true
            var advanced = false
            while let first = state.inFlight.first, first.acknowledged {
                state.acknowledged = first.end
                state.inFlight.removeFirst()
                advanced = true
            }
            guard advanced else { return [] }
            // Delete segments wholly behind the acknowledged position (never the one being written).
            var freed = false
            while state.segments.count > 1, let first = state.segments.first, first.id < state.acknowledged.segment
                || (first.id == state.acknowledged.segment && state.acknowledged.offset >= first.bytes && state.segments.count > 1 && state.segments[1].id <= state.read.segment)
            {
                state.segments.removeFirst()
                state.totalBytes -= first.bytes
                // On the sync thread: unlinking a 32 MiB segment took 8-10 ms of this thread (ext4 freeing its
                // extents), during which writes and reads waited. Its records are delivered; a segment left behind
                // by a crash before the unlink is behind the ledger and removed at the next start.
                let path = segmentPath(first.id)
                if configuration.commitsOnSyncThread {
                    syncThread.post { [fileSystem] in _ = fileSystem.unlink(path) }
                } else {
                    _ = fileSystem.unlink(path)
                }
                if state.readFDSegment == first.id {
                    fileSystem.close(state.readFD)
                    state.readFD = -1
                    state.readFDSegment = -1
                }
                freed = true
            }
            if freed { closeSyncedSealed(&state) }
            state.ledgerDirty = true
            writeLedger(&state, syncNow: false)
            guard freed else { return [] }
            defer { state.spaceWaiters.removeAll() }
            return state.spaceWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Writes the acknowledged position into the ledger's slot in place (when it moved), and makes it durable
    /// now (`syncNow`) or within `fsyncInterval`, never more often: a ledger that lags only means records sent
    /// again after a power cut, never a loss (it never points past what the sink acknowledged).
    private func writeLedger(_ state: inout State, syncNow: Bool) {
        let now = ContinuousClock.now
        if !syncNow, state.ledgerDirty, now - state.lastLedgerWrite < Self.ledgerWriteInterval {
            // Acknowledgements come per chunk: write at most every ledgerWriteInterval; the deferred sync writes
            // the last position.
            if !state.ledgerSyncScheduled {
                state.ledgerSyncScheduled = true
                scheduleLedgerSync(after: max(Self.ledgerWriteInterval, configuration.fsyncInterval - (now - state.lastLedgerSync)))
            }
            return
        }
        do throws(FileSystemFailure) {
            if state.ledgerDirty {
                state.lastLedgerWrite = now
                try state.ledger.write(DiskBufferLedger.Entry(segment: state.acknowledged.segment, offset: state.acknowledged.offset))
                state.ledgerDirty = false
                state.ledgerWritten = true
            }
            if state.ledger.needsSync {
                let sinceSync = ContinuousClock.now - state.lastLedgerSync
                guard syncNow || sinceSync >= configuration.fsyncInterval else {
                    if !state.ledgerSyncScheduled {
                        state.ledgerSyncScheduled = true
                        scheduleLedgerSync(after: configuration.fsyncInterval - sinceSync)
                    }
                    return
                }
                try state.ledger.sync()
                state.lastLedgerSync = .now
            }
            state.loggedLedgerFailure = false
            if state.ledgerWritten, let legacy = state.legacyLedger {
                // Its successor is on disk: the first format is never read again.
                _ = fileSystem.unlink(legacy)
                state.legacyLedger = nil
            }
        } catch {
            // The previous position stays on disk: a restart sends more again, nothing is lost.
            metrics.withLock { $0 }?.error()
            if !state.loggedLedgerFailure {
                state.loggedLedgerFailure = true
                logger.warning(
                    "cannot write the disk buffer ledger; a restart sends again what came after its last position",
                    metadata: ["file.path": "\(error.path)", "error.errno": "\(error.code)", "error": "\(error)"])
            }
        }
    }

    private func scheduleLedgerSync(after delay: Duration) {
        Task { [weak self] in
            do { try await Task.sleep(for: delay) } catch { return }
            guard let self else { return }
            self.ioThread.post {
                self.withState { state in
                    state.ledgerSyncScheduled = false
                    self.writeLedger(&state, syncNow: true)
                }
            }
        }
    }

    // MARK: Recovery

    struct Recovered {
        var segments: [Segment]
        var start: Position
        var unreadEvents: Int
        var damaged: Int
        var ledger: TwoSlotFile<DiskBufferLedger>
        var legacyLedger: String?
    }

    /// Finds the segments and the acknowledged position an earlier run left, counting (not loading) records.
    static func recover(_ directory: String, fileSystem: any FileSystem, logger: Logger) -> Recovered {
        var ids: [Int] = []
        var legacyLedger: String?
        if case .success(let names) = fileSystem.list(directory) {
            if names.contains(DiskBufferLedger.legacyFileName) { legacyLedger = directory + "/" + DiskBufferLedger.legacyFileName }
            for name in names where name.hasPrefix("segment-") && name.hasSuffix(".dat") {
                if let id = Int(name.dropFirst(8).dropLast(4)) { ids.append(id) }
            }
        }
        ids.sort()
        var start = Position(segment: ids.first ?? 0, offset: headerBytes)
        let ledger = TwoSlotFile<DiskBufferLedger>(path: directory + "/" + DiskBufferLedger.fileName, fileSystem: fileSystem)
        var acknowledged: DiskBufferLedger.Entry?
        do {
            if let recovery = try ledger.load() {
                acknowledged = recovery.newest?.entry
                if recovery.damagedSlots > 0 {
                    logger.warning(
                        recovery.newest == nil
                            ? "the disk buffer ledger is damaged; its records are sent again from the oldest segment"
                            : "a disk buffer ledger slot is damaged (a torn write); resuming from the other slot",
                        metadata: ["file.path": "\(ledger.path)", "buffer.damaged_slots": "\(recovery.damagedSlots)"])
                }
            } else if let legacyLedger, let text = try? fileSystem.readFile(legacyLedger, limit: 4096) {
                // The first format, left by an earlier version: read once, removed when its successor is on disk.
                if case .object(let fields) = try? JSONReader.parse(text),
                    case .int(let segment) = fields["segment"], case .int(let offset) = fields["offset"]
                {
                    acknowledged = DiskBufferLedger.Entry(segment: Int(segment), offset: Int(offset))
                }
            }
        } catch {
            // Unreadable: everything is sent again (duplicates, never a loss); the next write replaces the file.
            logger.warning("cannot read the disk buffer ledger; its records are sent again", metadata: ["error": "\(error)"])
        }
        if let acknowledged {
            start = Position(segment: acknowledged.segment, offset: max(headerBytes, acknowledged.offset))
            for id in ids where id < start.segment {
                _ = fileSystem.unlink(segmentPath(id, in: directory))
            }
            ids.removeAll { $0 < start.segment }
            if let first = ids.first, first > start.segment { start = Position(segment: first, offset: headerBytes) }
        }
        var segments: [Segment] = []
        var unread = 0
        var damaged = 0
        for id in ids {
            let fd = fileSystem.open(segmentPath(id, in: directory), flags: O_RDONLY | O_CLOEXEC, mode: 0)
            guard fd >= 0 else { continue }
            defer { fileSystem.close(fd) }
            let size = max(0, fileSystem.size(fd))
            var offset = id == start.segment ? start.offset : headerBytes
            var events = 0
            var header = [UInt8](repeating: 0, count: frameHeaderBytes)
            var payload: [UInt8] = []
            while offset + frameHeaderBytes <= size {
                guard header.withUnsafeMutableBytes({ fileSystem.preadFully(fd, into: $0, at: offset) }) == frameHeaderBytes else { break }
                let length = Int(UInt32(header[0]) | UInt32(header[1]) << 8 | UInt32(header[2]) << 16 | UInt32(header[3]) << 24)
                let checksum = UInt32(header[4]) | UInt32(header[5]) << 8 | UInt32(header[6]) << 16 | UInt32(header[7]) << 24
                guard length <= maxRecordBytes, offset + frameHeaderBytes + length <= size else {
                    damaged += 1  // a torn tail: the rest of this segment is unreadable
                    break
                }
                payload = [UInt8](repeating: 0, count: length)
                let read = payload.withUnsafeMutableBytes { fileSystem.preadFully(fd, into: $0, at: offset + frameHeaderBytes) }
                if read != length || CRC32.checksum(payload) != checksum { damaged += 1 }
                events += 1
                offset += frameHeaderBytes + length
            }
            segments.append(Segment(id: id, bytes: size, events: events))
            unread += events
        }
        return Recovered(
            segments: segments, start: start, unreadEvents: unread, damaged: damaged, ledger: ledger,
            legacyLedger: legacyLedger)
    }

    /// Writes the acknowledged position now (shutdown), suspending the caller until it is written and synced.
    public func flush() async {
        let released = await ioThread.run { [self] in
            withState { state -> [Acknowledgements] in
                writeLedger(&state, syncNow: true)
                return sync(&state)
            }
        }
        release(released)
        // The unlinks of acknowledged segments queued on the sync thread are done too.
        await syncThread.run {}
    }
}

extension DiskBuffer: ErasedChannel {
    /// A disk buffer only drops under its `when_full` policy, so every drop is a full buffer.
    var status: BufferStatus {
        let (events, bytes, dropped, damaged) = published.withLock {
            ($0.unreadEvents, $0.totalBytes, $0.droppedEvents, $0.damagedRecords)
        }
        return BufferStatus(
            kind: .disk, events: events, bytes: bytes, maxBytes: configuration.maxBytes, droppedFull: dropped,
            damagedRecords: damaged)
    }
}

