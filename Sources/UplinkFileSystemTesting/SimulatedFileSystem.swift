#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization
public import UplinkFileSystem

/// An in-memory ``FileSystem`` that knows what a power cut would keep, for crash-state tests (the model of
/// "All File Systems Are Not Created Equal", OSDI 2014, made pessimistic).
///
/// Every write, truncate, create, rename and unlink is applied to the *volatile* view (what the running
/// process reads) and queued as *pending*. An fsync (or fdatasync) of a file moves that file's pending writes
/// and truncates into the *durable* view; a directory sync moves the pending creations, renames and unlinks of
/// that directory. Nothing else is durable: not a new file's name before its directory is synced, not data
/// written before its file is synced.
///
/// ``crashStates(tornWrites:)`` lists what the disk may hold after a power cut now: the durable view, then the
/// durable view plus each prefix of the pending operations in the order they were made, and (optionally)
/// each of those followed by the next write torn in half. ``init(booting:)`` starts a file system from one of
/// them, as the next boot would see it.
///
/// Faults: ``failSyncs(errno:times:where:)`` makes fsync fail on matching files; as on Linux after a failed
/// writeback, the writes it covered are dropped from the pending queue (they stay readable, but never become
/// durable).
///
/// Directories are simplified: `mkdir` is durable at once, and every directory is assumed to exist in its
/// parent. Only one process uses it; descriptors are small integers of its own.
public final class SimulatedFileSystem: FileSystem, Sendable {
    /// What a disk holds: directories (path to name to file), and the files' bytes by file number.
    public struct Snapshot: Sendable, Hashable {
        public var directories: [String: [String: Int]] = [:]
        public var files: [Int: [UInt8]] = [:]

        public init() {}

        /// The bytes under `path`, if the name exists.
        public func contents(of path: String) -> [UInt8]? {
            guard let inode = directories[parentDirectory(of: path)]?[name(of: path)] else { return nil }
            return files[inode] ?? []
        }

        /// The names in `directory`.
        public func names(in directory: String) -> [String] {
            (directories[directory] ?? [:]).keys.sorted()
        }

        mutating func apply(_ operation: Operation) {
            switch operation {
            // In place (`files[inode, default:]`), so a run of appends copies a file at most once.
            case .write(let inode, let offset, let bytes):
                if files[inode, default: []].count < offset {
                    files[inode, default: []] += repeatElement(0, count: offset - files[inode, default: []].count)
                }
                let overlap = min(bytes.count, files[inode, default: []].count - offset)
                files[inode, default: []].replaceSubrange(offset..<(offset + overlap), with: bytes[..<overlap])
                files[inode, default: []] += bytes[overlap...]
            case .truncate(let inode, let length):
                let count = files[inode, default: []].count
                if count > length {
                    files[inode, default: []].removeSubrange(length...)
                } else {
                    files[inode, default: []] += repeatElement(0, count: length - count)
                }
            case .link(let directory, let name, let inode):
                directories[directory, default: [:]][name] = inode
                if files[inode] == nil { files[inode] = [] }
            case .unlink(let directory, let name):
                directories[directory]?[name] = nil
            case .rename(let fromDirectory, let fromName, let toDirectory, let toName):
                guard let inode = directories[fromDirectory]?[fromName] else { return }
                directories[fromDirectory]?[fromName] = nil
                directories[toDirectory, default: [:]][toName] = inode
            }
        }
    }

    enum Operation: Sendable, Equatable {
        case write(inode: Int, offset: Int, bytes: [UInt8])
        case truncate(inode: Int, length: Int)
        case link(directory: String, name: String, inode: Int)
        case unlink(directory: String, name: String)
        case rename(fromDirectory: String, fromName: String, toDirectory: String, toName: String)

        var inode: Int? {
            switch self {
            case .write(let inode, _, _), .truncate(let inode, _): return inode
            default: return nil
            }
        }

        func touches(directory: String) -> Bool {
            switch self {
            case .link(let dir, _, _), .unlink(let dir, _): return dir == directory
            case .rename(let from, _, let to, _): return from == directory || to == directory
            default: return false
            }
        }
    }

