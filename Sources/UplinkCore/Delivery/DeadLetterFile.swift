#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import DequeModule
import Synchronization
public import UplinkFileSystem

/// Where data goes that can never be delivered, with the reason: one JSON line per payload,
///
/// ```
/// {"time":1700000000000,"component":"batch","topic":"/PSN/DSN/upload","reason":"…","retcode":230,"payload_base64":"…"}
/// ```
///
/// `topic` and `retcode` are `null` when there is none (a transform rejects data before any server saw it).
/// The payload is base64 because it may be any bytes.
///
/// The file is opened on the first write (a pipeline that never dead-letters creates nothing), with mode 0600
/// since payloads may be sensitive, and its parent directories are created (0700). It is capped: a write
/// that would take it past `maxBytes` first rotates it to `path.1` (and `path.1` to `path.2`, …, keeping
/// `keep` rotated files), so a device with a small flash never fills up with rejects. A single line larger than
/// `maxBytes` is still written, alone in a fresh file: losing it would be worse.
///
/// Callers acknowledge the data as soon as it is dead-lettered, so ``write(component:topic:reason:retCode:payload:)``
/// returns only once the line is durable: the write, the fsync, and (after the file was opened, created or
/// rotated) the directory fsync all succeeded. Any failure throws, naming the file and the errno, and the
/// descriptor is closed: after a failed fsync Linux may have dropped the line, so nothing is acknowledged and the
/// next write starts from a fresh descriptor.
///
/// Many dead letters share one fsync: ``append(component:topic:reason:retCode:payload:)`` writes a line and
/// returns a ``Ticket``; ``commit(_:)`` returns once that line is durable, syncing only when no sync since
/// covered it. A transform appends the rejects of a chunk and commits the last one before it acknowledges the
/// chunk (100,000 rejected lines took 16 s and 5.4 CPU s when each was fsynced on its own, on a
/// cooperative-pool thread the rest of the pipeline needed). The sink's deliveries run on its libcurl thread,
/// which must not wait for a disk: they ``awaitDurable(_:)``, which commits on this file's own thread, where
/// the deliveries rejected meanwhile share the next fsync.
///
/// A failed sync cuts the file back to its last durable line and closes it: every line appended since is lost,
/// and committing any of their tickets throws that failure (a ticket remembers which file descriptor, or
/// generation, its line went to). Safe to share between tasks: every call is serialised by a lock, except the
/// fsync of ``commit(_:)``, which runs outside it so that appends go on during a slow sync.
public final class DeadLetterFile: Sendable {
    public let path: String
    public let maxBytes: Int
    public let keep: Int
    private let fileSystem: any FileSystem

    /// Where an appended line ends, to make it durable with ``commit(_:)`` or ``awaitDurable(_:)``.
    public struct Ticket: Sendable {
        fileprivate let generation: UInt64
        fileprivate let end: Int
    }

    private struct State {
        var fd: Int32 = -1
        var size = 0
        /// The size up to which every line is on disk (fsynced); a failed sync truncates back to it.
        var durableSize = 0
        /// Counts the descriptors opened: a ticket of an earlier one is answered from `ended`.
        var generation: UInt64 = 0
        /// The last generations that ended (rotated, closed, or cut by a failed sync): what was durable then,
        /// and the failure that ended one. Tickets are committed within moments, so a short memory is enough;
        /// a ticket older than it is answered as failed (never as durable when it may not be).
        var ended = Deque<(generation: UInt64, durableSize: Int, failure: FileIO.Failure?)>()
    }

    private let state = Mutex(State())
    /// Where ``awaitDurable(_:)`` syncs, started by its first call.
    private let syncThread = Mutex<DedicatedThread?>(nil)

    /// - Parameters:
    ///   - path: the file; rotated files are `path.1` … `path.<keep>`.
    ///   - maxBytes: rotate before a write would make the file larger than this.
    ///   - keep: how many rotated files to keep (0: the file is truncated when full).
    ///   - fileSystem: where the file lives (the real disk unless a test simulates one).
    public init(path: String, maxBytes: Int = 10 << 20, keep: Int = 3, fileSystem: any FileSystem = PosixFileSystem()) {
        self.path = path
        self.fileSystem = fileSystem
        self.maxBytes = max(1, maxBytes)
        self.keep = max(0, keep)
    }

    deinit {
        syncThread.withLock { $0?.stop() }
        state.withLock { closeFile(&$0) }
    }

