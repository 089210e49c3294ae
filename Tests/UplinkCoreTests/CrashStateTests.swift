import Foundation
import Logging
import Synchronization
import Testing
import UplinkCore
import UplinkFileSystem
import UplinkFileSystemTesting
import UplinkTestSupport

/// The seed of the first sequence: `UPLINK_CRASH_SEED` replays a failing one, otherwise a fixed value so CI is
/// deterministic.
private func baseSeed(_ fallback: UInt64) -> UInt64 {
    ProcessInfo.processInfo.environment["UPLINK_CRASH_SEED"].flatMap { UInt64($0) } ?? fallback
}

private func sequenceCount(_ fallback: Int) -> Int {
    if ProcessInfo.processInfo.environment["UPLINK_CRASH_SEED"] != nil { return 1 }
    return ProcessInfo.processInfo.environment["UPLINK_CRASH_SEQUENCES"].flatMap { Int($0) } ?? fallback
}

/// A lock shared with escaping closures (the file system's step observer).
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    func withLock<Result: Sendable>(_ body: (inout Value) -> Result) -> Result {
        mutex.withLock { body(&$0) }
    }

    var value: Value { withLock { $0 } }
}

/// A thread of its own that runs the exploration's tasks (a task executor preference): it is seconds of CPU
/// work, which on one of the cooperative pool's threads (two on a 2-core machine) starved the timed waits of
/// suites running beside it.
final class ExplorationThread: TaskExecutor, @unchecked Sendable {
    // @unchecked: `semaphore` lives as long as the object, which the thread keeps alive; jobs are under a lock.
    private let jobs = Mutex<[UnownedJob]>([])
    private let semaphore: UnsafeMutablePointer<sem_t>

    init() {
        semaphore = .allocate(capacity: 1)
        sem_init(semaphore, 0, 0)
        let thread = Thread { [self] in
            while true {
                sem_wait(semaphore)
                guard let job = jobs.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else { continue }
                job.runSynchronously(on: asUnownedTaskExecutor())
            }
        }
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        jobs.withLock { $0.append(job) }
        sem_post(semaphore)
    }
}

struct CrashStateFailure: Error, CustomStringConvertible {
    var description: String
}

/// What the upstream and the sink were told while a sequence ran, shared with the acknowledgement callbacks.
private final class BufferModel: Sendable {
    struct Pair: Hashable, Sendable {
        var generation: Int
        var index: Int
    }

    struct State {
        var upstreamAcknowledged = Set<Int>()
        var deliveredBySink = Set<Int>()
        /// Crash states taken at every step, by (generation, index), with the records that each must still
        /// deliver. The same state reached at several steps (what is durable does not change between syncs) is
        /// checked once, against everything any of those steps required.
        var captured: [Pair: (state: SimulatedFileSystem.Snapshot?, required: Set<Int>)] = [:]
    }

    let state = Mutex(State())
}