    struct Descriptor {
        var inode: Int
        var path: String
        var append: Bool
        /// The access mode, enforced as the kernel does: reading a write-only descriptor is EBADF.
        var readable: Bool
        var writable: Bool
        var position = 0
    }

    struct SyncFault {
        var matches: @Sendable (String) -> Bool
        var code: Int32
        var remaining: Int
    }

    struct State {
        var volatile = Snapshot()
        var durable = Snapshot()
        var pending: [Operation] = []
        var descriptors: [Int32: Descriptor] = [:]
        var nextDescriptor: Int32 = 100
        var nextInode = 1
        var knownDirectories: Set<String> = []
        var faults: [SyncFault] = []
        /// Changes whenever the durable view or the pending queue changes other than by an append.
        var generation = 0
        var syncs = 0
        var failedSyncs = 0
    }

    private let state: Mutex<State>
    private let observer = Mutex<(@Sendable () -> Void)?>(nil)

    /// An empty disk.
    public init() {
        state = Mutex(State())
    }

    /// The disk after a power cut: `snapshot` is both what is durable and what the process sees.
    public init(booting snapshot: Snapshot) {
        var initial = State()
        initial.volatile = snapshot
        initial.durable = snapshot
        initial.nextInode = (snapshot.files.keys.max() ?? 0) + 1
        initial.knownDirectories = Set(snapshot.directories.keys)
        state = Mutex(initial)
    }

    /// Called after every operation that changes the disk (outside the file system's lock), so a test can take
    /// the crash states of every step.
    public func observeEachStep(_ observer: (@Sendable () -> Void)?) {
        self.observer.withLock { $0 = observer }
    }

    /// Makes the next `times` fsyncs (and directory syncs) of paths matching `where` fail with `errno`.
    public func failSyncs(errno code: Int32 = EIO, times: Int = .max, where matches: @escaping @Sendable (String) -> Bool) {
        state.withLock { $0.faults.append(SyncFault(matches: matches, code: code, remaining: times)) }
    }

    /// Fsyncs done and fsyncs failed on purpose.
    public var syncCounts: (done: Int, failed: Int) { state.withLock { ($0.syncs, $0.failedSyncs) } }

    /// What the running process sees now.
    public var volatileSnapshot: Snapshot { state.withLock { $0.volatile } }

    /// What a power cut would keep for sure.
    public var durableSnapshot: Snapshot { state.withLock { $0.durable } }

    /// Operations made but not yet durable.
    public var pendingCount: Int { state.withLock { $0.pending.count } }

    /// Every state the disk may be in after a power cut now (see the type's description).
    public func crashStates(tornWrites: Bool = true) -> [Snapshot] {
        crashStates(tornWrites: tornWrites) { _, count in Array(0..<count) }
    }

    /// Some of the states the disk may be in after a power cut now: `pick` gets a generation and how many states
    /// there are, and returns the indexes wanted (in the order of ``crashStates(tornWrites:)``); only those are
    /// built, in one pass, and returned in increasing index order.
    ///
    /// A state is identified by its generation and index: between two syncs the pending queue only grows, so
    /// the same pair is the same state, and a test can skip what it already checked without comparing disks.
    public func crashStates(tornWrites: Bool = true, pick: (_ generation: Int, _ count: Int) -> [Int]) -> [Snapshot] {
        let (durable, pending, generation) = state.withLock { ($0.durable, $0.pending, $0.generation) }
        var count = 1
        for operation in pending {
            if tornWrites, case .write(_, _, let bytes) = operation, bytes.count > 1 { count += 1 }
            count += 1
        }
        let wanted = Set(pick(generation, count))
        var states: [Snapshot] = []
        var index = 0
        var current = durable
        if wanted.contains(index) { states.append(current) }
        for operation in pending {
            guard states.count < wanted.count else { break }
            if tornWrites, case .write(let inode, let offset, let bytes) = operation, bytes.count > 1 {
                index += 1
                if wanted.contains(index) {
                    var torn = current
                    torn.apply(.write(inode: inode, offset: offset, bytes: Array(bytes[..<(bytes.count / 2)])))
                    states.append(torn)
                }
            }
            current.apply(operation)
            index += 1
            if wanted.contains(index) { states.append(current) }
        }
        return states
    }