    /// Appends one dead letter and makes it durable.
    ///
    /// - Parameters:
    ///   - component: the id of the component giving up on the data.
    ///   - topic: the topic it was meant for, if any.
    ///   - reason: why it can never be delivered, for the operator.
    ///   - retCode: the server's `RetCode` when a server refused it.
    ///   - payload: the data as it would have been sent.
    public func write(
        component: String, topic: String?, reason: String, retCode: Int?, payload: some Collection<UInt8>
    ) throws(FileIO.Failure) {
        let line = Self.line(component: component, topic: topic, reason: reason, retCode: retCode, payload: payload)
        try state.withLock { (state) throws(FileIO.Failure) in
            try appendLine(line, &state)
            try sync(&state)
        }
    }

    /// Appends one dead letter without making it durable; nothing appended may be acknowledged before
    /// ``commit(_:)`` (or ``awaitDurable(_:)``) of its ticket returned.
    public func append(
        component: String, topic: String?, reason: String, retCode: Int?, payload: some Collection<UInt8>
    ) throws(FileIO.Failure) -> Ticket {
        let line = Self.line(component: component, topic: topic, reason: reason, retCode: retCode, payload: payload)
        return try state.withLock { (state) throws(FileIO.Failure) in
            try appendLine(line, &state)
            return Ticket(generation: state.generation, end: state.size)
        }
    }

    /// Returns once the ticket's line is durable: at once when a sync since covered it, else after one fsync,
    /// which also covers every line appended before it. Throws when its line was lost (a failed sync cut it).
    /// The fsync runs outside the lock, so other tasks append meanwhile (and the next commit covers them all).
    public func commit(_ ticket: Ticket) throws(FileIO.Failure) {
        let plan = try state.withLock { (state) throws(FileIO.Failure) -> (fd: Int32, size: Int)? in
            guard ticket.generation == state.generation else {
                try Self.answer(ticket, from: state, path: path)
                return nil
            }
            return ticket.end > state.durableSize ? (state.fd, state.size) : nil
        }
        guard let plan else { return }
        let synced = fileSystem.fsync(plan.fd)
        try state.withLock { (state) throws(FileIO.Failure) in
            // The descriptor ended meanwhile (a rotation, which synced it first, or another sync's failure): what
            // it recorded then is the answer, whatever this fsync of a closed or reused number said.
            guard ticket.generation == state.generation else {
                try Self.answer(ticket, from: state, path: path)
                return
            }
            if synced != 0 { throw syncFailed(synced, &state) }
            state.durableSize = max(state.durableSize, plan.size)
        }
    }

    /// The answer for a ticket of a descriptor that has ended: durable if its line was within what was synced.
    private static func answer(_ ticket: Ticket, from state: State, path: String) throws(FileIO.Failure) {
        guard let ended = state.ended.last(where: { $0.generation == ticket.generation }) else {
            throw FileIO.Failure("cannot tell whether a dead letter reached the disk in", path: path, code: EIO)
        }
        if ticket.end > ended.durableSize {
            throw ended.failure ?? FileIO.Failure("a dead letter was never synced to", path: path, code: EIO)
        }
    }