/// Crash-state exploration (ALICE, OSDI 2014; Vector's disk_v2 model tests): random operation sequences run
/// against the disk buffer, the dead-letter file and the atomic write on a simulated file system; after every
/// file-system step, every state a power cut could leave (what was synced, plus each prefix of what was not,
/// plus a torn last write) is recovered and checked against a model of what was acknowledged.
@Suite(.serialized, .timeLimit(.minutes(2))) struct CrashStateTests {
    static let directory = "/device/state/cloud/buffer"

    static func body(_ number: Int, size: Int) -> [UInt8] {
        var text = Array("n=\(number);".utf8)
        text += (0..<size).map { UInt8(ascii: "a") + UInt8(($0 &+ number) % 26) }
        return text
    }

    static func number(_ message: Message) -> Int? {
        guard message.body.starts(with: Array("n=".utf8)), let end = message.body.firstIndex(of: UInt8(ascii: ";")) else {
            return nil
        }
        return Int(String(decoding: message.body[2..<end], as: UTF8.self))
    }

    static func configuration(
        _ fileSystem: some FileSystem, interval: Duration, chunkEvents: Int, onSyncThread: Bool
    ) -> DiskBuffer<Message>.Configuration {
        // 4 KiB segments, so a sequence rolls over several.
        var configuration = DiskBuffer<Message>.Configuration(
            directory: directory, maxBytes: 512 << 10, whenFull: .dropNewest, fsyncInterval: interval,
            chunkEvents: chunkEvents, fileSystem: fileSystem, retryDelay: .milliseconds(1), segmentBytes: 4096)
        configuration.commitsOnSyncThread = onSyncThread
        return configuration
    }

    /// Odd seeds commit on the buffer's sync thread, as in production (crash states taken while a sync overlaps
    /// writes and reads); even ones on the buffer's thread, so their file-system operations, and a failure, replay
    /// exactly from the seed.
    static func commitsOnSyncThread(_ seed: UInt64) -> Bool { seed & 1 == 1 }

    static let logger: Logger = {
        var logger = Logger(label: "crash-state")
        logger.logLevel = .critical
        return logger
    }()

    /// Picks at most `limit` of a step's `count` crash states (always the first, durable-only, and the last),
    /// chosen by the sequence's generator: long unsynced runs would otherwise make the count quadratic.
    static func sample(_ count: Int, limit: Int, using generator: inout SeededGenerator) -> [Int] {
        guard count > limit else { return Array(0..<count) }
        var picked = [0, count - 1]
        for _ in 0..<(limit - 2) { picked.append(Int.random(in: 1..<(count - 1), using: &generator)) }
        return picked
    }

    // MARK: Disk buffer

    /// One sequence: returns how many crash states were checked, or throws what went wrong.
    static func runBufferSequence(seed: UInt64, faults: Bool) async throws -> Int {
        var random = SeededGenerator(seed: seed)
        let fileSystem = SimulatedFileSystem()
        let interval: Duration = Bool.random(using: &random) ? .zero : .seconds(3600)
        let chunkEvents = Int.random(in: 1...6, using: &random)
        let model = BufferModel()
        var sent: [Int: [UInt8]] = [:]
        if faults {
            fileSystem.failSyncs(times: Int.random(in: 1...3, using: &random)) { $0.hasSuffix(".dat") }
        }
        let buffer = try DiskBuffer<Message>(
            configuration: configuration(
                fileSystem, interval: interval, chunkEvents: chunkEvents, onSyncThread: commitsOnSyncThread(seed)),
            logger: logger)
        let sampler = Shared(SeededGenerator(seed: seed ^ 0xC0FF_EE00))
        fileSystem.observeEachStep {
            let required = model.state.withLock { $0.upstreamAcknowledged.subtracting($0.deliveredBySink) }
            var fresh: [BufferModel.Pair] = []
            let snapshots = fileSystem.crashStates { generation, count in
                let picked = sampler.withLock { sample(count, limit: 5, using: &$0) }
                return model.state.withLock { state in
                    for index in Set(picked) {
                        let pair = BufferModel.Pair(generation: generation, index: index)
                        if state.captured[pair] != nil {
                            state.captured[pair]!.required.formUnion(required)
                        } else {
                            state.captured[pair] = (nil, required)
                            fresh.append(pair)
                        }
                    }
                    fresh.sort { $0.index < $1.index }
                    return fresh.map(\.index)
                }
            }
            model.state.withLock { state in
                for (pair, snapshot) in zip(fresh, snapshots) { state.captured[pair]!.state = snapshot }
            }
        }
        var next = 0
        var inFlight: [(chunk: EventChunk<Message>, numbers: [Int])] = []
        for _ in 0..<Int.random(in: 6...30, using: &random) {
            switch Int.random(in: 0..<100, using: &random) {
            case 0..<45:
                let count = Int.random(in: 1...4, using: &random)
                let numbers = Array(next..<(next + count))
                next += count
                let messages = numbers.map { number in
                    let body = Self.body(number, size: Int.random(in: 0...700, using: &random))
                    sent[number] = body
                    return Message(topic: "/t", body: body)
                }
                // The acknowledgement's callback runs when its last holder lets go: nothing here keeps it.
                let acknowledgements = Acknowledgements([
                    Acknowledgement { status in
                        guard status == .delivered else { return }
                        model.state.withLock { $0.upstreamAcknowledged.formUnion(numbers) }
                    }
                ])
                do {
                    try await buffer.send(EventChunk(messages, acknowledgements: acknowledgements))
                } catch {
                    // Only a buffer that cannot read back unsynced data refuses writes, and the simulated disk
                    // always can: a refusal here is a bug.
                    throw CrashStateFailure(description: "seed \(seed): the buffer refused data: \(error)")
                }
            case 45..<70:
                // No producer is registered, so `next()` answers nil instead of waiting when nothing is readable.
                if let chunk = await buffer.next() {
                    inFlight.append((chunk, chunk.events.compactMap(Self.number)))
                }
            case 70..<90:
                guard !inFlight.isEmpty else { continue }
                let (chunk, numbers) = inFlight.remove(at: Int.random(in: 0..<inFlight.count, using: &random))
                model.state.withLock { $0.deliveredBySink.formUnion(numbers) }
                chunk.acknowledgements.resolve(.delivered)
            default:
                await buffer.flush()
            }
        }
        fileSystem.observeEachStep(nil)
        let final = model.state.withLock { $0.upstreamAcknowledged.subtracting($0.deliveredBySink) }
        var captured = model.state.withLock { $0.captured.values.compactMap { entry in entry.state.map { ($0, entry.required) } } }
        for snapshot in fileSystem.crashStates() { captured.append((snapshot, final)) }
        inFlight.removeAll()
        withExtendedLifetime(buffer) {}

        for (index, (snapshot, required)) in captured.enumerated() {
            try await checkRecovery(snapshot, required: required, sent: sent, globalOrder: !faults, interval: interval) {
                "seed \(seed), crash state \(index) of \(captured.count): \($0)"
            }
        }
        return captured.count
    }

    /// Recovers a buffer from `snapshot` and reads it to the end.
    static func checkRecovery(
        _ snapshot: SimulatedFileSystem.Snapshot, required: Set<Int>, sent: [Int: [UInt8]], globalOrder: Bool,
        interval: Duration, context: (String) -> String
    ) async throws {
        let fileSystem = SimulatedFileSystem(booting: snapshot)
        let recovered: DiskBuffer<Message>
        do {
            recovered = try DiskBuffer<Message>(
                configuration: configuration(fileSystem, interval: interval, chunkEvents: 50, onSyncThread: false), logger: logger)
        } catch {
            throw CrashStateFailure(description: context("recovery failed: \(error)"))
        }
        var delivered: [Int] = []
        var chunks = 0
        while let chunk = await recovered.next() {
            chunks += 1
            guard chunks <= 10_000 else { throw CrashStateFailure(description: context("recovery does not end")) }
            var previous = -1
            for event in chunk.events {
                guard let number = Self.number(event), let body = sent[number], body == event.body else {
                    throw CrashStateFailure(description: context("a record that was never sent: \(event.body.prefix(40))"))
                }
                guard number > previous else {
                    throw CrashStateFailure(description: context("record \(number) after \(previous) in one segment"))
                }
                previous = number
                delivered.append(number)
            }
            chunk.acknowledgements.resolve(.delivered)
        }
        if globalOrder, delivered != delivered.sorted() {
            throw CrashStateFailure(description: context("records out of order: \(delivered)"))
        }
        let missing = required.subtracting(delivered)
        guard missing.isEmpty else {
            throw CrashStateFailure(
                description: context("acknowledged upstream but lost: \(missing.sorted()) (delivered \(delivered))"))
        }
    }

    static let thread = ExplorationThread()

    static func explore(
        _ name: String, sequences: Int, seed fallback: UInt64, run: (UInt64) async throws -> Int
    ) async {
        let base = baseSeed(fallback)
        var checked = 0
        let started = ContinuousClock.now
        for index in 0..<sequenceCount(sequences) {
            let seed = base &+ UInt64(index)
            do {
                checked += try await withTaskExecutorPreference(Self.thread) { try await run(seed) }
            } catch {
                let timing = Self.commitsOnSyncThread(seed)
                    ? " (a disk-buffer sequence of an odd seed syncs on the buffer's sync thread: its interleaving may differ)" : ""
                Issue.record("\(error)\nreplay: UPLINK_CRASH_SEED=\(seed) swift test --filter CrashStateTests\(timing)")
                return
            }
        }
        print("\(name): \(checked) crash states checked in \(sequenceCount(sequences)) sequences from seed \(base) (\(ContinuousClock.now - started))")
    }

    @Test func everyRecordAcknowledgedUpstreamSurvivesEveryCrashState() async {
        await Self.explore("disk buffer", sequences: 700, seed: 0x5EED_0001) { seed in
            try await Self.runBufferSequence(seed: seed, faults: false)
        }
    }

    @Test func failedFsyncsLoseNothingAcknowledgedInAnyCrashState() async {
        await Self.explore("disk buffer with failing fsyncs", sequences: 400, seed: 0x5EED_0002) { seed in
            try await Self.runBufferSequence(seed: seed, faults: true)
        }
    }

    // MARK: Atomic write (ledger, checkpoints, token cache, counters)

    @Test func anAtomicWriteLeavesTheOldOrTheNewContentInEveryCrashState() async {
        await Self.explore("atomic write", sequences: 60, seed: 0x5EED_0003) { seed in
            var random = SeededGenerator(seed: seed)
            let fileSystem = SimulatedFileSystem()
            try fileSystem.makeDirectories("/device/state", mode: 0o700)
            let path = "/device/state/checkpoints.json"
            if Bool.random(using: &random) {
                fileSystem.failSyncs(times: Int.random(in: 1...2, using: &random)) { _ in true }
            }
            let versions = (0..<12).map { version in
                (0..<Int.random(in: 0...300, using: &random)).map { _ in UInt8(ascii: "0") + UInt8(version % 10) }
            }
            // The last version a write returned for, and the versions attempted since (a failed write may still
            // have renamed its file into place: a failure promises nothing about which one is there).
            let progress = Shared((committed: -1, candidates: [Int]()))
            let captured = Shared<[(SimulatedFileSystem.Snapshot, Int, [Int])]>([])
            fileSystem.observeEachStep {
                let (committed, candidates) = progress.value
                let states = fileSystem.crashStates()
                captured.withLock { list in for state in states { list.append((state, committed, candidates)) } }
            }
            for (index, version) in versions.enumerated() {
                progress.withLock { $0.candidates.append(index) }
                do {
                    try AtomicFile.write(path, version, mode: 0o600, fileSystem: fileSystem)
                    progress.withLock { $0 = (index, []) }
                } catch {
                    // A failed write throws; the file holds the previous content or (if only the directory sync
                    // failed) the new one, never anything else.
                    let now = fileSystem.volatileSnapshot.contents(of: path)
                    let (committed, _) = progress.value
                    guard now == (committed >= 0 ? versions[committed] : nil) || now == version else {
                        throw CrashStateFailure(description: "seed \(seed): a failed write left something else")
                    }
                }
            }
            fileSystem.observeEachStep(nil)
            let (committed, candidates) = progress.value
            let states = captured.value + fileSystem.crashStates().map { ($0, committed, candidates) }
            for (state, committed, candidates) in states {
                let content = state.contents(of: path)
                let allowed: [[UInt8]?] = [committed >= 0 ? versions[committed] : nil] + candidates.map { versions[$0] }
                guard allowed.contains(where: { $0 == content }) else {
                    throw CrashStateFailure(
                        description: "seed \(seed): after a crash the file holds \(content?.count ?? -1) bytes, none of versions \(committed), \(candidates)")
                }
            }
            return states.count
        }
    }

    // MARK: Two-slot file (the disk buffer's ledger)

    @Test func theLedgerHoldsItsLastSyncedPositionOrOneWrittenSinceInEveryCrashState() async {
        await Self.explore("disk buffer ledger (two slots)", sequences: 80, seed: 0x5EED_0006) { seed in
            var random = SeededGenerator(seed: seed)
            let fileSystem = SimulatedFileSystem()
            try fileSystem.makeDirectories("/device/state", mode: 0o700)
            let path = "/device/state/ledger.slots"
            if Bool.random(using: &random) {
                fileSystem.failSyncs(times: Int.random(in: 1...3, using: &random)) { $0.hasSuffix(".slots") }
            }
            // The position last made durable (-1: none yet), and those written since (any may be on disk). After a
            // failed fsync Linux may have dropped a slot's page while the process still reads it, so a restart's
            // load cannot vouch for it: from then on any position ever written may be found (an older one means
            // records sent again; a position never written would be a loss or an invention).
            let progress = Shared((durable: -1, written: [Int]()))
            let everWritten = Shared<[Int]>([])
            let captured = Shared<[(SimulatedFileSystem.Snapshot, [Int], Bool)]>([])
            let allowed = { @Sendable () -> ([Int], Bool) in
                let (durable, written) = progress.value
                if fileSystem.syncCounts.failed > 0 { return (everWritten.value, true) }
                return ((durable >= 0 ? [durable] : []) + written, durable < 0)
            }
            fileSystem.observeEachStep {
                let (positions, none) = allowed()
                let states = fileSystem.crashStates()
                captured.withLock { list in for state in states { list.append((state, positions, none)) } }
            }
            var file = TwoSlotFile<DiskBufferLedger>(path: path, fileSystem: fileSystem)
            var position = 0
            for _ in 0..<Int.random(in: 10...40, using: &random) {
                switch Int.random(in: 0..<10, using: &random) {
                case 0..<6:
                    position += Int.random(in: 1...5000, using: &random)
                    progress.withLock { $0.written.append(position) }
                    everWritten.withLock { $0.append(position) }
                    try? file.write(DiskBufferLedger.Entry(segment: position / 1000, offset: position))
                    // The first write creates the file whole and synced.
                    if !file.needsSync, fileSystem.volatileSnapshot.contents(of: path) != nil,
                        case let durable = fileSystem.durableSnapshot.contents(of: path),
                        let entry = durable.flatMap({ DiskBufferLedger.decode($0).newest?.entry }), entry.offset == position
                    {
                        progress.withLock { $0 = (position, []) }
                    }
                case 6..<9:
                    if (try? file.sync()) != nil, !progress.value.written.isEmpty {
                        progress.withLock { $0 = (position, []) }
                    }
                default:
                    // A restart: the newest slot is read and made durable.
                    file = TwoSlotFile<DiskBufferLedger>(path: path, fileSystem: fileSystem)
                    if let recovery = try? file.load(), let entry = recovery.newest?.entry {
                        progress.withLock { $0 = (entry.offset, []) }
                        position = entry.offset
                    }
                }
            }
            fileSystem.observeEachStep(nil)
            let (positions, none) = allowed()
            let states = captured.value + fileSystem.crashStates().map { ($0, positions, none) }
            for (state, allowed, noneAllowed) in states {
                let restarted = TwoSlotFile<DiskBufferLedger>(path: path, fileSystem: SimulatedFileSystem(booting: state))
                let found: Int?
                do {
                    found = try restarted.load()?.newest?.entry.offset
                } catch {
                    throw CrashStateFailure(description: "seed \(seed): the ledger cannot be read after a crash: \(error)")
                }
                guard found.map(allowed.contains) ?? noneAllowed else {
                    throw CrashStateFailure(
                        description: "seed \(seed): after a crash the ledger holds \(found ?? -1), allowed: \(allowed)")
                }
            }
            return states.count
        }
    }

    @Test func theRequestIDCounterNeverRepeatsAValueAcrossACrash() async {
        await Self.explore("persistent counter", sequences: 40, seed: 0x5EED_0004) { seed in
            var random = SeededGenerator(seed: seed)
            let fileSystem = SimulatedFileSystem()
            try fileSystem.makeDirectories("/device/state", mode: 0o700)
            let path = "/device/state/request-id"
            var counter = try PersistentCounter(
                path: path, blockSize: UInt64.random(in: 1...4, using: &random), maxBlockSize: 16, fileSystem: fileSystem)
            let handedOut = Shared<UInt64>(0)
            let captured = Shared<[(SimulatedFileSystem.Snapshot, UInt64)]>([])
            fileSystem.observeEachStep {
                let highest = handedOut.value
                let states = fileSystem.crashStates()
                captured.withLock { list in for state in states { list.append((state, highest)) } }
            }
            for _ in 0..<Int.random(in: 20...80, using: &random) {
                let value = try counter.next()
                handedOut.withLock { $0 = value }
            }
            fileSystem.observeEachStep(nil)
            let highest = handedOut.value
            let states = captured.value + fileSystem.crashStates().map { ($0, highest) }
            for (state, highest) in states {
                var restarted = try PersistentCounter(path: path, fileSystem: SimulatedFileSystem(booting: state))
                let first = try restarted.next()
                guard first > highest || highest == 0 else {
                    throw CrashStateFailure(description: "seed \(seed): after a crash the counter starts at \(first), \(highest) was handed out")
                }
            }
            return states.count
        }
    }

    // MARK: Dead-letter file

    @Test func everyAcknowledgedDeadLetterSurvivesEveryCrashState() async {
        await Self.explore("dead-letter file", sequences: 40, seed: 0x5EED_0005) { seed in
            var random = SeededGenerator(seed: seed)
            let fileSystem = SimulatedFileSystem()
            let path = "/device/state/cloud/dead-letters.jsonl"
            let file = DeadLetterFile(path: path, maxBytes: 2048, keep: 2, fileSystem: fileSystem)
            if Bool.random(using: &random) {
                fileSystem.failSyncs(times: Int.random(in: 1...3, using: &random)) { $0.hasSuffix(".jsonl") }
            }
            let files = [path, path + ".1", path + ".2"]
            let lines = { @Sendable (snapshot: SimulatedFileSystem.Snapshot) in Self.lines(in: files, of: snapshot) }
            // Lines acknowledged and still kept (not rotated away) when each crash state was taken.
            let acknowledged = Shared<Set<[UInt8]>>([])
            let captured = Shared<[(SimulatedFileSystem.Snapshot, Set<[UInt8]>)]>([])
            fileSystem.observeEachStep {
                let kept = Set(lines(fileSystem.volatileSnapshot).filter(\.value).keys)
                let required = acknowledged.value.intersection(kept)
                let states = fileSystem.crashStates()
                captured.withLock { list in for state in states { list.append((state, required)) } }
            }
            // Single writes (a line and its fsync), and groups as a transform makes them: a chunk's letters
            // appended, then the last one's ticket committed.
            var index = 0
            for _ in 0..<Int.random(in: 5...30, using: &random) {
                let group = Int.random(in: 0...3, using: &random)
                let reasons = (index..<index + max(1, group)).map { "letter \($0)" }
                index += reasons.count
                let payloads = reasons.map { _ in
                    [UInt8](repeating: UInt8(ascii: "p"), count: Int.random(in: 0...700, using: &random))
                }
                var durable = false
                if group == 0 {
                    durable = (try? file.write(component: "cloud", topic: "/t", reason: reasons[0], retCode: 230, payload: payloads[0])) != nil
                } else {
                    var appended = true
                    var last: DeadLetterFile.Ticket?
                    for (reason, payload) in zip(reasons, payloads) {
                        do { last = try file.append(component: "t", topic: nil, reason: reason, retCode: nil, payload: payload) } catch { appended = false }
                    }
                    // The last ticket is committed whatever happened (as `Rejections.settle` does); the group counts
                    // only if every append and the commit succeeded.
                    let committed = last.map { (try? file.commit($0)) != nil } ?? false
                    durable = appended && committed
                }
                guard durable else { continue }  // Not acknowledged: the caller keeps the data.
                let written = lines(fileSystem.volatileSnapshot).filter(\.value).keys.filter { line in
                    let text = String(decoding: line, as: UTF8.self)
                    return reasons.contains { text.contains("\"reason\":\"\($0)\"") }
                }
                acknowledged.withLock { $0.formUnion(written) }
            }
            fileSystem.observeEachStep(nil)
            let all = lines(fileSystem.volatileSnapshot).filter(\.value).keys
            let states = captured.value
            for (state, required) in states {
                let found = lines(state)
                for (line, complete) in found where complete {
                    guard (try? JSONReader.parse(line)) != nil else {
                        throw CrashStateFailure(description: "seed \(seed): a complete line that is not JSON")
                    }
                }
                let missing = required.filter { found[$0] != true }
                guard missing.isEmpty else {
                    throw CrashStateFailure(
                        description: "seed \(seed): \(missing.count) acknowledged dead letters lost, of \(all.count)")
                }
            }
            return states.count
        }
    }

    /// Every line of every file, and whether it is complete (ends with a newline).
    static func lines(in files: [String], of snapshot: SimulatedFileSystem.Snapshot) -> [[UInt8]: Bool] {
        var result: [[UInt8]: Bool] = [:]
        for name in files {
            guard let bytes = snapshot.contents(of: name) else { continue }
            var parts = bytes.split(separator: 0x0A, omittingEmptySubsequences: true).map(Array.init)
            if bytes.last != 0x0A, let last = parts.popLast() { result[last] = false }
            for part in parts { result[part] = true }
        }
        return result
    }

    // MARK: The simulated file system itself

    @Test func theSimulatedDiskKeepsOnlyWhatWasSynced() throws {
        let fileSystem = SimulatedFileSystem()
        try fileSystem.makeDirectories("/d", mode: 0o700)
        let fd = fileSystem.open("/d/f", flags: O_WRONLY | O_CREAT, mode: 0o600)
        _ = [UInt8]("abcd".utf8).withUnsafeBytes { fileSystem.writeAll(fd, $0) }
        // Neither the data nor the name is durable yet.
        #expect(fileSystem.durableSnapshot.contents(of: "/d/f") == nil)
        #expect(fileSystem.fsync(fd) == 0)
        #expect(fileSystem.durableSnapshot.contents(of: "/d/f") == nil, "the name needs a directory sync")
        #expect(fileSystem.syncDirectory("/d") == 0)
        #expect(fileSystem.durableSnapshot.contents(of: "/d/f") == Array("abcd".utf8))
        _ = [UInt8]("efgh".utf8).withUnsafeBytes { fileSystem.writeAll(fd, $0) }
        let states = fileSystem.crashStates().map { $0.contents(of: "/d/f").map { String(decoding: $0, as: UTF8.self) } }
        #expect(states == ["abcd", "abcdef", "abcdefgh"], "synced, torn, whole")
        fileSystem.failSyncs(times: 1) { _ in true }
        #expect(fileSystem.fsync(fd) == EIO)
        #expect(fileSystem.crashStates().count == 1, "a failed fsync's writes never become durable")
    }
}