    private func changed() {
        if let observer = observer.withLock({ $0 }) { observer() }
    }

    private func record(_ operation: Operation, in state: inout State) {
        state.volatile.apply(operation)
        state.pending.append(operation)
    }

    // MARK: FileSystem

    public func open(_ path: String, flags: Int32, mode: mode_t) -> Int32 {
        let (fd, mutated) = state.withLock { state -> (Int32, Bool) in
            let directory = parentDirectory(of: path)
            let base = name(of: path)
            var mutated = false
            var inode = state.volatile.directories[directory]?[base]
            if inode != nil, flags & O_CREAT != 0, flags & O_EXCL != 0 { return (-EEXIST, false) }
            if inode == nil {
                guard flags & O_CREAT != 0 else { return (-ENOENT, false) }
                guard isDirectory(directory, state) else { return (-ENOENT, false) }
                let created = state.nextInode
                state.nextInode += 1
                record(.link(directory: directory, name: base, inode: created), in: &state)
                inode = created
                mutated = true
            } else if flags & O_TRUNC != 0, flags & (O_WRONLY | O_RDWR) != 0, !(state.volatile.files[inode!] ?? []).isEmpty {
                record(.truncate(inode: inode!, length: 0), in: &state)
                mutated = true
            }
            let fd = state.nextDescriptor
            state.nextDescriptor += 1
            let access = flags & O_ACCMODE
            state.descriptors[fd] = Descriptor(
                inode: inode!, path: path, append: flags & O_APPEND != 0, readable: access != O_WRONLY,
                writable: access != O_RDONLY)
            return (fd, mutated)
        }
        if mutated { changed() }
        return fd
    }

    @discardableResult public func close(_ fd: Int32) -> Int32 {
        state.withLock { $0.descriptors.removeValue(forKey: fd) == nil ? EBADF : 0 }
    }

    public func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int {
        let written = state.withLock { state -> Int in
            guard var descriptor = state.descriptors[fd], descriptor.writable else { return -Int(EBADF) }
            let offset = descriptor.append ? (state.volatile.files[descriptor.inode]?.count ?? 0) : descriptor.position
            record(.write(inode: descriptor.inode, offset: offset, bytes: Array(bytes)), in: &state)
            descriptor.position = offset + bytes.count
            state.descriptors[fd] = descriptor
            return bytes.count
        }
        if written > 0 { changed() }
        return written
    }

    public func pwrite(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int {
        let written = state.withLock { state -> Int in
            guard let descriptor = state.descriptors[fd], descriptor.writable else { return -Int(EBADF) }
            record(.write(inode: descriptor.inode, offset: offset, bytes: Array(bytes)), in: &state)
            return bytes.count
        }
        if written > 0 { changed() }
        return written
    }

    public func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        state.withLock { state -> Int in
            guard var descriptor = state.descriptors[fd], descriptor.readable else { return -Int(EBADF) }
            let count = copy(state.volatile.files[descriptor.inode] ?? [], from: descriptor.position, into: buffer)
            descriptor.position += count
            state.descriptors[fd] = descriptor
            return count
        }
    }