    /// ``commit(_:)`` on this file's own thread, for callers whose thread must not wait for a disk (the sink's
    /// libcurl thread). Lines appended by other tasks meanwhile share the fsync.
    public func awaitDurable(_ ticket: Ticket) async throws(FileIO.Failure) {
        let thread = syncThread.withLock { thread in
            if let thread { return thread }
            let started = DedicatedThread(purpose: "the dead-letter file's fsyncs")
            thread = started
            return started
        }
        let result = await thread.run { () -> Result<Void, FileIO.Failure> in
            do throws(FileIO.Failure) {
                try self.commit(ticket)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    private static func line(
        component: String, topic: String?, reason: String, retCode: Int?, payload: some Collection<UInt8>
    ) -> [UInt8] {
        var line: [UInt8] = []
        line.reserveCapacity(120 + reason.utf8.count + Base64.encodedCount(payload.count))
        line.append(contentsOf: #"{"time":"#.utf8)
        JSONWriter.appendInteger(currentTimeMillis(), to: &line)
        line.append(contentsOf: #","component":"#.utf8)
        JSONWriter.appendString(component, to: &line)
        line.append(contentsOf: #","topic":"#.utf8)
        if let topic { JSONWriter.appendString(topic, to: &line) } else { line.append(contentsOf: "null".utf8) }
        line.append(contentsOf: #","reason":"#.utf8)
        JSONWriter.appendString(reason, to: &line)
        line.append(contentsOf: #","retcode":"#.utf8)
        if let retCode { JSONWriter.appendInteger(Int64(retCode), to: &line) } else { line.append(contentsOf: "null".utf8) }
        line.append(contentsOf: #","payload_base64":""#.utf8)
        Base64.encode(payload, to: &line)
        line.append(contentsOf: "\"}\n".utf8)
        return line
    }

    private func appendLine(_ line: [UInt8], _ state: inout State) throws(FileIO.Failure) {
        if state.fd >= 0, state.size > 0, state.size + line.count > maxBytes {
            try rotate(&state)
        }
        if state.fd < 0 { try openFile(&state) }
        let failure = line.withUnsafeBytes { fileSystem.writeAll(state.fd, $0) }
        if failure != 0 {
            // The file may now end in a partial line; start the next one on a fresh line so it stays parseable.
            _ = [UInt8(0x0A)].withUnsafeBytes { fileSystem.writeAll(state.fd, $0) }
            state.size = currentSize(state.fd)
            throw FileIO.Failure("cannot write to", path: path, code: failure)
        }
        state.size += line.count
    }

    /// fsyncs what was written since the last sync. A dead letter is the data's last copy once the caller
    /// acknowledges it.
    private func sync(_ state: inout State) throws(FileIO.Failure) {
        guard state.fd >= 0, state.size != state.durableSize else { return }
        let synced = fileSystem.fsync(state.fd)
        if synced != 0 { throw syncFailed(synced, &state) }
        state.durableSize = state.size
    }

    /// After a failed fsync the lines written since the last durable size may never reach the disk: cuts them off
    /// (their tickets now fail) so that what follows never lands after a hole, and closes the descriptor.
    private func syncFailed(_ code: Int32, _ state: inout State) -> FileIO.Failure {
        _ = fileSystem.truncate(state.fd, to: state.durableSize)
        let failure = FileIO.Failure("cannot fsync", path: path, code: code)
        closeFile(&state, failure: failure)
        return failure
    }

    /// Closes the file; a later write opens it again.
    public func close() {
        state.withLock { closeFile(&$0) }
    }

    private func openFile(_ state: inout State) throws(FileIO.Failure) {
        let directory = FileIO.parentDirectory(of: path)
        try FileIO.makeDirectories(directory, mode: 0o700, fileSystem: fileSystem)
        let fd = fileSystem.open(path, flags: O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode: 0o600)
        guard fd >= 0 else { throw FileIO.Failure("cannot open", path: path, code: -fd) }
        // An existing file keeps its mode on open: force 0600, payloads may hold what the device measured.
        _ = fileSystem.setMode(fd, 0o600)
        // The file may have just been created (or the old one rotated away): its name must be durable before a
        // line in it is acknowledged. Opening is rare (first write, rotation), so this costs one sync per file.
        let synced = fileSystem.syncDirectory(directory)
        guard synced == 0 else {
            fileSystem.close(fd)
            throw FileIO.Failure("cannot fsync directory", path: directory, code: synced)
        }
        state.fd = fd
        state.size = currentSize(fd)
        // What a previous run or descriptor left is taken as it is: its lines were synced before they counted.
        state.durableSize = state.size
        // A file already over the cap (a smaller max_bytes than last run) rotates before it grows.
        if state.size >= maxBytes { try rotate(&state) }
    }

    private func rotate(_ state: inout State) throws(FileIO.Failure) {
        // Lines appended and not yet committed move with the file: they must be on disk before it is renamed.
        try sync(&state)
        closeFile(&state)
        if keep == 0 {
            let code = fileSystem.unlink(path)
            if code != 0 && code != ENOENT { throw FileIO.Failure("cannot remove", path: path, code: code) }
        } else {
            // Oldest first, so nothing is overwritten before it moved: path.(keep-1) -> path.keep, …, path -> path.1.
            for index in stride(from: keep - 1, through: 1, by: -1) {
                let from = "\(path).\(index)"
                let code = fileSystem.rename(from, to: "\(path).\(index + 1)")
                if code != 0 && code != ENOENT { throw FileIO.Failure("cannot rotate", path: from, code: code) }
            }
            let code = fileSystem.rename(path, to: path + ".1")
            if code != 0 && code != ENOENT { throw FileIO.Failure("cannot rotate", path: path, code: code) }
        }
        // openFile syncs the directory, which makes these renames durable before the new file is written.
        try openFile(&state)
    }

    /// Closes without a sync: what was committed is on disk, and what was appended and never committed was never
    /// acknowledged.
    private func closeFile(_ state: inout State, failure: FileIO.Failure? = nil) {
        guard state.fd >= 0 else { return }
        fileSystem.close(state.fd)
        state.ended.append((state.generation, state.durableSize, failure))
        if state.ended.count > 64 { state.ended.removeFirst() }
        state.generation += 1
        state.fd = -1
        state.size = 0
        state.durableSize = 0
    }

    private func currentSize(_ fd: Int32) -> Int {
        max(0, fileSystem.size(fd))
    }
}