    public func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        state.withLock { state -> Int in
            guard let descriptor = state.descriptors[fd], descriptor.readable else { return -Int(EBADF) }
            return copy(state.volatile.files[descriptor.inode] ?? [], from: offset, into: buffer)
        }
    }

    public func fsync(_ fd: Int32) -> Int32 {
        state.withLock { state -> Int32 in
            guard let descriptor = state.descriptors[fd] else { return EBADF }
            if let code = fault(descriptor.path, &state) {
                // Linux after a failed writeback: the pages are clean again, their data never reaches the disk.
                state.pending.removeAll { $0.inode == descriptor.inode }
                state.generation += 1
                return code
            }
            state.syncs += 1
            var kept: [Operation] = []
            for operation in state.pending {
                if operation.inode == descriptor.inode { state.durable.apply(operation) } else { kept.append(operation) }
            }
            state.pending = kept
            state.generation += 1
            return 0
        }
    }

    public func fdatasync(_ fd: Int32) -> Int32 { fsync(fd) }

    public func truncate(_ fd: Int32, to length: Int) -> Int32 {
        let code = state.withLock { state -> Int32 in
            guard let descriptor = state.descriptors[fd], descriptor.writable else { return EINVAL }
            record(.truncate(inode: descriptor.inode, length: length), in: &state)
            return 0
        }
        if code == 0 { changed() }
        return code
    }

    public func size(_ fd: Int32) -> Int {
        state.withLock { state -> Int in
            guard let descriptor = state.descriptors[fd] else { return -Int(EBADF) }
            return state.volatile.files[descriptor.inode]?.count ?? 0
        }
    }

    public func setMode(_ fd: Int32, _ mode: mode_t) -> Int32 {
        state.withLock { $0.descriptors[fd] == nil ? EBADF : 0 }
    }

    public func rename(_ from: String, to: String) -> Int32 {
        let code = state.withLock { state -> Int32 in
            guard state.volatile.directories[parentDirectory(of: from)]?[name(of: from)] != nil else { return ENOENT }
            record(
                .rename(
                    fromDirectory: parentDirectory(of: from), fromName: name(of: from),
                    toDirectory: parentDirectory(of: to), toName: name(of: to)), in: &state)
            return 0
        }
        if code == 0 { changed() }
        return code
    }

    public func unlink(_ path: String) -> Int32 {
        let code = state.withLock { state -> Int32 in
            guard state.volatile.directories[parentDirectory(of: path)]?[name(of: path)] != nil else { return ENOENT }
            record(.unlink(directory: parentDirectory(of: path), name: name(of: path)), in: &state)
            return 0
        }
        if code == 0 { changed() }
        return code
    }

    public func makeDirectory(_ path: String, mode: mode_t) -> Int32 {
        state.withLock { state -> Int32 in
            if isDirectory(path, state) { return EEXIST }
            state.knownDirectories.insert(path)
            state.volatile.directories[path] = state.volatile.directories[path] ?? [:]
            state.durable.directories[path] = state.durable.directories[path] ?? [:]
            state.generation += 1
            return 0
        }
    }

    public func syncDirectory(_ path: String) -> Int32 {
        state.withLock { state -> Int32 in
            guard isDirectory(path, state) else { return ENOENT }
            if let code = fault(path, &state) { return code }
            state.syncs += 1
            var kept: [Operation] = []
            for operation in state.pending {
                if operation.touches(directory: path) { state.durable.apply(operation) } else { kept.append(operation) }
            }
            state.pending = kept
            state.generation += 1
            return 0
        }
    }

    public func list(_ directory: String) -> Result<[String], FileSystemFailure> {
        state.withLock { state in
            guard isDirectory(directory, state) else { return .failure(FileSystemFailure("cannot list", path: directory, code: ENOENT)) }
            return .success(state.volatile.names(in: directory))
        }
    }

    // MARK: Helpers

    /// A known directory or an ancestor of one.
    private func isDirectory(_ path: String, _ state: State) -> Bool {
        if state.knownDirectories.contains(path) { return true }
        let prefix = path.hasSuffix("/") ? path : path + "/"
        return state.knownDirectories.contains { $0.hasPrefix(prefix) }
    }

    private func fault(_ path: String, _ state: inout State) -> Int32? {
        guard let index = state.faults.firstIndex(where: { $0.remaining > 0 && $0.matches(path) }) else { return nil }
        state.faults[index].remaining -= 1
        state.failedSyncs += 1
        return state.faults[index].code
    }

    private func copy(_ data: [UInt8], from offset: Int, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard offset < data.count else { return 0 }
        let count = min(buffer.count, data.count - offset)
        data.withUnsafeBytes { source in
            buffer.baseAddress!.copyMemory(from: source.baseAddress! + offset, byteCount: count)
        }
        return count
    }
}

private func name(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return path }
    return String(path[path.index(after: slash)...])
}
